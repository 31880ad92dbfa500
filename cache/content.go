package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/modelstorefs/modelstorefs/remote"
)

// Ref names one version of a remote file.
type Ref struct {
	Store *Store
	Model string      // model folder on the store
	Name  string      // file name below it
	Meta  remote.Meta // the version: size and validators
}

// URL is the file's address.
func (r Ref) URL() string { return r.Store.Remote.URL(r.Model, r.Name) }

// key identifies a version: URL plus validators plus size.
func (r Ref) key() string {
	h := sha256.New()
	for _, s := range []string{r.URL(), r.Meta.ETag, r.Meta.LastModified, strconv.FormatInt(r.Meta.Size, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Content serves file bodies. It is the one seam between the filesystem and
// however bytes get from the store to the reader.
type Content interface {
	// Open returns a reader of the file's bytes. It waits at most until ctx
	// ends (the download itself goes on for other readers).
	Open(ctx context.Context, ref Ref) (Handle, error)
	// Close stops all downloads and waits for them.
	Close() error
}

// Handle reads one opened file.
type Handle interface {
	io.ReaderAt
	// Size is the file's length.
	Size() int64
	// Fd is an OS file descriptor holding the complete bytes, or -1.
	Fd() int
	Close() error
}

// DiskConfig tunes a DiskContent.
type DiskConfig struct {
	Dir      string // cache root (created)
	MaxBytes int64  // total size of complete files kept (default 10 GiB)
	Attempts int    // download attempts per open (default 3)
	Logger   *zap.Logger
}

// DiskContent is an on-disk cache of whole files: a file is downloaded to a
// temporary file, its size verified, then renamed into place, so nothing
// partial is ever served or kept. Least recently used files are evicted
// beyond MaxBytes, never while open.
type DiskContent struct {
	// Read only.
	cfg       DiskConfig
	log       *zap.Logger
	objects   string
	tmp       string
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	downloads singleflight.Group

	mu    sync.Mutex // protects the fields below
	index map[string]*diskEntry
	total int64
}

type diskEntry struct {
	path    string
	size    int64
	lastUse time.Time
	opens   int
}

// NewDiskContent opens (or creates) the cache under cfg.Dir, indexing the
// complete files already there and removing leftovers of interrupted
// downloads.
func NewDiskContent(cfg DiskConfig) (*DiskContent, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 10 << 30
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	root := filepath.Join(cfg.Dir, "v1")
	d := &DiskContent{
		cfg:     cfg,
		log:     cfg.Logger,
		objects: filepath.Join(root, "objects"),
		tmp:     filepath.Join(root, "tmp"),
		index:   map[string]*diskEntry{},
	}
	if err := os.RemoveAll(d.tmp); err != nil {
		return nil, fmt.Errorf("cache dir: clearing partial downloads: %w", err)
	}
	for _, dir := range []string{d.objects, d.tmp} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("cache dir: %w", err)
		}
	}
	err := filepath.WalkDir(d.objects, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		d.index[de.Name()] = &diskEntry{path: p, size: info.Size(), lastUse: info.ModTime()}
		d.total += info.Size()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache dir: indexing: %w", err)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.mu.Lock()
	d.evictLocked()
	d.mu.Unlock()
	return d, nil
}

// Close stops all downloads and waits for them.
func (d *DiskContent) Close() error {
	d.cancel()
	d.wg.Wait()
	return nil
}

// Open implements Content.
func (d *DiskContent) Open(ctx context.Context, ref Ref) (Handle, error) {
	key := ref.key()
	if h, ok := d.openCached(key); ok {
		return h, nil
	}
	ch := d.downloads.DoChan(key, func() (any, error) {
		d.wg.Add(1)
		defer d.wg.Done()
		return nil, d.download(d.ctx, ref, key)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
	}
	if h, ok := d.openCached(key); ok {
		return h, nil
	}
	return nil, fmt.Errorf("%s: evicted right after download (cache too small?)", ref.URL())
}

func (d *DiskContent) openCached(key string) (Handle, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.index[key]
	if !ok {
		return nil, false
	}
	f, err := os.Open(e.path)
	if err != nil {
		// Removed behind our back: forget it and download again.
		d.total -= e.size
		delete(d.index, key)
		return nil, false
	}
	e.opens++
	now := time.Now()
	e.lastUse = now
	// The mtime records use across restarts; failure only costs LRU accuracy.
	_ = os.Chtimes(e.path, now, now)
	return &diskHandle{f: f, size: e.size, release: func() { d.release(key) }}, true
}

func (d *DiskContent) release(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.index[key]; ok {
		e.opens--
		d.evictLocked()
	}
}

// download fetches ref into a temp file, verifies it, and renames it into
// place. Transient failures are retried from scratch.
func (d *DiskContent) download(ctx context.Context, ref Ref, key string) error {
	var err error
	for attempt := 1; attempt <= d.cfg.Attempts; attempt++ {
		err = d.downloadOnce(ctx, ref, key)
		if err == nil || ctx.Err() != nil || errors.Is(err, remote.ErrChanged) || errors.Is(err, remote.ErrNotFound) {
			break
		}
		d.log.Warn("download failed, retrying", zap.String("url", ref.URL()), zap.Int("attempt", attempt), zap.Error(err))
	}
	if err != nil {
		d.log.Error("download failed", zap.String("url", ref.URL()), zap.Error(err))
	}
	return err
}

func (d *DiskContent) downloadOnce(ctx context.Context, ref Ref, key string) error {
	tmp, err := os.CreateTemp(d.tmp, key[:16]+"-*")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	start := time.Now()
	n, err := ref.Store.Remote.Download(ctx, tmp, ref.Meta, ref.Model, ref.Name)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	final := filepath.Join(d.objects, key[:2], key)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	d.log.Debug("downloaded", zap.String("url", ref.URL()), zap.Int64("bytes", n), zap.Duration("took", time.Since(start)))
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.index[key]; ok {
		d.total -= old.size
	}
	// opens=1 keeps the new file until the waiting reader has opened it.
	d.index[key] = &diskEntry{path: final, size: n, lastUse: time.Now(), opens: 1}
	d.total += n
	d.evictLocked()
	d.index[key].opens--
	return nil
}

// evictLocked removes least recently used files not in use until the total
// fits MaxBytes.
func (d *DiskContent) evictLocked() {
	if d.total <= d.cfg.MaxBytes {
		return
	}
	keys := make([]string, 0, len(d.index))
	for k, e := range d.index {
		if e.opens == 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return d.index[keys[i]].lastUse.Before(d.index[keys[j]].lastUse) })
	for _, k := range keys {
		if d.total <= d.cfg.MaxBytes {
			return
		}
		e := d.index[k]
		if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("cache eviction failed", zap.String("path", e.path), zap.Error(err))
			continue
		}
		d.total -= e.size
		delete(d.index, k)
	}
}

type diskHandle struct {
	f       *os.File
	size    int64
	release func()
	once    sync.Once
}

func (h *diskHandle) ReadAt(p []byte, off int64) (int, error) { return h.f.ReadAt(p, off) }
func (h *diskHandle) Size() int64                             { return h.size }
func (h *diskHandle) Fd() int                                 { return int(h.f.Fd()) }

func (h *diskHandle) Close() error {
	err := h.f.Close()
	h.once.Do(h.release)
	return err
}
