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
	skipReserve bool                                               // no fallocate: the disk fills mid-file (tests)
	busy        atomic.Bool                                        // diskBusy's last answer
	busyAt      atomic.Int64                                       // and when (UnixNano)

	// Buffers (leaf lock).
	poolMu   sync.Mutex
	memUsed  int64
	freeBufs [][]byte
	freed    chan struct{} // closed and replaced when buffer memory is freed

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
	st.UsedBytes, st.MaxBytes = s.total, s.cfg.MaxBytes
	return st
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
	key      string
	path     string
	size     int64
	lastUse  time.Time
	opens    int
	complete bool
	dl       *download // while downloading
	detached bool      // a failed download replaced before it ended
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
		s.entries[de.Name()] = &entry{key: de.Name(), path: p, size: info.Size(), lastUse: info.ModTime(), complete: true}
		s.total += info.Size()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache dir: indexing: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	s.evictLocked(0)
	s.mu.Unlock()
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

// Open implements Content. It never waits for the download: reads do.
func (s *StreamContent) Open(ctx context.Context, ref cache.Ref) (cache.Handle, error) {
	if ref.Meta.Size < 0 {
		return s.openUnsized(ctx, ref)
	}
	key := ref.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		if e.complete {
			f, err := os.Open(e.path)
			if err == nil {
				s.touchLocked(e)
				s.stats.Hits++
				return &fileHandle{f: f, size: e.size, release: s.releaser(e)}, nil
			}
			// Removed behind our back: forget it, download again.
			s.total -= e.size
			delete(s.entries, key)
		} else if e.dl.failed() {
			// Failed, not yet cleaned up: never join it; start afresh.
			e.detached = true
			s.total -= e.size
			delete(s.entries, key)
		} else {
			s.touchLocked(e)
			s.stats.Joins++
			return newStreamHandle(e.dl, s.releaser(e)), nil
		}
	}
	if s.closed {
		return nil, errors.New("cache closed")
	}
	e, err := s.startLocked(ref, key)
	if err != nil {
		s.log.Warn("not caching: reading from the store into memory", zap.String("url", ref.URL()), zap.Error(err))
		s.stats.Direct++
		d := newDownload(s, ref, nil, nil)
		d.handles = 1 // the opener's, before run can see none
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			d.run(s.ctx)
		}()
		return &streamHandle{d: d, release: func() {}}, nil
	}
	s.stats.Misses++
	s.touchLocked(e)
	return &streamHandle{d: e.dl, release: s.releaser(e)}, nil // startLocked counted its handle
}

// openUnsized serves a file whose size the server never told (no
// Content-Length, no Range): it is downloaded whole first, which tells its
// size, and kept in the cache under that size, where the later opens with
// the learned size find it. Its bytes are reserved against the cache's
// bounds as they arrive: a file that outgrows the room is abandoned with
// ErrUnsizedTooLarge, never written past --cache-size or --cache-min-free.
func (s *StreamContent) openUnsized(ctx context.Context, ref cache.Ref) (cache.Handle, error) {
	tmp, err := os.CreateTemp(s.partial, "unsized-*")
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	w := &reservingWriter{s: s, f: tmp}
	defer w.release()
	n, err := ref.Store.Remote.Download(ctx, w, ref.Meta, ref.Model, ref.Name)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errNoSpace) {
		return nil, fmt.Errorf("%s: %w: %w", ref.URL(), cache.ErrUnsizedTooLarge, err)
	}
	if err != nil {
		return nil, err
	}
	ref.Meta.Size = n
	key := ref.Key()
	s.mu.Lock()
	if _, ok := s.entries[key]; !ok {
		final := filepath.Join(s.objects, key)
		if err := os.Rename(tmp.Name(), final); err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("cache: %w", err)
		}
		s.entries[key] = &entry{key: key, path: final, size: n, lastUse: time.Now(), complete: true}
		s.total += n - w.held // the reservation becomes the entry's size
		w.held = 0
		s.evictLocked(0)
	}
	s.mu.Unlock()
	return s.Open(ctx, ref)
}

// reservingWriter writes a download of unknown length into a cache file,
// reserving room (evicting unused files, keeping the free-space floor)
// ahead of the bytes, a step at a time.
type reservingWriter struct {
	s       *StreamContent
	f       *os.File
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
	return n, err
}

