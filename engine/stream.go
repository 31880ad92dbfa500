package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	writeAt     func(f *os.File, b []byte, off int64) (int, error) // the writer's write (tests replace it)
	busyHook    func() bool                                        // diskBusy's answer (tests replace it)
	commitHook  func()                                             // runs before a download's commit (tests)
	skipReserve bool                                               // no fallocate: the disk fills mid-file (tests)
	busy        atomic.Bool                                        // diskBusy's last answer
	busyAt      atomic.Int64                                       // and when (UnixNano)

	// Buffers (leaf lock).
	poolMu    sync.Mutex
	memUsed   int64
	freeBufs  [][]byte
	freePages [][]byte
	freed     chan struct{} // closed and replaced when buffer memory is freed

	// Write-behind queue (leaf lock); one writer goroutine drains it.
	wmu    sync.Mutex
	wqueue []writeJob
	wready chan struct{} // has a value when the queue is not empty

	// Per-store connection policy (leaf lock).
	polMu     sync.Mutex
	storeConn map[*cache.Store]int // streams running
	storeBest map[*cache.Store]int // what worked last

	mu      sync.Mutex // protects the fields below
	entries map[string]*entry
	total   int64 // bytes of complete files plus reservations
	closed  bool
	stats   cache.ContentStats
	seq     uint64 // numbers partial files
	started int64  // bytes of all downloads started, for free-space estimates
	// doomed: files taken out of the index, unlinked once the lock is
	// released (unlockAndReap): an unlink of a large file waits for the
	// disk, and every Open takes this lock.
	doomed []*entry
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
	for _, e := range s.entries {
		if e.complete {
			st.Files++
		} else {
			st.InFlight++
		}
	}
	st.InMemory = len(s.uncached)
	st.UsedBytes, st.MaxBytes = s.total, s.cfg.MaxBytes
	st.BufferBytes, st.BufferMax = s.bufferBytes(), s.cfg.BufferBudget
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

// entry is one cached file version, complete or being downloaded.
type entry struct {
	key string
	// sha256 (hex) of a complete file, and verified: "store" when it
	// matched the digest the store states, "computed" when the store
	// states none; both empty for files cached before digests were kept.
	sha256, verified string
	path             string
	size             int64
	lastUse          time.Time
	opens            int
	complete         bool
	dl               *download // while downloading
	detached         bool      // a failed download replaced before it ended
}

// NewStreamContent opens (or creates) the cache under cfg.Dir. Complete
// files from earlier runs are indexed; partial ones are removed, since a
// half-written file can never be trusted.
func NewStreamContent(cfg StreamConfig) (*StreamContent, error) {
	cfg = cfg.withDefaults()
	root := filepath.Join(cfg.Dir, "v2")
	s := &StreamContent{
		cfg:     cfg,
		minFree: *cfg.MinFree,
		log:     cfg.Logger,
		objects: filepath.Join(root, "objects"),
		partial: filepath.Join(root, "partial"),
		statfs:  freeBytes,
		entries: map[string]*entry{},
		freed:   make(chan struct{}),
		wready:  make(chan struct{}, 1),

		storeConn: map[*cache.Store]int{},
		storeBest: map[*cache.Store]int{},
		uncached:  map[string]*memFile{},
		downloads: map[*download]struct{}{},
		unsized:   map[string]*unsizedFetch{},
		warned:    map[string]struct{}{},
	}
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

// createLocked creates a new lock file p-*.lock in dir and locks it.
func createLocked(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "p-*.lock")
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return f, nil
}

// lockedByOther reports whether a live process holds the lock file path.
func lockedByOther(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close() // drops our probe lock, if we got it
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil
}

// clearStalePartials removes the partial downloads of processes that are
// gone (their lock is free) and anything else left in dir.
func clearStalePartials(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(name, ".lock") && !e.IsDir():
			if lockedByOther(name) {
				continue
			}
			if err := os.RemoveAll(strings.TrimSuffix(name, ".lock")); err != nil {
				return err
			}
			os.Remove(name)
		case e.IsDir():
			if _, err := os.Stat(name + ".lock"); err == nil {
				continue // judged by its lock
			}
			if err := os.RemoveAll(name); err != nil {
				return err
			}
		default:
			os.Remove(name)
		}
	}
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
		free, freeErr = s.statfs(s.partial)
		s.mu.Lock()
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
		d.handles = 1 // the opener's, before run can see none
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
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			m.hashLoop() // ends with the file's last handle
		}()
	}
	return m.addHandle()
}

