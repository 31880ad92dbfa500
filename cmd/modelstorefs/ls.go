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
	"github.com/modelstorefs/modelstorefs/engine"
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
gives the reason as "why", and each model's store files as "files": name,
size, the digest the store states ("digest", "digest_from": its answers or
its SHA256SUMS) and, when the file is in the cache, the SHA-256 of the
cached copy and whether it was checked against the store's digest
("sha256", "verified": store or computed)). The list is kept in the cache directory for --ttl, so a
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
				withCachedDigests(cfg.CacheDir, rows)
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
				rows = append(rows, withStoreSums(c, cfg, spec, kept)...)
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
		first := len(rows)
		for _, m := range models {
			sum := m.Summary()
			sum.Files = m.FileSummaries()
			rows = append(rows, sum)
		}
		withStoreSums(c, cfg, spec, rows[first:])
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

// withStoreSums gives the files of one store's rows the digests its
// SHA256SUMS names (ls --json alone: one request per store).
func withStoreSums(c *cli.Context, cfg storeConfig, spec storeSpec, rows []cache.Summary) []cache.Summary {
	if !c.Bool("json") || len(rows) == 0 {
		return rows
	}
	stores, err := storeClients(storeConfig{Stores: []storeSpec{spec}, Auth: cfg.Auth, CACert: cfg.CACert, RetryWindow: cfg.RetryWindow})
	if err != nil {
		return rows
	}
	sums, _, err := stores[0].Remote.FetchSums(c.Context, nil)
	if err != nil {
		return rows // none (404), or unreadable: the digests the answers stated
	}
	for i := range rows {
		rows[i].WithSums(sums)
	}
	return rows
}

// withCachedDigests gives the files of rows that are in the cache the
// SHA-256 of their cached copy.
func withCachedDigests(cacheDir string, rows []cache.Summary) {
	objs, err := engine.ListObjects(cacheDir)
	if err != nil || len(objs) == 0 {
		return
	}
	byKey := make(map[string]engine.CacheObject, len(objs))
	for _, o := range objs {
		byKey[o.Key] = o
	}
	for i := range rows {
		for j := range rows[i].Files {
			f := &rows[i].Files[j]
			if o, ok := byKey[f.Ref.Key()]; ok && o.SHA256 != "" {
				f.SHA256, f.Verified = o.SHA256, o.Verified
			}
		}
	}
}
