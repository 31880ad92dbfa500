package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

// Defaults of StreamConfig, named once: the command's flags show them.
const (
	DefaultMaxBytes      = 10 << 30
	DefaultMinFree       = 1 << 30
	DefaultChunkSize     = 8 << 20
	DefaultParallel      = 16
	DefaultStoreParallel = 32
	DefaultBufferBudget  = 256 << 20
	DefaultRetryWindow   = 30 * time.Second
)

// StreamConfig tunes a StreamContent. The zero value gives the defaults.
type StreamConfig struct {
	Dir      string // cache root (created)
	MaxBytes int64  // bound on complete and reserved bytes (default 10 GiB)
	// MinFree is how much of the cache's filesystem to keep free: nil for
	// the default (1 GiB), a pointer to 0 for no floor.
	MinFree   *int64
	ChunkSize int64 // unit of download, of buffers and of cache writes (default 8 MiB)
	// Parallel caps the streams (ranged GETs) of one file (default 16);
	// StoreParallel caps those of one store (default 32). How many are
	// used below the caps is measured (see doc.go).
	Parallel      int
	StoreParallel int
	// BufferBudget bounds the memory of all downloads' buffers, and so how
	// far cache writes may fall behind the network (default 256 MiB).
	BufferBudget int64
	// WriteBehind sends every chunk through memory, as on a busy disk
	// (benchmarks and the fault matrix).
	WriteBehind bool
	// NoVerify trusts the store: no hash of the bytes, no check against
	// the digests it states, none recorded (the cost of hashing, measured).
	NoVerify bool
	// RetryWindow is how long a download may fail without progress before
	// its readers get an error (default 30s).
	RetryWindow time.Duration
	Logger      *zap.Logger
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MinFree == nil {
		c.MinFree = new(int64(DefaultMinFree))
	}
	c.MinFree = new(max(*c.MinFree, 0))
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.StoreParallel <= 0 {
		c.StoreParallel = DefaultStoreParallel
	}
	if c.BufferBudget <= 0 {
		c.BufferBudget = DefaultBufferBudget
	}
	c.BufferBudget = max(c.BufferBudget, 4*c.ChunkSize)
	if c.RetryWindow <= 0 {
		c.RetryWindow = DefaultRetryWindow
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// StreamContent is the cache's Content, and tells it of changed files.
var (
	_ cache.Content        = (*StreamContent)(nil)
	_ cache.ChangeNotifier = (*StreamContent)(nil)
	_ cache.Handle         = (*fileHandle)(nil)
	_ cache.Handle         = (*streamHandle)(nil)
)

// StreamContent is the read engine: the first open of a file starts one
// download into the on-disk cache (several ranged GETs in parallel where
// the server honours Range, one stream where it does not), and readers are
// answered as soon as their bytes are on disk. Complete files are kept
// across restarts, keyed by URL, validators and size; nothing partial is
// ever taken as complete. Least recently used files not in use are evicted
// to stay within MaxBytes and above the free-space floor; when no room can
// be made, reads go straight to the network.
type StreamContent struct {
	// Read only.
	cfg         StreamConfig
	minFree     int64 // *cfg.MinFree
	log         *zap.Logger
	objects     string
	partial     string
	ctx         context.Context // downloads run on it, never on a reader's
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	statfs      func(path string) (free int64, err error)
	lock        *os.File                                           // held while this process uses its partial directory
	onChange    func(cache.Ref)                                    // told when a file changed on the server
	onRefused   func(cache.Ref, error)                             // told when a file's bytes were refused, or verified
	mirrors     atomic.Pointer[func(cache.Ref) []cache.Ref]        // other stores' copies of a file (mirror.go)
	writeAt     func(f *os.File, b []byte, off int64) (int, error) // the writer's write (tests replace it)
	commitHook  func()                                             // runs before a download's commit (tests)
	skipReserve bool                                               // no fallocate: the disk fills mid-file (tests)

	disk   diskWatch    // whether the cache disk keeps up (atomics)
	pool   *bufferPool  // the buffer budget (leaf lock)
	queue  *writeQueue  // the write-behind queue (leaf lock); one writer drains it
	policy *storePolicy // streams per store (leaf lock)

	mu sync.Mutex // protects the fields below
	index
	closed  bool
	stats   cache.ContentStats
	seq     uint64 // numbers partial files
	started int64  // bytes of all downloads started, for free-space estimates
	// uncached: files read into memory (no room in the cache), one per
	// file version, shared by its handles.
	uncached map[string]*memFile
	// downloads: every download running, for reclaiming memory from those
	// that gave up their cache copy.
	downloads map[*download]struct{}
	// unsized: downloads of files whose size the server does not tell, one
	// per file, on the cache's context.
	unsized map[string]*unsizedFetch
	// warned: files already logged as not cached (one line per file and
	// cause; the count is in the stats).
	warned map[string]struct{}
}

// Stats returns the current counters.
func (s *StreamContent) Stats() cache.ContentStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Evictions, st.EvictedBytes = s.evictions, s.evictedBytes
	for _, e := range s.entries {
		if e.complete {
			st.Files++
		} else {
			st.InFlight++
		}
	}
	st.InMemory = len(s.uncached)
	st.UsedBytes, st.MaxBytes = s.total, s.cfg.MaxBytes
	st.BufferBytes, st.BufferMax = s.pool.inUse(), s.cfg.BufferBudget
	return st
}

// Digest implements cache.Content: the SHA-256 of ref's complete cache
// copy and how it was verified.
func (s *StreamContent) Digest(ref cache.Ref) (sha256, verified string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[ref.Key()]; ok && e.complete {
		return e.sha256, e.verified
	}
	return "", ""
}

// countMismatch counts a file refused for its digest.
func (s *StreamContent) countMismatch() {
	s.mu.Lock()
	s.stats.DigestMismatches++
	s.mu.Unlock()
}

// Cached returns how many bytes of ref are in the cache now.
func (s *StreamContent) Cached(ref cache.Ref) int64 {
	s.mu.Lock()
	e, ok := s.entries[ref.Key()]
	var (
		complete bool
		size     int64
		dl       *download
	)
	if ok {
		complete, size, dl = e.complete, e.size, e.dl
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return 0
	case complete:
		return size
	case dl != nil:
		return dl.present()
	}
	return 0
}

// NewStreamContent opens (or creates) the cache under cfg.Dir. Complete
// files from earlier runs are indexed; partial ones are removed, since a
// half-written file can never be trusted.
func NewStreamContent(cfg StreamConfig) (*StreamContent, error) {
	cfg = cfg.withDefaults()
	root := filepath.Join(cfg.Dir, "v2")
	s := &StreamContent{
		cfg:       cfg,
		minFree:   *cfg.MinFree,
		log:       cfg.Logger,
		objects:   filepath.Join(root, "objects"),
		partial:   filepath.Join(root, "partial"),
		statfs:    freeBytes,
		index:     index{max: cfg.MaxBytes, entries: map[string]*entry{}},
		queue:     newWriteQueue(),
		policy:    newStorePolicy(cfg.StoreParallel),
		disk:      diskWatch{writeBehind: cfg.WriteBehind},
		uncached:  map[string]*memFile{},
		downloads: map[*download]struct{}{},
		unsized:   map[string]*unsizedFetch{},
		warned:    map[string]struct{}{},
	}
	s.pool = newBufferPool(cfg.BufferBudget, cfg.ChunkSize, s.reclaim)
	for _, dir := range []string{s.objects, s.partial} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("cache dir: %w", err)
		}
	}
	// Several processes (a mount, an import) may share the cache: each
	// downloads into a directory of its own, held by a lock, and clears
	// only what no live process holds.
	if err := clearStalePartials(s.partial); err != nil {
		return nil, fmt.Errorf("cache dir: clearing partial downloads: %w", err)
	}
	// The lock comes first, then the directory: a cleaner never sees a
	// live process's directory without its held lock.
	lock, err := createLocked(s.partial)
	if err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	s.lock = lock
	mine := strings.TrimSuffix(lock.Name(), ".lock")
	if err := os.Mkdir(mine, 0o700); err != nil {
		lock.Close()
		os.Remove(lock.Name())
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	s.partial = mine
	err = filepath.WalkDir(s.objects, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		e := parseObjectName(de.Name())
		if old, ok := s.entries[e.key]; ok && old.sha256 != "" {
			return nil // two names of one key (a crash between renames): keep the first
		}
		e.path, e.size, e.lastUse, e.complete = p, info.Size(), info.ModTime(), true
		s.entries[e.key] = e
		s.noteDigest(e)
		s.total += info.Size()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache dir: indexing: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	s.evictLocked(0)
	s.unlockAndReap()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.writer()
	}()
	return s, nil
}