// maxWholeInMemory bounds the files read as whole streams through a chunk
// table (whose size follows the file's): a store that ignores Range and
// claims more is read by pages, slowly but in bounded memory.
const maxWholeInMemory = 64 << 30

// maxWarned bounds the set of files logged as not cached.
const maxWarned = 4096

// unsizedFetch is the download of a file whose size the server does not
// tell; the opens of that file wait for it.
type unsizedFetch struct {
	done chan struct{}
	size int64
	err  error
}

// openUnsized serves a file whose size the server never told (no
// Content-Length, no Range): it is downloaded whole first, which tells its
// size, and kept in the cache under that size, where the later opens with
// the learned size find it. The download runs once, on the cache's
// context: all opens of the file wait for it (each at most until its own
// ctx ends), and an interrupted open does not abort it.
func (s *StreamContent) openUnsized(ctx context.Context, ref cache.Ref) (cache.Handle, error) {
	key := ref.Key()
	s.mu.Lock()
	f := s.unsized[key]
	if f == nil {
		if s.closed {
			s.mu.Unlock()
			return nil, errors.New("cache closed")
		}
		if len(s.unsized) >= maxWarned {
			for k, old := range s.unsized {
				select {
				case <-old.done:
					delete(s.unsized, k)
				default:
				}
			}
		}
		f = &unsizedFetch{done: make(chan struct{})}
		s.unsized[key] = f
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f.size, f.err = s.fetchUnsized(ref)
			if f.err != nil {
				s.mu.Lock()
				if s.unsized[key] == f {
					delete(s.unsized, key) // the next open tries again
				}
				s.mu.Unlock()
			}
			close(f.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	ref.Meta.Size = f.size
	return s.Open(ctx, ref)
}

// fetchUnsized downloads an unsized file into the cache and returns its
// size. Its bytes are reserved against the cache's bounds as they arrive:
// a file that outgrows the room is abandoned with ErrUnsizedTooLarge,
// never written past --cache-size or --cache-min-free.
func (s *StreamContent) fetchUnsized(ref cache.Ref) (int64, error) {
	tmp, err := os.CreateTemp(s.partial, "unsized-*")
	if err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	check := newDigestCheck(ref.URL(), ref.Meta.Digest)
	w := &reservingWriter{s: s, f: tmp, hash: check}
	defer w.release()
	n, err := ref.Store.Remote.Download(s.ctx, w, ref.Meta, ref.Model, ref.Name)
	shaHex, verified, cerr := check.result()
	if err == nil && cerr != nil {
		err = cerr
		logMismatch(s.log.With(zap.String("url", ref.URL())), err)
		s.countMismatch()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errNoSpace) {
		return 0, fmt.Errorf("%s: %w: %w", ref.URL(), cache.ErrUnsizedTooLarge, err)
	}
	if err != nil {
		return 0, err
	}
	ref.Meta.Size = n
	key := ref.Key()
	final := filepath.Join(s.objects, objectName(key, shaHex, verified))
	s.mu.Lock()
	_, known := s.entries[key]
	s.mu.Unlock()
	if known {
		return n, nil
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	s.mu.Lock()
	if _, ok := s.entries[key]; !ok {
		s.entries[key] = &entry{key: key, path: final, size: n, lastUse: time.Now(), complete: true, sha256: shaHex, verified: verified}
		s.total += n - w.held // the reservation becomes the entry's size
		w.held = 0
		s.evictLocked(0)
	}
	s.unlockAndReap()
	return n, nil
}

// reservingWriter writes a download of unknown length into a cache file,
// reserving room (evicting unused files, keeping the free-space floor)
// ahead of the bytes, a step at a time.
type reservingWriter struct {
	s       *StreamContent
	f       *os.File
	hash    io.Writer // is told every byte written
	written int64
	held    int64 // bytes reserved in s.total
}

// reserveStep is how far ahead of the bytes room is reserved.
const reserveStep = 1 << 20

func (w *reservingWriter) Write(p []byte) (int, error) {
	if need := w.written + int64(len(p)) - w.held; need > 0 {
		// A step ahead when there is room for it, else just what is needed.
		if err := w.grow(max(need, reserveStep)); err != nil {
			if err = w.grow(need); err != nil {
				return 0, err
			}
		}
	}
	n, err := w.f.Write(p)
	w.written += int64(n)
	w.hash.Write(p[:n])
	return n, err
}

func (w *reservingWriter) grow(n int64) error {
	s := w.s
	free, ferr := s.statfs(s.partial) // without the lock: it may wait for the disk
	s.mu.Lock()
	defer s.unlockAndReap()
	if !s.evictLocked(n) {
		return fmt.Errorf("%w: %d bytes held, bound %d", errNoSpace, s.total, s.cfg.MaxBytes)
	}
	if ferr == nil && free-n < s.minFree && !s.evictBytesLocked(n+s.minFree-free) {
		return fmt.Errorf("%w: only %d bytes free on the cache's filesystem (floor %d)", errNoSpace, free, s.minFree)
	}
	s.total += n
	w.held += n
	return nil
}

// release gives back what is still reserved.
func (w *reservingWriter) release() {
	if w.held == 0 {
		return
	}
	w.s.mu.Lock()
	w.s.total -= w.held
	w.held = 0
	w.s.mu.Unlock()
}

// touchLocked counts an open of e and records its use (openComplete
// records it on disk too, without the lock).
func (s *StreamContent) touchLocked(e *entry) {
	e.opens++
	e.lastUse = time.Now()
}

func (s *StreamContent) releaser(e *entry) func() {
	return func() {
		s.mu.Lock()
		e.opens--
		s.evictLocked(0)
		s.unlockAndReap()
	}
}

// startLocked reserves room for ref (free: the cache filesystem's free
// bytes, when freeErr is nil) and starts its download. The download
// creates its cache file itself, without the lock.
func (s *StreamContent) startLocked(ref cache.Ref, key string, free int64, freeErr error) (*entry, error) {
	size := ref.Meta.Size
	if size > s.cfg.MaxBytes {
		return nil, fmt.Errorf("file of %d bytes is larger than the cache (%d)", size, s.cfg.MaxBytes)
	}
	if !s.evictLocked(size) {
		return nil, errors.New("cache full of files in use")
	}
	if freeErr == nil && free-size < s.minFree && !s.evictBytesLocked(size+s.minFree-free) {
		return nil, fmt.Errorf("only %d bytes free on the cache's filesystem (floor %d)", free, s.minFree)
	}
	// Unique per download: a failed one may still be cleaning up its file.
	s.seq++
	path := filepath.Join(s.partial, key+"."+strconv.FormatUint(s.seq, 10))
	e := &entry{key: key, path: path, size: size}
	e.dl = newDownload(s, ref, e)
	e.dl.handles = 1 // the opener's, before run can see none
	s.entries[key] = e
	s.downloads[e.dl] = struct{}{}
	s.total += size
	s.started += size
	e.opens++ // the download's own reference, dropped when it ends
	d := e.dl
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		d.run(s.ctx)
	}()
	return e, nil
}

// createFile creates the download's cache file at its full size (sparse:
// run reserves its blocks).
func createFile(path string, size int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cache: %w", err)
	}
	return f, nil
}

// ended forgets a download that is over.
func (s *StreamContent) ended(d *download) {
	s.mu.Lock()
	delete(s.downloads, d)
	s.mu.Unlock()
}

// objectName is the name of a complete file in the objects directory:
// its key, and its SHA-256 and how it was verified when known (they are
// kept across restarts in the name, costing no disk space).
func objectName(key, sha256, verified string) string {
	if sha256 == "" {
		return key
	}
	return key + "." + sha256 + "." + verified
}

// parseObjectName reads what objectName wrote.
func parseObjectName(name string) *entry {
	parts := strings.Split(name, ".")
	if len(parts) == 3 && len(parts[1]) == 64 && (parts[2] == "store" || parts[2] == "computed") {
		return &entry{key: parts[0], sha256: parts[1], verified: parts[2]}
	}
	return &entry{key: name}
}

// finish records the end of a download: complete (renamed into place) or
// failed (removed). Disk calls are made without the lock.
func (s *StreamContent) finish(e *entry, err error) {
	d := e.dl
	d.mu.Lock()
	sha, verified := d.hash.sha256, d.hash.verified
	d.mu.Unlock()
	final := filepath.Join(s.objects, objectName(e.key, sha, verified))
	if err == nil && s.commitHook != nil {
		s.commitHook()
	}
	if err == nil {
		// Nobody else uses e.path while e is incomplete.
		if rerr := os.Rename(e.path, final); rerr != nil {
			s.log.Warn("committing a download failed: the file is not kept", zap.String("path", e.path), zap.Error(rerr))
			err = rerr
		} else {
			syncDir(s.objects)
		}
	}
	s.mu.Lock()
	e.opens--
	if err == nil {
		e.path, e.complete, e.dl = final, true, nil
		e.sha256, e.verified = sha, verified
		s.evictLocked(0)
		s.unlockAndReap()
		return
	}
	if !e.detached { // else already out of the index and the total
		s.total -= e.size
		if s.entries[e.key] == e {
			delete(s.entries, e.key)
		}
	}
	s.mu.Unlock()
	os.Remove(e.path)
}

// evictLocked removes least recently used complete files not in use until
// extra more bytes fit; it reports whether they do. When even evicting
// every unused file would not make room, it evicts nothing.
func (s *StreamContent) evictLocked(extra int64) bool {
	need := s.total + extra - s.cfg.MaxBytes
	if need <= 0 {
		return true
	}
	return s.evictBytesLocked(need)
}

// evictBytesLocked removes least recently used unused files totalling at
// least need bytes, or nothing when they cannot add up to that.
func (s *StreamContent) evictBytesLocked(need int64) bool {
	candidates := s.evictable()
	var possible int64
	for _, e := range candidates {
		possible += e.size
	}
	if possible < need {
		return false
	}
	var freed int64
	for _, e := range candidates {
		if freed >= need {
			break
		}
		s.removeLocked(e)
		freed += e.size
	}
	return freed >= need
}

// reserveDisk makes room for n more bytes on the cache's disk by evicting
// unused files; it reports whether it freed any.
func (s *StreamContent) reserveDisk(n int64) bool {
	s.mu.Lock()
	defer s.unlockAndReap()
	return s.evictBytesLocked(n)
}

func (s *StreamContent) evictable() []*entry {
	var es []*entry
	for _, e := range s.entries {
		if e.complete && e.opens == 0 {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].lastUse.Before(es[j].lastUse) })
	return es
}

