package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digitsupload"
	"github.com/modelstorefs/modelstorefs/jobimport"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import models into a running DIGITS (--digits), or write them as new job directories (--jobs-dir)",
		ArgsUsage: "STORE/MODEL...",
		Description: `Two ways, side by side:

--digits URL (or DIGITS_URL) sends each model to a running DIGITS through
its own door, POST /pretrained_models/upload_archive: no restart, and no
running training aborted. The model's DIGITS files stream as a tar from the
cache or the store, never as a temporary copy on disk; each model is
reported with the job DIGITS made and its status as DIGITS lists it, or
with DIGITS' reason. Several models go one after the other; the exit status
is 0 only when all landed. --digits-user (default $USER) is the DIGITS user
the jobs belong to; --ca-cert and the proxy variables apply as for stores.

--jobs-dir DIR (or DIGITS_JOBS_DIR) writes one model as DIGITS' Import
button does: a new job directory named like DIGITS names jobs
(YYYYMMDD-HHMMSS-xxxx) holding the job-named files and a status.pickle with
that id. The job is assembled in a temporary directory in the jobs
directory and renamed at the end; Ctrl-C leaves nothing behind. DIGITS sees
it at its next start, which marks every job that was running as aborted.

A flag on the command line wins over the variables; with both variables
set and no flag, DIGITS_URL is used. STORE is the store's directory name as
the mount shows it. --name names the job, as DIGITS lists it under
Pretrained Models; the job's folder is always named by its id. Only
warnings about the models named on the command line are shown.

Examples:
   export DIGITS_MODEL_STORE_URL=http://127.0.0.1:8000
   modelstorefs import --digits http://digits:5000 127.0.0.1_8000/lenet 127.0.0.1_8000/inception-tf
   modelstorefs import --jobs-dir /var/lib/digits/jobs 127.0.0.1_8000/lenet`,
		Flags: slices.Concat(storeFlags(), authFlags(), cacheFlags(), logFlags("warn"), []cli.Flag{
			&cli.StringFlag{Name: "digits", EnvVars: []string{digitsURLEnv}, Usage: "upload to the running DIGITS at `URL` (no restart)"},
			&cli.StringFlag{Name: "digits-user", EnvVars: []string{"USER"}, Usage: "DIGITS user `NAME` the new jobs belong to ('' for none)"},
			&cli.DurationFlag{Name: "digits-timeout", Value: digitsupload.DefaultAnswerTimeout, DefaultText: shortDuration(digitsupload.DefaultAnswerTimeout),
				Usage: "how long DIGITS may take to answer an upload (`DURATION`; it answers once the job has finished)"},
			&cli.StringFlag{Name: "jobs-dir", EnvVars: []string{jobsDirEnv}, Usage: "write a job into the DIGITS jobs `DIR` (seen at DIGITS' next start)"},
			&cli.StringFlag{Name: "name", Usage: "the job's `NAME` as DIGITS lists it (default: the model's info.json name); not a folder name: the folder is the job id"},
		}),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			digitsURL, jobsDir, err := importTarget(c)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			if digitsURL != "" {
				return runDigitsImport(c, digitsURL)
			}
			err = runImport(c, jobsDir)
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

// The variables naming where import puts models.
const (
	digitsURLEnv = "DIGITS_URL"
	jobsDirEnv   = "DIGITS_JOBS_DIR"
)

// importTarget says where import puts models: a running DIGITS (its URL)
// or a jobs directory. A flag wins over the variables; of the variables,
// DIGITS_URL, the way that needs no restart.
func importTarget(c *cli.Context) (digitsURL, jobsDir string, err error) {
	d, j := flagOnCommandLine(c, "digits", digitsURLEnv), flagOnCommandLine(c, "jobs-dir", jobsDirEnv)
	switch {
	case d && j:
		return "", "", errors.New("give --digits or --jobs-dir, not both")
	case d:
		if c.String("digits") == "" {
			return "", "", errors.New("--digits: the URL is empty")
		}
		return c.String("digits"), "", nil
	case j || c.String("digits") == "" && c.String("jobs-dir") != "":
		return "", c.String("jobs-dir"), nil
	case c.String("digits") != "":
		return c.String("digits"), "", nil
	}
	return "", "", errors.New("--digits URL (or DIGITS_URL) or --jobs-dir DIR (or DIGITS_JOBS_DIR) is required")
}

// runImport is the jobs-dir import; its errors get the "import:" prefix.
func runImport(c *cli.Context, jobsDir string) error {
	if c.NArg() != 1 {
		return fmt.Errorf("--jobs-dir takes one STORE/MODEL, got %d arguments", c.NArg())
	}
	if jobsDir == "" {
		return errors.New("--jobs-dir: the directory is empty")
	}
	storeName, model, err := parseStoreModel(c.Args().First())
	if err != nil {
		return err
	}
	cfg, log, err := commandConfig(c)
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

// parseStoreModel splits a STORE/MODEL argument.
func parseStoreModel(arg string) (storeName, model string, err error) {
	storeName, model, ok := strings.Cut(strings.Trim(arg, "/"), "/")
	if !ok || model == "" || strings.Contains(model, "/") {
		return "", "", fmt.Errorf("%q is not STORE/MODEL (list them with: modelstorefs ls)", arg)
	}
	return storeName, model, nil
}

// commandConfig is the store configuration and logger of import: its log
// shows what concerns the STORE/MODEL arguments, not the other models of
// their stores (the catalog resolves them all).
func commandConfig(c *cli.Context) (storeConfig, *zap.Logger, error) {
	cfg, err := storeConfigFrom(c)
	if err != nil {
		return cfg, nil, err
	}
	asked := map[logScope]bool{}
	for _, arg := range c.Args().Slice() {
		if store, model, err := parseStoreModel(arg); err == nil {
			asked[logScope{store, model}] = true
		}
	}
	log, err := newCLILogger(cfg.LogLevel, cfg.LogFormat, func(_ zapcore.Entry, s logScope) bool {
		return s.model == "" || asked[s]
	})
	return cfg, log, err
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
