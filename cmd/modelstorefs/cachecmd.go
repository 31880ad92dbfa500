package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/engine"
	"github.com/modelstorefs/modelstorefs/fs"
)

// modelstorefs cache du | clear: the on-disk cache seen and cleared per
// store, safely beside a running mount (engine/admin.go).
//
// Cache files are named by the key of the file version (cache.Ref.Key: a
// hash of URL, validators and size), which says nothing of the store. A
// file is attributed to a store by computing the keys of the files its
// models have now (listed as ls lists them: from the stores, or their
// kept listing when a store is down) and matching them; a cached file no
// listed file matches is an older version, or of a store not given here.

func cacheCommand() *cli.Command {
	return &cli.Command{
		Name:  "cache",
		Usage: "show the on-disk cache's use per store (du), clear it (clear [STORE]), or check it (verify)",
		Subcommands: []*cli.Command{
			{
				Name:  "du",
				Usage: "the cache's files and bytes per store, and in all against --cache-size",
				Description: `Counts the complete files of --cache-dir by store: the stores' models are
listed as ls lists them, and each cached file is matched to the file version
it holds. Files matching no listed file are older versions, or of stores not
given here ("unattributed"). Without stores only the totals are shown.`,
				Flags:        slices.Concat(storeFlags(), authFlags(), cacheFlags(), logFlags("warn"), []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}}),
				OnUsageError: onUsageError,
				Action:       runCacheDu,
			},
			{
				Name:      "clear",
				Usage:     "remove the cache's files (of STORE only, when given); files in use are kept",
				ArgsUsage: "[STORE]",
				Description: `Removes the complete files of --cache-dir: all, or those of the current files
of STORE (its models listed as ls lists them; older versions stay: a plain
clear removes them). Safe while a mount or an import uses the cache: a file
some process has open is kept and counted, downloads in progress are not
touched, and a mount that later opens a removed file downloads it again.
The kept model lists and metadata (CACHE_DIR/meta) stay.`,
				Flags:        slices.Concat(storeFlags(), authFlags(), cacheFlags(), logFlags("warn")),
				OnUsageError: onUsageError,
				Action:       runCacheClear,
			},
			cacheVerifyCommand(),
		},
	}
}