// removeLocked takes e out of the index and the total; its file is
// unlinked by unlockAndReap.
func (s *StreamContent) removeLocked(e *entry) {
	s.total -= e.size
	delete(s.entries, e.key)
	s.doomed = append(s.doomed, e)
	s.stats.Evictions++
	s.stats.EvictedBytes += e.size
}

// unlockAndReap releases the lock, then unlinks the files evicted under
// it. A file that cannot be unlinked goes back into the index (its bytes
// are still on disk, and count).
func (s *StreamContent) unlockAndReap() {
	doomed := s.doomed
	s.doomed = nil
	s.mu.Unlock()
	for _, e := range doomed {
		err := os.Remove(e.path)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		s.log.Warn("cache eviction failed", zap.String("path", e.path), zap.Error(err))
		s.mu.Lock()
		if _, ok := s.entries[e.key]; !ok {
			s.entries[e.key] = e
			s.total += e.size
		}
		s.stats.Evictions--
		s.stats.EvictedBytes -= e.size
		s.mu.Unlock()
	}
}

func freeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// fileHandle reads a complete file.
type fileHandle struct {
	f       *os.File
	size    int64
	release func()
	once    sync.Once
}

func (h *fileHandle) Read(_ context.Context, p []byte, off int64) (cache.ReadResult, error) {
	if off >= h.size {
		return cache.ReadResult{Fd: -1}, io.EOF
	}
	n := min(int64(len(p)), h.size-off)
	return cache.ReadResult{Fd: int(h.f.Fd()), Off: off, N: int(n)}, eofIf(n < int64(len(p)))
}
func (h *fileHandle) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	return h.f.ReadAt(p, off)
}
func (h *fileHandle) Size() int64 { return h.size }
func (h *fileHandle) Fd() int     { return int(h.f.Fd()) }
func (h *fileHandle) Close() error {
	err := h.f.Close()
	h.once.Do(h.release)
	return err
}

