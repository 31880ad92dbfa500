package serve

// Digests of the served files: every file answer carries RFC 9530's
// Repr-Digest (the whole file's SHA-256, also on a 206) once it is known,
// and the generated SHA256SUMS lists the known ones. Hashing never delays
// an answer: it runs on a few background workers, and the header is left
// out until the file's digest is ready. Digests are kept by FileETag
// (inode, mtime, size), so a rewritten file is hashed again, and they are
// saved in the user's cache directory, never in the store (which may be
// read-only), so a restart does not hash unchanged files again.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultHashWorkers is how many files are hashed at once: hashing is
// disk-bound, and serving comes first.
const DefaultHashWorkers = 2

// hashQueue bounds the files waiting for a worker; a request that finds
// it full is not queued (the startup scan or a later request queues it).
const hashQueue = 256

// Option tunes NewServer.
type Option func(*serverConfig)

type serverConfig struct {
	cacheFile string // "" with noCache: digests are not kept
	noCache   bool
	workers   int
	gate      <-chan struct{} // tests: hashing waits until it is closed
	// masterBytes bounds master.json and folder pages (WithMasterBytes).
	masterBytes int
}

// configOf is the configuration opts make of the defaults.
func configOf(opts []Option) serverConfig {
	cfg := serverConfig{workers: DefaultHashWorkers, masterBytes: DefaultMasterBytes}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// WithDigestCache keeps the digests in file instead of the default
// (DigestCachePath); "" keeps them in memory only.
func WithDigestCache(file string) Option {
	return func(c *serverConfig) { c.cacheFile, c.noCache = file, file == "" }
}

// WithHashWorkers sets how many files are hashed at once (default
// DefaultHashWorkers).
func WithHashWorkers(n int) Option { return func(c *serverConfig) { c.workers = n } }

// DigestCachePath is where the digests of the store directory root
// (absolute, symlinks resolved) are kept: one file per store under the
// user's cache directory.
func DigestCachePath(root string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("digest cache: %w", err)
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(dir, "modelstorefs", "serve", hex.EncodeToString(sum[:12])+".sums.json"), nil
}

// Server is the handler of a store directory that also states its files'
// digests. Close stops its hashing and saves the digests.
type Server struct {
	h *handler
}

// NewServer is Handler with digests: it starts hashing every file of the
// store's model folders in the background.
func NewServer(dir string, log *zap.Logger, opts ...Option) (*Server, error) {
	cfg := configOf(opts)
	h, err := newHandler(dir, log, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.cacheFile == "" && !cfg.noCache {
		if cfg.cacheFile, err = DigestCachePath(h.root); err != nil {
			h.log.Warn("digests are not kept across restarts", zap.Error(err))
		}
	}
	h.digests = newDigests(h, cfg)
	return &Server{h: h}, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// Close stops the hashing, waits for it and saves the digests.
func (s *Server) Close() error { return s.h.digests.close() }

// sumEntry is the digest of one version of a file.
type sumEntry struct {
	Sum  [sha256.Size]byte
	Path string    // resolved, relative to the root: to drop it once gone
	At   time.Time // when it was computed: the generated SHA256SUMS' date
}

type hashJob struct{ etag, rel string }

// digests computes, keeps and saves the digests of a store's files.
type digests struct {
	h      *handler
	file   string // where they are saved; "" for nowhere
	jobs   chan hashJob
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	hashed atomic.Int64 // files hashed: tests prove a restart hashes nothing
	gate   <-chan struct{}

	mu     sync.Mutex
	known  map[string]sumEntry // by FileETag
	queued map[string]bool     // by FileETag: waiting or being hashed
	closed bool
}

func newDigests(h *handler, cfg serverConfig) *digests {
	ctx, cancel := context.WithCancel(context.Background())
	d := &digests{h: h, file: cfg.cacheFile, jobs: make(chan hashJob, hashQueue), ctx: ctx, cancel: cancel,
		gate: cfg.gate, known: map[string]sumEntry{}, queued: map[string]bool{}}
	if err := d.load(); err != nil {
		h.log.Warn("saved digests not read: hashing the store again", zap.String("file", d.file), zap.Error(err))
	}
	workers := max(cfg.workers, 1)
	d.wg.Add(workers + 1)
	for range workers {
		go d.work()
	}
	go d.scan()
	return d
}

// get returns the digest of the file version etag (at rel, resolved),
// queueing it for hashing when unknown.
func (d *digests) get(etag, rel string) (sumEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.known[etag]; ok {
		return e, true
	}
	if d.closed || d.queued[etag] {
		return sumEntry{}, false
	}
	select {
	case d.jobs <- hashJob{etag: etag, rel: rel}:
		d.queued[etag] = true
	default: // full: the scan or a later request queues it
	}
	return sumEntry{}, false
}

// scan queues every file of the store not known yet, so the generated
// SHA256SUMS fills without waiting for requests.
func (d *digests) scan() {
	defer d.wg.Done()
	files, err := d.h.files()
	if err != nil {
		d.h.log.Warn("store not scanned for digests", zap.Error(err))
		return
	}
	for _, f := range files {
		etag := FileETag(f.fi)
		d.mu.Lock()
		skip := d.closed || d.queued[etag]
		if _, ok := d.known[etag]; ok {
			skip = true
		}
		if !skip {
			d.queued[etag] = true
		}
		d.mu.Unlock()
		if skip {
			continue
		}
		select {
		case d.jobs <- hashJob{etag: etag, rel: f.realRel}:
		case <-d.ctx.Done():
			return
		}
	}
}

func (d *digests) work() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case j := <-d.jobs:
			if d.gate != nil {
				select {
				case <-d.gate:
				case <-d.ctx.Done():
					return
				}
			}
			d.hash(j)
		}
	}
}