// storeUse is one line of du.
type storeUse struct {
	Name  string `json:"name"`
	URL   string `json:"url,omitempty"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
	// Listed: the store's models could be listed (else its files count as
	// unattributed).
	Listed bool `json:"listed"`
}

// cacheUse is what du shows.
type cacheUse struct {
	CacheDir     string     `json:"cache_dir"`
	MaxBytes     int64      `json:"max_bytes"` // --cache-size
	Stores       []storeUse `json:"stores"`
	Unattributed storeUse   `json:"unattributed"`
	Total        storeUse   `json:"total"`
	// Processes using the cache now, and their downloads in progress.
	Processes    int   `json:"processes"`
	PartialBytes int64 `json:"partial_bytes"`
}

func runCacheDu(c *cli.Context) error {
	cfg, log, err := cacheCommandConfig(c)
	if err != nil {
		return fmt.Errorf("cache du: %w", err)
	}
	defer syncLogger(log)
	objs, err := engine.ListObjects(cfg.CacheDir)
	if err != nil {
		return fmt.Errorf("cache du: %w", err)
	}
	act, err := engine.CacheActivity(cfg.CacheDir)
	if err != nil {
		return fmt.Errorf("cache du: %w", err)
	}
	owner, stores, err := attribute(c.Context, cfg, log, "", c.App.ErrWriter)
	if err != nil {
		return fmt.Errorf("cache du: %w", err)
	}
	use := tally(objs, owner, stores)
	use.CacheDir, use.MaxBytes, use.Processes, use.PartialBytes = cfg.CacheDir, cfg.CacheSize, act.Processes, act.PartialBytes
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(use)
	}
	writeCacheUse(c.App.Writer, use, len(cfg.Stores) > 0)
	return nil
}

// tally adds the objects up by store (owner: key -> store name).
func tally(objs []engine.CacheObject, owner map[string]string, stores []storeUse) cacheUse {
	use := cacheUse{Stores: stores, Unattributed: storeUse{Name: "unattributed"}, Total: storeUse{Name: "total"}}
	index := map[string]int{}
	for i, s := range stores {
		index[s.Name] = i
	}
	for _, o := range objs {
		u := &use.Unattributed
		if i, ok := index[owner[o.Key]]; ok {
			u = &use.Stores[i]
		}
		u.Files++
		u.Bytes += o.Size
		use.Total.Files++
		use.Total.Bytes += o.Size
	}
	return use
}

func writeCacheUse(w io.Writer, use cacheUse, haveStores bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tFILES\tSIZE")
	line := func(name string, u storeUse) {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", name, u.Files, humanize.IBytes(uint64(u.Bytes)))
	}
	for _, s := range use.Stores {
		name := s.Name
		if !s.Listed {
			name += " (not listed)"
		}
		line(name, s)
	}
	if haveStores {
		line("unattributed", use.Unattributed)
	}
	line("total", use.Total)
	tw.Flush()
	fmt.Fprintf(w, "\n%s of %s (--cache-size) in %s\n", humanize.IBytes(uint64(use.Total.Bytes)), humanize.IBytes(uint64(use.MaxBytes)), use.CacheDir)
	if haveStores && use.Unattributed.Files > 0 {
		fmt.Fprintln(w, "unattributed: files no model of these stores has now (older versions, other stores)")
	}
	if !haveStores {
		fmt.Fprintln(w, "no store given (--store or DIGITS_MODEL_STORE_URL): files not counted by store")
	}
	if use.Processes > 0 {
		fmt.Fprintf(w, "in use by %d processes now (mounts, imports, prefetches); downloads in progress: %s\n",
			use.Processes, humanize.IBytes(uint64(use.PartialBytes)))
	}
}

func runCacheClear(c *cli.Context) error {
	if c.NArg() > 1 {
		return fmt.Errorf("cache clear: expected at most one STORE, got %d arguments", c.NArg())
	}
	only := c.Args().First()
	cfg, log, err := cacheCommandConfig(c)
	if err != nil {
		return fmt.Errorf("cache clear: %w", err)
	}
	defer syncLogger(log)
	objs, err := engine.ListObjects(cfg.CacheDir)
	if err != nil {
		return fmt.Errorf("cache clear: %w", err)
	}
	if only != "" {
		if objs, err = storeObjects(c, cfg, log, only, objs); err != nil {
			return fmt.Errorf("cache clear: %w", err)
		}
	}
	removed, kept, err := engine.RemoveObjects(objs)
	what := "the cache"
	if only != "" {
		what = "store " + only
	}
	fmt.Fprintf(c.App.Writer, "%s: removed %d files (%s)", what, len(removed), humanize.IBytes(uint64(sumBytes(removed))))
	if len(kept) > 0 {
		fmt.Fprintf(c.App.Writer, "; kept %d files in use (%s)", len(kept), humanize.IBytes(uint64(sumBytes(kept))))
	}
	fmt.Fprintln(c.App.Writer)
	if err != nil {
		return fmt.Errorf("cache clear: %w", err)
	}
	return nil
}

// storeObjects keeps the objects of the store called name.
func storeObjects(c *cli.Context, cfg storeConfig, log *zap.Logger, name string, objs []engine.CacheObject) ([]engine.CacheObject, error) {
	if len(cfg.Stores) == 0 {
		return nil, errors.New("no store given (--store or DIGITS_MODEL_STORE_URL) to find " + name + " in")
	}
	owner, stores, err := attribute(c.Context, cfg, log, name, c.App.ErrWriter)
	if err != nil {
		return nil, err
	}
	if len(stores) == 0 {
		var names []string
		for _, s := range cfg.Stores {
			names = append(names, s.Name)
		}
		return nil, fmt.Errorf("no store named %q (stores: %s)", name, strings.Join(names, ", "))
	}
	if !stores[0].Listed {
		return nil, fmt.Errorf("store %s could not be listed: its files are unknown; nothing removed", name)
	}
	var out []engine.CacheObject
	for _, o := range objs {
		if owner[o.Key] == name {
			out = append(out, o)
		}
	}
	return out, nil
}

func sumBytes(objs []engine.CacheObject) int64 {
	var n int64
	for _, o := range objs {
		n += o.Size
	}
	return n
}

// cacheCommandConfig is the configuration of du and clear, whose stores
// are optional: without any, only the cache directory matters. As for
// ls, models a store lists are not their business: only errors are
// logged unless told otherwise.
func cacheCommandConfig(c *cli.Context) (storeConfig, *zap.Logger, error) {
	level := "error"
	if c.IsSet("log-level") {
		level = c.String("log-level")
	}
	if values, err := storeValues(c); err != nil || strings.TrimSpace(strings.ReplaceAll(strings.Join(values, ""), ",", "")) != "" {
		return quietConfig(c)
	}
	cfg := storeConfig{LogLevel: level, LogFormat: c.String("log-format")}
	var err error
	if cfg.CacheSize, err = parseSize(c.String("cache-size")); err != nil {
		return cfg, nil, fmt.Errorf("--cache-size: %w", err)
	}
	if cfg.CacheDir = c.String("cache-dir"); cfg.CacheDir == "" {
		if cfg.CacheDir, err = defaultCacheDir(); err != nil {
			return cfg, nil, err
		}
	}
	if cfg.CacheDir, err = filepath.Abs(cfg.CacheDir); err != nil {
		return cfg, nil, fmt.Errorf("--cache-dir: %w", err)
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	return cfg, log, err
}

// quietConfig is the configuration of a command that lists stores for
// its own ends (du, clear, prefetch): the other models' problems are not
// its business, so only errors are logged unless told otherwise.
func quietConfig(c *cli.Context) (storeConfig, *zap.Logger, error) {
	cfg, err := storeConfigFrom(c)
	if err != nil {
		return cfg, nil, err
	}
	if !c.IsSet("log-level") {
		cfg.LogLevel = "error"
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	return cfg, log, err
}

// attribute lists the models of the configured stores (only the one
// called only, when set) and returns which store each current file
// version belongs to, by key, with one storeUse per store. A store that
// cannot be listed is reported on errOut and marked not Listed.
func attribute(ctx context.Context, cfg storeConfig, log *zap.Logger, only string, errOut io.Writer) (map[string]string, []storeUse, error) {
	owner := map[string]string{}
	var uses []storeUse
	if len(cfg.Stores) == 0 {
		return owner, uses, nil
	}
	stores, err := storeClients(cfg)
	if err != nil {
		return nil, nil, err
	}
	// No content cache: listing never downloads here (a store that sends
	// no sizes leaves those models unlisted, or as last kept).
	cat := cache.NewCatalog(stores, noContent{}, cache.Config{
		TTL: cfg.TTL, Reserved: fs.ReservedStoreNames, Logger: log.Named("catalog"), MetaDir: metaDir(cfg.CacheDir),
	})
	defer cat.Close()
	for _, st := range cat.Stores() {
		if only != "" && st.Name != only {
			continue
		}
		u := storeUse{Name: st.Name, URL: st.URL()}
		models, err := cat.Models(ctx, st)
		if err != nil {
			fmt.Fprintf(errOut, "modelstorefs: store %s: %v\n", st.Name, err)
		}
		u.Listed = err == nil
		for _, m := range models {
			for _, f := range m.Files() {
				if f.Kind != cache.KindRemote {
					continue
				}
				// Keyed by the version a mount opened it as.
				ref, err := cat.Confirm(ctx, cache.Ref{Store: st, Model: m.Name, Name: f.Remote, Meta: f.Meta})
				if err == nil {
					owner[ref.Key()] = st.Name
				}
			}
		}
		uses = append(uses, u)
	}
	return owner, uses, nil
}

// noContent is the content of a catalog that only lists: nothing is
// downloaded.
type noContent struct{}

var errNoContent = errors.New("not downloading: listing only")

func (noContent) Open(context.Context, cache.Ref) (cache.Handle, error) { return nil, errNoContent }
func (noContent) Cached(cache.Ref) int64                                { return 0 }
func (noContent) Digest(cache.Ref) (string, string)                     { return "", "" }
func (noContent) Stats() cache.ContentStats                             { return cache.ContentStats{} }
func (noContent) Close() error                                          { return nil }