// OnChange registers a function told when a download finds that a file
// changed on the server (the catalog then drops the stale metadata).
func (s *StreamContent) OnChange(fn func(cache.Ref)) { s.onChange = fn }

// OnRefused implements cache.RefusalNotifier.
func (s *StreamContent) OnRefused(fn func(cache.Ref, error)) { s.onRefused = fn }

// refused tells the catalog that ref's bytes were refused (err) or
// verified (nil).
func (s *StreamContent) refused(ref cache.Ref, err error) {
	if s.onRefused != nil {
		s.onRefused(ref, err)
	}
}

// Close stops all downloads and waits for them.
func (s *StreamContent) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	os.RemoveAll(s.partial)
	os.Remove(s.lock.Name())
	s.lock.Close()
	return nil
}

// Open implements Content. It never waits for the download (reads do),
// and does no disk I/O under the cache's lock.
func (s *StreamContent) Open(ctx context.Context, ref cache.Ref) (cache.Handle, error) {
	if ref.Meta.Size < 0 {
		return s.openUnsized(ctx, ref)
	}
	key := ref.Key()
	var (
		free      int64
		freeErr   error
		startedAt int64
	)
	s.mu.Lock()
	for sampled := false; ; sampled = true {
		if e, ok := s.entries[key]; ok {
			if e.complete {
				return s.openComplete(ctx, ref, e) // unlocks
			}
			if !e.dl.failed() {
				s.touchLocked(e)
				s.stats.Joins++
				// Counted under the lock: the download's end (which takes
				// it first) then sees this handle and keeps the file open.
				h := newStreamHandle(e.dl, s.releaser(e))
				s.mu.Unlock()
				return h, nil
			}
			// Failed, not yet cleaned up: never join it; start afresh.
			e.detached = true
			s.total -= e.size
			delete(s.entries, key)
		}
		if e := s.sameBytes(ref); e != nil {
			s.stats.SharedHits++
			return s.openComplete(ctx, ref, e) // unlocks
		}
		if s.closed {
			s.mu.Unlock()
			return nil, errors.New("cache closed")
		}
		if sampled {
			break
		}
		// The free space is read without the lock; downloads started
		// meanwhile are taken off it below.
		startedAt = s.started
		s.mu.Unlock()
		found := findObject(s.objects, key)
		free, freeErr = s.statfs(s.partial)
		s.mu.Lock()
		if _, ok := s.entries[key]; !ok && found != nil {
			// Committed by another process sharing the cache directory
			// (an import, a prefetch) since this one indexed it.
			s.entries[key] = found
			s.noteDigest(found)
			s.total += found.size
		}
	}
	if freeErr == nil {
		free -= s.started - startedAt
	}
	e, err := s.startLocked(ref, key, free, freeErr)
	if err != nil {
		h := s.openInMemoryLocked(ref, key, err)
		s.unlockAndReap()
		return h, nil
	}
	s.stats.Misses++
	s.touchLocked(e)
	h := &streamHandle{d: e.dl, release: s.releaser(e)} // startLocked counted its handle
	s.unlockAndReap()
	return h, nil
}

