package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap/zapcore"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the models of the stores, as DIGITS' store page does",
		Description: `One line per model: store, model folder, name, framework, dataset, license,
contributor, note, whether DIGITS can import it and, when not, why (the same
verdict as the mount's status.pickle, error.txt, check and import; "?" marks
a value unknown for now, when a model's aux.json could not be read; --json
gives the reason as "why"). The list is kept in the cache directory for --ttl, so a
second ls is instant; --refresh fetches it again ("Update model list").

Examples:
   modelstorefs ls --store http://127.0.0.1:8000
   modelstorefs ls --filter mnist
   modelstorefs ls --json | jq '.[] | select(.framework == "caffe")'`,
		Flags: slices.Concat(storeFlags(), authFlags(), cacheFlags(), logFlags("warn"), []cli.Flag{
			&cli.StringFlag{Name: "filter", Aliases: []string{"f"}, Usage: "only models with `WORD` in any column (case-insensitive)"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
			&cli.BoolFlag{Name: "refresh", Usage: "ignore the cached list and fetch it again"},
		}),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			cfg, err := storeConfigFrom(c)
			if err != nil {
				return err
			}
			rows, failed, err := listStores(c, cfg)
			if err != nil {
				return err
			}
			rows = filterRows(rows, c.String("filter"))
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if rows == nil {
					rows = []cache.Summary{}
				}
				return enc.Encode(rows)
			}
			writeTable(c.App.Writer, rows)
			if failed == len(cfg.Stores) {
				return errors.New("ls: no store could be listed")
			}
			return nil
		},
	}
}

// listStores returns every store's rows, from the model list kept in the
// cache directory (by the mount or an earlier ls) when it is fresh. Stores
// that fail are reported on stderr and counted.
func listStores(c *cli.Context, cfg storeConfig) ([]cache.Summary, int, error) {
	log, err := newCLILogger(cfg.LogLevel, cfg.LogFormat, lsShows)
	if err != nil {
		return nil, 0, err
	}
	defer syncLogger(log)
	var (
		rows   []cache.Summary
		failed int
		cat    *cache.Catalog
	)
	for _, spec := range cfg.Stores {
		if !c.Bool("refresh") {
			if kept, fetched, ok := keptRows(cfg, spec); ok && time.Since(fetched) <= cfg.TTL && time.Since(fetched) >= 0 {
				rows = append(rows, kept...)
				continue
			}
		}
		if cat == nil {
			var closeCat func()
			if cat, closeCat, err = openCatalog(cfg, "", log); err != nil {
				return nil, 0, err
			}
			defer closeCat()
		}
		st, _ := findStore(cat, spec.Name)
		models, err := cat.SizedModels(c.Context, st)
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "modelstorefs: store %s: %v\n", spec.Name, err)
			failed++
			continue
		}
		for _, m := range models {
			rows = append(rows, m.Summary())
		}
	}
	return rows, failed, nil
}

// lsShows keeps ls's log to what its output does not say: the table shows
// every model, and ls reports a store it could not list itself.
func lsShows(e zapcore.Entry, s logScope) bool { return s.model == "" && e.Level < zapcore.ErrorLevel }

// keptRows reads the store's model list kept in the cache directory
// (cache.KeptSummaries), without asking the store anything.
func keptRows(cfg storeConfig, spec storeSpec) ([]cache.Summary, time.Time, bool) {
	rs, err := remote.NewStore(spec.URL, remote.Options{})
	if err != nil {
		return nil, time.Time{}, false
	}
	return cache.KeptSummaries(metaDir(cfg.CacheDir), &cache.Store{Name: spec.Name, Remote: rs})
}

// metaDir is where the catalog keeps listings and model metadata.
func metaDir(cacheDir string) string { return filepath.Join(cacheDir, "meta") }

// filterRows keeps rows with word in any column, case-insensitively.
func filterRows(rows []cache.Summary, word string) []cache.Summary {
	if word == "" {
		return rows
	}
	word = strings.ToLower(word)
	var out []cache.Summary
	for _, r := range rows {
		for _, f := range lsFields(r) {
			if strings.Contains(strings.ToLower(f), word) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// lsFields are the columns of an ls line: models.tsv's, and why the
// model is not importable, each one harmless line.
func lsFields(r cache.Summary) []string {
	return append(r.Fields(), digits.CleanLine(r.Why))
}

// writeTable prints the rows aligned; Fields makes store text harmless
// (no control characters reach the terminal).
func writeTable(w io.Writer, rows []cache.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cache.TableHeader, "\t"))+"\tWHY")
	for _, r := range rows {
		fields := lsFields(r)
		for i, f := range fields {
			if f == "" {
				fields[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(fields, "\t"))
	}
	tw.Flush()
}
