package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the models of the stores, as DIGITS' store page does",
		Description: `One line per model: store, model folder, name, framework, dataset, license,
contributor, note, and whether DIGITS can import it (the same verdict as the
mount's status.pickle, check and import; "?" marks a value unknown for now,
when a model's aux.json could not be read). The list is kept in the cache directory for --ttl, so a
second ls is instant; --refresh fetches it again ("Update model list").

Examples:
   modelstorefs ls --store http://127.0.0.1:8000
   modelstorefs ls --filter mnist
   modelstorefs ls --json | jq '.[] | select(.framework == "caffe")'`,
		Flags: append(storeFlags(),
			&cli.StringFlag{Name: "filter", Aliases: []string{"f"}, Usage: "only models with `WORD` in any column (case-insensitive)"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
			&cli.BoolFlag{Name: "refresh", Usage: "ignore the cached list and fetch it again"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := storeConfigFrom(c)
			if err != nil {
				return err
			}
			if !c.IsSet("log-level") {
				cfg.LogLevel = "error"
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

// listStores returns every store's rows, from the cached list when fresh.
// Stores that fail are reported on stderr and counted.
func listStores(c *cli.Context, cfg storeConfig) ([]cache.Summary, int, error) {
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
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
		snap := snapshotPath(cfg.CacheDir, spec.URL)
		if !c.Bool("refresh") {
			if cached, ok := readSnapshot(snap, cfg.TTL); ok {
				rows = append(rows, cached...)
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
		models, err := cat.Models(c.Context, st)
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "modelstorefs: store %s: %v\n", spec.Name, err)
			failed++
			continue
		}
		var fresh []cache.Summary
		for _, m := range models {
			fresh = append(fresh, m.Summary())
		}
		// A list with values unknown for now (aux.json failed) is not
		// kept: the next ls asks again.
		if !anyUnknown(fresh) {
			if err := writeSnapshot(snap, spec.URL, fresh); err != nil {
				log.Warn("could not keep the model list", zap.Error(err))
			}
		}
		rows = append(rows, fresh...)
	}
	return rows, failed, nil
}

// snapshot is a store's model list kept in the cache directory.
type snapshot struct {
	URL     string          `json:"url"`
	Fetched time.Time       `json:"fetched"`
	Rows    []cache.Summary `json:"rows"`
}

func snapshotPath(cacheDir, storeURL string) string {
	sum := sha256.Sum256([]byte(storeURL))
	return filepath.Join(cacheDir, "lists", hex.EncodeToString(sum[:8])+".json")
}

func readSnapshot(path string, ttl time.Duration) ([]cache.Summary, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var s snapshot
	if json.Unmarshal(data, &s) != nil || time.Since(s.Fetched) > ttl || time.Since(s.Fetched) < 0 || anyUnknown(s.Rows) {
		return nil, false
	}
	for i := range s.Rows {
		s.Rows[i] = s.Rows[i].Clean()
	}
	return s.Rows, true
}

func anyUnknown(rows []cache.Summary) bool {
	for _, r := range rows {
		if r.AuxUnknown {
			return true
		}
	}
	return false
}

func writeSnapshot(path, storeURL string, rows []cache.Summary) error {
	data, err := json.Marshal(snapshot{URL: storeURL, Fetched: time.Now(), Rows: rows})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".list-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// filterRows keeps rows with word in any column, case-insensitively.
func filterRows(rows []cache.Summary, word string) []cache.Summary {
	if word == "" {
		return rows
	}
	word = strings.ToLower(word)
	var out []cache.Summary
	for _, r := range rows {
		for _, f := range r.Fields() {
			if strings.Contains(strings.ToLower(f), word) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// writeTable prints the rows aligned; Fields makes store text harmless
// (no control characters reach the terminal).
func writeTable(w io.Writer, rows []cache.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cache.TableHeader, "\t")))
	for _, r := range rows {
		fields := r.Fields()
		for i, f := range fields {
			if f == "" {
				fields[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(fields, "\t"))
	}
	tw.Flush()
}
