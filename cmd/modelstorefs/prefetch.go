package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/engine"
	"github.com/modelstorefs/modelstorefs/fs"
	"github.com/modelstorefs/modelstorefs/remote"
)

// modelstorefs prefetch: a node's cache warmed before anyone reads.
//
// A running mount indexes its cache directory once, at its start: a file
// another process commits there later is not seen by it (it would download
// it again). So when a mount on the same --cache-dir serves the store,
// prefetch reads the files through that mount, and the mount caches them;
// otherwise it downloads them into the cache itself, through the engine.
// Either way a file counts only once committed complete (the engine never
// keeps a partial file), so an interrupted run is resumed by running it
// again: what is complete is skipped.

func prefetchCommand() *cli.Command {
	return &cli.Command{
		Name:      "prefetch",
		Usage:     "download models' files into the on-disk cache, before anyone reads them",
		ArgsUsage: "STORE/MODEL...",
		Description: `Warms --cache-dir with the model folders' store files, with import's
progress display. Files already complete in the cache are skipped, so an
interrupted prefetch resumes where it stopped (a file cut off midway is
downloaded again from its start). When a modelstorefs mount with the same
cache directory serves the store, the files are read through it, so that
the running mount knows them; otherwise they are downloaded here into the
cache, for the mounts started on it afterwards. Give the same --cache-size
as the mount's: a smaller one evicts files to fit. The exit status is 1 if
any file could not be cached.

Examples:
   modelstorefs prefetch --cache-dir /var/cache/modelstorefs 127.0.0.1_8000/lenet 127.0.0.1_8000/inception-tf`,
		Flags:        slices.Concat(storeFlags(), authFlags(), cacheFlags(), downloadFlags(), logFlags("warn")),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return errors.New("prefetch: give at least one STORE/MODEL (list them with: modelstorefs ls)")
			}
			err := runPrefetch(c)
			if err != nil && c.Context.Err() != nil {
				return errors.New("prefetch: interrupted; run it again to resume (complete files are kept)")
			}
			if err != nil {
				return fmt.Errorf("prefetch: %w", err)
			}
			return nil
		},
	}
}

// downloadFlags are the mount's tuning flags that bear on downloads (all
// but --direct-io, which is about the mount's readers).
func downloadFlags() []cli.Flag {
	return slices.DeleteFunc(tuningFlags(), func(f cli.Flag) bool { return f.Names()[0] == "direct-io" })
}

// fileFetcher puts one store file into the cache.
type fileFetcher interface {
	// complete reports whether the file is complete in the cache.
	complete(ref cache.Ref, name string) bool
	// fetch reads the file, telling progress the bytes read so far, and
	// returns once it is complete in the cache.
	fetch(ctx context.Context, ref cache.Ref, name string, progress func(int64)) error
}

func runPrefetch(c *cli.Context) error {
	type target struct{ store, model string }
	var targets []target
	for _, arg := range c.Args().Slice() {
		s, m, err := parseStoreModel(arg)
		if err != nil {
			return err
		}
		targets = append(targets, target{s, m})
	}
	cfg, log, err := quietConfig(c)
	if err != nil {
		return err
	}
	defer syncLogger(log)
	mounts := servingMounts(cfg)
	cat, closeCat, engineFetch, err := prefetchCatalog(cfg, log, mounts)
	if err != nil {
		return err
	}
	defer closeCat()
	failed := 0
	for _, t := range targets {
		st, err := findStore(cat, t.store)
		if err != nil {
			return err
		}
		var f fileFetcher = engineFetch
		if dir, ok := mounts[t.store]; ok {
			f = mountFetcher{dir: dir, cacheDir: cfg.CacheDir}
			fmt.Fprintf(c.App.ErrWriter, "modelstorefs: %s: through the mount at %s (same cache directory)\n", t.store, filepath.Dir(dir))
		}
		n, err := prefetchModel(c, cat, st, t.model, f)
		if err != nil {
			return err
		}
		failed += n
	}
	if failed > 0 {
		return fmt.Errorf("%d files could not be cached", failed)
	}
	return nil
}