func (w *reservingWriter) grow(n int64) error {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.evictLocked(n) {
		return fmt.Errorf("%w: %d bytes held, bound %d", errNoSpace, s.total, s.cfg.MaxBytes)
	}
	if free, err := s.statfs(s.partial); err == nil && free-n < s.minFree {
		s.evictBytesLocked(n + s.minFree - free)
		if free, err = s.statfs(s.partial); err == nil && free-n < s.minFree {
			return fmt.Errorf("%w: only %d bytes free on the cache's filesystem (floor %d)", errNoSpace, free, s.minFree)
		}
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

func (s *StreamContent) touchLocked(e *entry) {
	e.opens++
	e.lastUse = time.Now()
	if e.complete {
		// The mtime records use across restarts; failure only costs LRU accuracy.
		_ = os.Chtimes(e.path, e.lastUse, e.lastUse)
	}
}

func (s *StreamContent) releaser(e *entry) func() {
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		e.opens--
		s.evictLocked(0)
	}
}

// startLocked reserves room for ref and starts its download.
func (s *StreamContent) startLocked(ref cache.Ref, key string) (*entry, error) {
	size := ref.Meta.Size
	if size > s.cfg.MaxBytes {
		return nil, fmt.Errorf("file of %d bytes is larger than the cache (%d)", size, s.cfg.MaxBytes)
	}
	if !s.evictLocked(size) {
		return nil, errors.New("cache full of files in use")
	}
	if free, err := s.statfs(s.partial); err == nil && free-size < s.minFree {
		s.evictBytesLocked(size + s.minFree - free)
		if free, err = s.statfs(s.partial); err == nil && free-size < s.minFree {
			return nil, fmt.Errorf("only %d bytes free on the cache's filesystem (floor %d)", free, s.minFree)
		}
	}
	// Unique per download: a failed one may still be cleaning up its file.
	s.seq++
	path := filepath.Join(s.partial, key+"."+strconv.FormatUint(s.seq, 10))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	// Sparse for now; the download reserves the blocks (fallocate) before
	// its first byte, outside this lock: on tmpfs that zeroes the file.
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cache: %w", err)
	}
	e := &entry{key: key, path: path, size: size}
	e.dl = newDownload(s, ref, f, e)
	e.dl.handles = 1 // the opener's, before run can see none
	s.entries[key] = e
	s.total += size
	e.opens++ // the download's own reference, dropped when it ends
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		e.dl.run(s.ctx)
	}()
	return e, nil
}

// finish records the end of a download: complete (renamed into place) or
// failed (removed).
func (s *StreamContent) finish(e *entry, err error) {
	final := filepath.Join(s.objects, e.key)
	if err == nil {
		// The rename and the directory sync wait for the disk, so they are
		// done without the lock: every Open takes it. Nobody else uses
		// e.path while e is incomplete.
		if rerr := os.Rename(e.path, final); rerr != nil {
			s.log.Warn("committing a download failed: the file is not kept", zap.String("path", e.path), zap.Error(rerr))
			err = rerr
		} else {
			syncDir(s.objects)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.opens--
	if err == nil {
		e.path, e.complete, e.dl = final, true, nil
		s.evictLocked(0)
		return
	}
	os.Remove(e.path)
	if e.detached {
		return // already out of the index and the total
	}
	s.total -= e.size
	if s.entries[e.key] == e {
		delete(s.entries, e.key)
	}
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
		if s.removeLocked(e) {
			freed += e.size
		}
	}
	return freed >= need
}

// reserveDisk makes room for n more bytes on the cache's disk by evicting
// unused files; it reports whether it freed any.
func (s *StreamContent) reserveDisk(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
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

func (s *StreamContent) removeLocked(e *entry) bool {
	if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("cache eviction failed", zap.String("path", e.path), zap.Error(err))
		return false
	}
	s.total -= e.size
	delete(s.entries, e.key)
	s.stats.Evictions++
	s.stats.EvictedBytes += e.size
	return true
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

// Fd is the cache file once complete (the rename keeps the descriptor).
func (h *streamHandle) Fd() int {
	if h.d.isComplete() {
		return int(h.d.f.Fd())
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
