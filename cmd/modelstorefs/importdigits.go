package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/digitsupload"
)

// storeModel is one STORE/MODEL argument.
type storeModel struct{ store, model string }

func (sm storeModel) String() string { return sm.store + "/" + sm.model }

// runDigitsImport uploads each STORE/MODEL to the running DIGITS at
// digitsURL, one after the other, reporting each on stdout; it fails when
// any did not land.
func runDigitsImport(c *cli.Context, digitsURL string) error {
	if c.NArg() == 0 {
		return errors.New("import: name at least one STORE/MODEL (list them with: modelstorefs ls)")
	}
	if c.String("name") != "" && c.NArg() > 1 {
		return fmt.Errorf("import: --name names one job, but %d models are given", c.NArg())
	}
	var models []storeModel
	for _, arg := range c.Args().Slice() {
		store, model, err := parseStoreModel(arg)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		models = append(models, storeModel{store, model})
	}
	up, cat, closeAll, err := openDigitsImport(c, digitsURL)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer closeAll()
	failed := 0
	for i, sm := range models {
		if c.Context.Err() != nil {
			fmt.Fprintf(c.App.Writer, "%s: not sent: interrupted\n", models[i])
			failed++
			continue
		}
		if !uploadOne(c, up, cat, sm) {
			failed++
		}
	}
	switch {
	case c.Context.Err() != nil:
		return errors.New("import: interrupted")
	case failed > 0:
		return fmt.Errorf("import: %d of %d models did not land in DIGITS", failed, len(models))
	}
	return nil
}

// openDigitsImport builds the uploader (TLS as for the stores) and the
// catalog; closeAll closes them.
func openDigitsImport(c *cli.Context, digitsURL string) (*digitsupload.Uploader, *cache.Catalog, func(), error) {
	cfg, log, err := commandConfig(c)
	if err != nil {
		return nil, nil, nil, err
	}
	ucfg := digitsupload.Config{
		URL: digitsURL, User: c.String("digits-user"), UserAgent: "modelstorefs/" + version,
		AnswerTimeout: c.Duration("digits-timeout"),
	}
	if cfg.CACert != "" {
		if ucfg.RootCAs, err = loadCACert(cfg.CACert); err != nil {
			syncLogger(log)
			return nil, nil, nil, err
		}
	}
	up, err := digitsupload.New(ucfg)
	if err != nil {
		syncLogger(log)
		return nil, nil, nil, err
	}
	cat, closeCat, err := openCatalog(cfg, "", log)
	if err != nil {
		syncLogger(log)
		return nil, nil, nil, err
	}
	return up, cat, func() {
		closeCat()
		syncLogger(log)
	}, nil
}

// uploadOne uploads one model, with progress on stderr, and reports the
// outcome in one line on stdout; it returns whether the model landed.
func uploadOne(c *cli.Context, up *digitsupload.Uploader, cat *cache.Catalog, sm storeModel) bool {
	w := c.App.Writer
	st, err := findStore(cat, sm.store)
	if err != nil {
		fmt.Fprintf(w, "%s: not sent: %s\n", sm, digits.CleanLine(err.Error()))
		return false
	}
	bar := newProgress(c.App.ErrWriter, sm.String())
	res, err := up.Upload(c.Context, cat, st, sm.model, digitsupload.Options{Name: c.String("name"), Progress: bar.update})
	bar.finish()
	switch {
	case err == nil:
		fmt.Fprintf(w, "%s: imported into DIGITS as job %s (%s), %q\n  %s\n", sm, res.ID, res.Status, res.Name, up.JobURL(res.ID))
		return true
	case c.Context.Err() != nil:
		fmt.Fprintf(w, "%s: interrupted before DIGITS answered\n", sm)
	case errors.Is(err, cache.ErrNotFound):
		fmt.Fprintf(w, "%s: not sent: %s (list the models with: modelstorefs ls)\n", sm, oneLine(err))
	default:
		fmt.Fprintf(w, "%s: not imported: %s\n", sm, oneLine(err))
	}
	return false
}

// oneLine is an error as one line of the report.
func oneLine(err error) string { return digits.CleanLine(err.Error()) }