// openComplete opens the cache file of a complete entry; it is called
// with the lock held and releases it. The entry is counted as open first,
// so that it is not evicted while its file is opened.
func (s *StreamContent) openComplete(ctx context.Context, ref cache.Ref, e *entry) (cache.Handle, error) {
	s.touchLocked(e)
	s.stats.Hits++
	path, at := e.path, e.lastUse
	s.mu.Unlock()
	f, err := os.Open(path)
	if err == nil {
		// The mtime records use across restarts; failure only costs LRU accuracy.
		_ = os.Chtimes(path, at, at)
		return &fileHandle{f: f, size: e.size, release: s.releaser(e)}, nil
	}
	s.mu.Lock()
	if e.path != path && s.entries[e.key] == e {
		// Renamed meanwhile (its digest recorded): open it there.
		e.opens--
		return s.openComplete(ctx, ref, e)
	}
	// Removed behind our back: forget it, download again.
	e.opens--
	if s.entries[e.key] == e {
		s.total -= e.size
		delete(s.entries, e.key)
		s.dropDigest(e)
	}
	s.mu.Unlock()
	return s.Open(ctx, ref)
}

// openInMemoryLocked serves a file the cache has no room for (why) from
// memory: one memFile per file version, shared by its handles. A store
// that ignores Range gets a whole-file stream per handle instead (every
// reader must read from the start anyway).
func (s *StreamContent) openInMemoryLocked(ref cache.Ref, key string, why error) cache.Handle {
	s.stats.Direct++
	if _, ok := s.warned[key]; !ok {
		if len(s.warned) >= maxWarned {
			clear(s.warned)
		}
		s.warned[key] = struct{}{}
		s.log.Warn("not caching: reading from the store into memory (logged once per file; .stats counts them as direct)",
			zap.String("url", ref.URL()), zap.Error(why))
	}
	if ref.Store.Remote.RangeSupport() == remote.RangeNo && ref.Meta.Size <= maxWholeInMemory {
		d := newDownload(s, ref, nil)
		d.readers.handles = 1 // the opener's, before run can see none
		s.downloads[d] = struct{}{}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			d.run(s.ctx)
		}()
		return &streamHandle{d: d, release: func() {}}
	}
	m := s.uncached[key]
	if m == nil || m.failed() {
		m = newMemFile(s, ref, key)
		s.uncached[key] = m
		if !s.cfg.NoVerify {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				m.hash.loop() // ends with the file's last handle
			}()
		} else {
			m.hash.off = true
		}
	}
	return m.addHandle()
}

// maxWarned bounds the set of files logged as not cached.
const maxWarned = 4096
