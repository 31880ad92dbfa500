package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

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
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("import: expected one STORE/MODEL, got %d arguments", c.NArg())
			}
			jobsDir := c.String("jobs-dir")
			if jobsDir == "" {
				return errors.New("import: --jobs-dir (or DIGITS_JOBS_DIR) is required")
			}
			storeName, model, ok := strings.Cut(strings.Trim(c.Args().First(), "/"), "/")
			if !ok || model == "" || strings.Contains(model, "/") {
				return fmt.Errorf("import: %q is not STORE/MODEL", c.Args().First())
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
			bar.finish(err == nil)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "Imported %s/%s as job %s\n  %s\nRestart DIGITS to see it under Pretrained Models.\n",
				storeName, model, res.ID, res.Dir)
			return nil
		},
	}
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

// progress reports bytes, rate and ETA: one redrawn line on a terminal,
// plain lines every 10% otherwise.
type progress struct {
	w        io.Writer
	label    string
	tty      bool
	start    time.Time
	last     time.Time
	lastTen  int64
	done     int64
	total    int64
	drawn    bool
	interval time.Duration
}

func newProgress(w io.Writer, label string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, label: label, tty: tty, start: time.Now(), lastTen: -1, interval: 100 * time.Millisecond}
}

func (p *progress) update(done, total int64) {
	p.done, p.total = done, total
	now := time.Now()
	if p.tty {
		if now.Sub(p.last) >= p.interval || done == total {
			p.last = now
			fmt.Fprintf(p.w, "\r%s", p.line())
			p.drawn = true
		}
		return
	}
	if total <= 0 {
		return
	}
	if tenth := done * 10 / total; tenth != p.lastTen {
		p.lastTen = tenth
		fmt.Fprintln(p.w, p.line())
	}
}

func (p *progress) line() string {
	elapsed := time.Since(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed
	}
	eta := "?"
	if rate > 0 && p.total >= p.done {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if p.total > 0 {
		pct = float64(p.done) * 100 / float64(p.total)
	}
	return fmt.Sprintf("%s: %5.1f%%  %s / %s  %s/s  ETA %s", p.label, pct, humanBytes(p.done), humanBytes(p.total), humanBytes(int64(rate)), eta)
}

func (p *progress) finish(ok bool) {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// humanBytes prints a size with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