// prefetchCatalog lists the stores with a content cache of this process
// when some store is not served by a mount on the cache directory (the
// returned fetcher downloads through it), else without one: no cache is
// opened beside the mount's.
func prefetchCatalog(cfg storeConfig, log *zap.Logger, mounts map[string]string) (*cache.Catalog, func(), fileFetcher, error) {
	if len(mounts) < len(cfg.Stores) {
		cat, closeCat, err := openCatalog(cfg, "", log)
		if err != nil {
			return nil, nil, nil, err
		}
		sc, _ := cat.Content().(*engine.StreamContent)
		return cat, closeCat, engineFetcher{cat: cat, sc: sc}, nil
	}
	stores, err := storeClients(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	cat := cache.NewCatalog(stores, noContent{}, cache.Config{
		TTL: cfg.TTL, Reserved: fs.ReservedStoreNames, Logger: log.Named("catalog"), MetaDir: metaDir(cfg.CacheDir),
	})
	return cat, cat.Close, nil, nil
}

// prefetchModel caches the store files of one model, with a progress
// display; it returns how many files failed (each reported; a model that
// cannot be had counts as one), and an error only when interrupted.
func prefetchModel(c *cli.Context, cat *cache.Catalog, st *cache.Store, model string, f fileFetcher) (int, error) {
	m, err := cat.Sized(c.Context, st, model) // the progress needs the total
	if c.Context.Err() != nil {
		return 0, c.Context.Err()
	}
	if err != nil {
		hint := ""
		if errors.Is(err, cache.ErrNotFound) {
			hint = " (list the models with: modelstorefs ls)"
		}
		fmt.Fprintf(c.App.ErrWriter, "modelstorefs: %s/%s: %v%s\n", st.Name, model, err, hint)
		return 1, nil
	}
	var files []cache.File
	var total, done, skipped int64
	for _, file := range m.Files() {
		if file.Kind == cache.KindRemote {
			files = append(files, file)
			total += file.Size()
		}
	}
	label := st.Name + "/" + model
	bar := newProgress(c.App.ErrWriter, label)
	failed, fetched := 0, 0
	for _, file := range files {
		// The cache keys a file by the version its validators name, which
		// a listing's size alone does not.
		ref, err := cat.Confirm(c.Context, cache.Ref{Store: st, Model: m.Name, Name: file.Remote, Meta: file.Meta})
		if err == nil && f.complete(ref, file.Name) {
			done += file.Size()
			skipped += file.Size()
			bar.update(done, total)
			continue
		}
		base := done
		if err == nil {
			err = f.fetch(c.Context, ref, file.Name, func(n int64) { bar.update(base+n, total) })
		}
		done = base + file.Size()
		bar.update(done, total)
		if err != nil {
			if c.Context.Err() != nil {
				bar.finish()
				return failed, err
			}
			failed++
			fmt.Fprintf(c.App.ErrWriter, "modelstorefs: %s/%s: %v\n", label, file.Name, err)
			continue
		}
		fetched++
	}
	bar.finish()
	fmt.Fprintf(c.App.Writer, "%s: %d files, %s: %d fetched, %d already cached (%s), %d failed\n", label, len(files),
		humanize.IBytes(uint64(total)), fetched, len(files)-fetched-failed, humanize.IBytes(uint64(skipped)), failed)
	return failed, nil
}

// engineFetcher caches files through this process's content cache.
type engineFetcher struct {
	cat *cache.Catalog
	sc  *engine.StreamContent
}

func (e engineFetcher) complete(ref cache.Ref, _ string) bool {
	complete, _ := e.sc.CacheState(ref)
	return complete
}

func (e engineFetcher) fetch(ctx context.Context, ref cache.Ref, _ string, progress func(int64)) error {
	h, err := e.cat.Content().Open(ctx, ref)
	if err != nil {
		return err
	}
	defer h.Close() // after the commit: a file in use is never evicted
	if _, cached := e.sc.CacheState(ref); !cached {
		return fmt.Errorf("no room in the cache for its %s (see --cache-size, --cache-min-free)", humanize.IBytes(uint64(max(ref.Meta.Size, 0))))
	}
	if err := readThrough(ctx, h.Size(), progress, func(p []byte, off int64) (int, error) { return h.ReadAt(ctx, p, off) }); err != nil {
		return err
	}
	return waitCommitted(ctx, func() (bool, bool) { return e.sc.CacheState(ref) })
}

// mountFetcher caches files by reading them through a running mount.
type mountFetcher struct {
	dir      string // the store's directory in the mount
	cacheDir string // the mount's cache directory
}

// The mount's own view of a file is the one read (the mount and this
// process resolve the model each on their own): its size from stat, its
// validators from its attributes, which make the key of its cache file.

func (m mountFetcher) complete(ref cache.Ref, name string) bool {
	path := filepath.Join(m.dir, ref.Model, name)
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	complete, _ := m.state(path, ref, fi.Size())
	return complete
}

func (m mountFetcher) fetch(ctx context.Context, ref cache.Ref, name string, progress func(int64)) error {
	path := filepath.Join(m.dir, ref.Model, name)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := readThrough(ctx, fi.Size(), progress, f.ReadAt); err != nil {
		return err
	}
	return waitCommitted(ctx, func() (bool, bool) { return m.state(path, ref, fi.Size()) })
}

// state says whether the mounted file's version is committed in the cache
// directory, and whether the mount holds any of its bytes (a download).
func (m mountFetcher) state(path string, ref cache.Ref, size int64) (complete, cached bool) {
	ref.Meta = remote.Meta{Size: size, ETag: xattr(path, "user.modelstore.etag"), LastModified: xattr(path, "user.modelstore.last_modified")}
	if engine.HasObject(m.cacheDir, ref.Key()) {
		return true, true
	}
	n, err := strconv.ParseInt(xattr(path, "user.modelstore.cached"), 10, 64)
	return false, err == nil && n > 0
}

func xattr(path, name string) string {
	n, err := syscall.Getxattr(path, name, nil)
	if err != nil || n <= 0 {
		return ""
	}
	buf := make([]byte, n)
	if n, err = syscall.Getxattr(path, name, buf); err != nil || n < 0 {
		return ""
	}
	return string(buf[:n])
}

// readThrough reads size bytes with readAt, telling progress.
func readThrough(ctx context.Context, size int64, progress func(int64), readAt func([]byte, int64) (int, error)) error {
	buf := make([]byte, 4<<20)
	var off int64
	for off < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := readAt(buf[:min(int64(len(buf)), size-off)], off)
		off += int64(n)
		progress(off)
		switch {
		case errors.Is(err, io.EOF) && off == size:
			return nil
		case errors.Is(err, io.EOF):
			return fmt.Errorf("the file ended after %d of its %d bytes", off, size)
		case err != nil:
			return err
		}
	}
	return nil
}