// streamHandle reads a file while it downloads.
type streamHandle struct {
	d       *download
	release func()
	once    sync.Once
}

func (h *streamHandle) Read(ctx context.Context, p []byte, off int64) (cache.ReadResult, error) {
	return h.d.read(ctx, p, off, true)
}

func (h *streamHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	r, err := h.d.read(ctx, p, off, false)
	if r.Fd < 0 {
		return len(r.Data), err
	}
	n, rerr := h.d.f.ReadAt(p[:r.N], r.Off)
	if rerr != nil && rerr != io.EOF {
		return n, rerr
	}
	return n, err
}
func (h *streamHandle) Size() int64 { return h.d.size }

// Fd is the cache file once all its bytes are there (the rename that
// commits it keeps the descriptor): an open in the moment between the last
// byte and the commit reads in page-cache or passthrough mode too, not a
// FUSE round trip per read.
func (h *streamHandle) Fd() int {
	if f := h.d.readyFile(); f != nil {
		return int(f.Fd())
	}
	return -1
}
func (h *streamHandle) Close() error {
	h.once.Do(func() {
		h.d.dropHandle()
		h.release()
	})
	return nil
}

func newStreamHandle(d *download, release func()) *streamHandle {
	d.addHandle()
	return &streamHandle{d: d, release: release}
}
