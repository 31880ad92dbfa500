package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/jobimport"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "download a model straight into a new DIGITS job directory (no mount needed)",
		ArgsUsage: "STORE/MODEL",
		Description: `Writes the model as DIGITS' Import button does: a new job directory named like
DIGITS names jobs (YYYYMMDD-HHMMSS-xxxx) holding the job-named files and a
status.pickle with that id. The job is assembled in a temporary directory in
the jobs directory and renamed at the end; Ctrl-C leaves nothing behind.
STORE is the store's directory name as the mount shows it.

Example:
   export DIGITS_MODEL_STORE_URL=http://127.0.0.1:8000
   modelstorefs import --jobs-dir /var/lib/digits/jobs 127.0.0.1_8000/lenet`,
		Flags: append(storeFlags(),
			&cli.StringFlag{Name: "jobs-dir", EnvVars: []string{"DIGITS_JOBS_DIR"}, Usage: "the DIGITS jobs `DIR`"},
			&cli.StringFlag{Name: "name", Usage: "job `NAME` (default: the model's info.json name)"},
		),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			err := runImport(c)
			switch {
			case err == nil:
				return nil
			case c.Context.Err() != nil: // SIGINT/SIGTERM; the job was assembled aside and removed
				return errors.New("import: interrupted, nothing written")
			case errors.Is(err, cache.ErrNotFound):
				return fmt.Errorf("import: %w (list the models with: modelstorefs ls)", err)
			}
			return fmt.Errorf("import: %w", err)
		},
	}
}

// runImport is the import command; its errors get the "import:" prefix.
func runImport(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("expected one STORE/MODEL, got %d arguments", c.NArg())
	}
	jobsDir := c.String("jobs-dir")
	if jobsDir == "" {
		return errors.New("--jobs-dir (or DIGITS_JOBS_DIR) is required")
	}
	storeName, model, ok := strings.Cut(strings.Trim(c.Args().First(), "/"), "/")
	if !ok || model == "" || strings.Contains(model, "/") {
		return fmt.Errorf("%q is not STORE/MODEL (list them with: modelstorefs ls)", c.Args().First())
	}
	cfg, err := storeConfigFrom(c)
	if err != nil {
		return err
	}
	if !c.IsSet("log-level") {
		cfg.LogLevel = "warn" // a command, not a daemon: only problems
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer syncLogger(log)
	catalog, closeCatalog, err := openCatalog(cfg, jobsDir, log)
	if err != nil {
		return err
	}
	defer closeCatalog()
	st, err := findStore(catalog, storeName)
	if err != nil {
		return err
	}
	bar := newProgress(c.App.ErrWriter, model)
	res, err := jobimport.Import(c.Context, catalog, st, model, jobimport.Options{
		JobsDir: jobsDir, Name: c.String("name"), Progress: bar.update,
	})
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Imported %s/%s as job %s\n  %s\nRestart DIGITS to see it under Pretrained Models.\n",
		storeName, model, res.ID, res.Dir)
	return nil
}

// findStore returns the configured store with that directory name.
func findStore(cat *cache.Catalog, name string) (*cache.Store, error) {
	var names []string
	for _, st := range cat.Stores() {
		if st.Name == name {
			return st, nil
		}
		names = append(names, st.Name)
	}
	return nil, fmt.Errorf("no store named %q (stores: %s)", name, strings.Join(names, ", "))
}

// progress reports bytes, rate and ETA: a bar redrawn in place on a
// terminal (schollz/progressbar: terminal width, throttled redraw), plain
// lines every 10% otherwise (logs, pipes).
type progress struct {
	w       io.Writer
	label   string
	bar     *progressbar.ProgressBar // nil when w is not a terminal
	start   time.Time
	lastTen int64
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label, start: time.Now(), lastTen: -1}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionFullWidth(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

func (p *progress) update(done, total int64) {
	if p.bar != nil {
		if total > 0 && p.bar.GetMax64() != total {
			p.bar.ChangeMax64(total)
		}
		_ = p.bar.Set64(done)
		return
	}
	if total <= 0 {
		return
	}
	if tenth := done * 10 / total; tenth != p.lastTen {
		p.lastTen = tenth
		rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-3)
		fmt.Fprintf(p.w, "%s: %3d%%  %s / %s  %s/s\n", p.label, done*100/total,
			humanize.IBytes(uint64(done)), humanize.IBytes(uint64(total)), humanize.IBytes(uint64(rate)))
	}
}

func (p *progress) finish() {
	if p.bar != nil && !p.bar.IsFinished() {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}