// waitCommitted waits until state says the file is complete in the cache,
// or that it left it (its commit failed).
func waitCommitted(ctx context.Context, state func() (complete, cached bool)) error {
	for {
		complete, cached := state()
		switch {
		case complete:
			return nil
		case !cached:
			return errors.New("read, but not kept in the cache (see the log of the process that downloaded it)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// servingMounts maps each configured store that a running mount on the
// same cache directory serves to its directory in that mount.
func servingMounts(cfg storeConfig) map[string]string {
	out := map[string]string{}
	mounts, err := activeMounts(statsTimeout)
	if err != nil {
		return out
	}
	for _, spec := range cfg.Stores {
		want := redactURLs(spec.URL)
		for _, m := range mounts {
			if m.Stats == nil || m.CacheDir != cfg.CacheDir {
				continue
			}
			for _, s := range m.Stores {
				if sameURL(s.URL, want) {
					out[spec.Name] = filepath.Join(m.Mountpoint, s.Name)
				}
			}
		}
	}
	return out
}

// sameURL compares two store base URLs, whatever their case or trailing /.
func sameURL(a, b string) bool {
	ua, erra := url.Parse(a)
	ub, errb := url.Parse(b)
	return erra == nil && errb == nil && originOfURL(ua) == originOfURL(ub) &&
		filepath.Clean("/"+ua.Path) == filepath.Clean("/"+ub.Path)
}

func originOfURL(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + u.Hostname() + ":" + port
}