// hash computes one file's digest. The file is opened inside the root,
// and the digest is kept under the ETag of what was read, unless the file
// changed while it was read.
func (d *digests) hash(j hashJob) {
	etag, sum, err := hashFile(d.ctx, d.h.root, j.rel)
	d.hashed.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.queued, j.etag)
	if err != nil {
		if d.ctx.Err() == nil {
			d.h.log.Debug("file not hashed", zap.String("path", j.rel), zap.Error(err))
		}
		return
	}
	d.known[etag] = sumEntry{Sum: sum, Path: j.rel, At: time.Now()}
	if len(d.queued) == 0 && !d.closed {
		// Everything asked for is done: save now, a crash loses nothing.
		if err := d.saveLocked(); err != nil {
			d.h.log.Warn("digests not saved", zap.Error(err))
		}
	}
}

// errChangedWhileRead is a file rewritten while it was hashed.
var errChangedWhileRead = errors.New("changed while hashed")

// hashFile returns the ETag and SHA-256 of the regular file rel below
// root. It stops when ctx is done.
func hashFile(ctx context.Context, root, rel string) (string, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.OpenInRoot(root, rel)
	if err != nil {
		return "", sum, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return "", sum, err
	}
	if !before.Mode().IsRegular() {
		return "", sum, errSpecial
	}
	hw := sha256.New()
	if _, err := io.Copy(hw, ctxReader{ctx, f}); err != nil {
		return "", sum, err
	}
	after, err := f.Stat()
	if err != nil {
		return "", sum, err
	}
	if FileETag(after) != FileETag(before) {
		return "", sum, errChangedWhileRead
	}
	copy(sum[:], hw.Sum(nil))
	return FileETag(before), sum, nil
}

// ctxReader stops a long read when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (d *digests) close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	// Saved even when nothing was hashed: the versions gone since the
	// start leave the file.
	return d.saveLocked()
}

// setReprDigest states the file's digest when it is known, and has it
// computed otherwise.
func (h *handler) setReprDigest(w http.ResponseWriter, fi os.FileInfo, realRel string) {
	if h.digests == nil {
		return
	}
	if e, ok := h.digests.get(FileETag(fi), realRel); ok {
		w.Header().Set("Repr-Digest", reprDigest(e.Sum))
	}
}

// reprDigest is the Repr-Digest header value of a SHA-256.
func reprDigest(sum [sha256.Size]byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// savedSums is the digest cache file.
type savedSums struct {
	Root  string      `json:"root"`
	Files []savedFile `json:"files"`
}

type savedFile struct {
	ETag   string    `json:"etag"`
	SHA256 string    `json:"sha256"`
	Path   string    `json:"path"`
	At     time.Time `json:"at"`
}

// load reads the saved digests, if any.
func (d *digests) load() error {
	if d.file == "" {
		return nil
	}
	b, err := os.ReadFile(d.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	var s savedSums
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("digest cache %s: %w", d.file, err)
	}
	if s.Root != d.h.root {
		return fmt.Errorf("digest cache %s is for %s", d.file, s.Root)
	}
	for _, f := range s.Files {
		raw, err := hex.DecodeString(f.SHA256)
		if err != nil || len(raw) != sha256.Size {
			continue
		}
		var e sumEntry
		copy(e.Sum[:], raw)
		e.Path, e.At = f.Path, f.At
		d.known[f.ETag] = e
	}
	return nil
}

// saveLocked writes the digests of the files as they are now, dropping
// the versions that are gone (so the file stays as big as the store's
// list of files), atomically: a crash leaves the old file or the new.
// d.mu is held.
func (d *digests) saveLocked() error {
	if d.file == "" {
		return nil
	}
	s := savedSums{Root: d.h.root, Files: []savedFile{}}
	for etag, e := range d.known {
		fi, err := os.Stat(filepath.Join(d.h.root, e.Path))
		if err != nil || FileETag(fi) != etag {
			delete(d.known, etag)
			continue
		}
		s.Files = append(s.Files, savedFile{ETag: etag, SHA256: hex.EncodeToString(e.Sum[:]), Path: e.Path, At: e.At})
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	if err := writeAtomic(d.file, b); err != nil {
		return err
	}
	return nil
}

// writeAtomic writes file through a temporary file renamed over it.
func writeAtomic(file string, b []byte) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
