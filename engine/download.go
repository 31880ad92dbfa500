package engine

// One file's download: its chunks, its streams and its readers (the design
// and the lock order are in doc.go).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

// readerIdle is how long readers must pause before a download going
// through memory finishes its cache copy.
const readerIdle = 500 * time.Millisecond

// piece is how much is read from the network between wake-ups of readers.
const piece = 256 << 10

// bufPin counts the replies in flight that point into a chunk's buffer
// (Read answers from memory without a copy): the buffer goes back to the
// pool only when the last of them is done. A buffer released meanwhile is
// orphaned: detached from its chunk, and freed by the last Done.
type bufPin struct {
	k      int
	n      int
	orphan bool
	buf    []byte
}

// download is one file being fetched.
type download struct {
	// Read only.
	s     *StreamContent
	ref   cache.Ref
	e     *entry // nil when the file is not cached at all
	size  int64
	chunk int64
	log   *zap.Logger

	mu sync.Mutex // protects the fields below
	// f is the cache file, nil when not cached; run creates it before its
	// first worker, and it does not change after that (workers and the
	// writer use it without the lock).
	f        *os.File
	t        chunkTable
	changed  chan struct{} // closed and replaced on every change
	err      error         // terminal failure
	noCache  error         // why the cache copy was given up (nil: still caching)
	complete bool
	finished bool     // run has returned
	fetch    fetcher  // its workers and streams (streams.go)
	readers  readers  // its reader side (reader.go)
	hash     verifier // the hash of the cache copy (verify.go)
}

// newDownload prepares the download of ref: into the cache file of e, or,
// with e nil, into memory only. Its size is bounded by the cache's size
// (or, uncached, the store does not honour Range and the chunk table is
// what is read so far), never only by what a server claims.
func newDownload(s *StreamContent, ref cache.Ref, e *entry) *download {
	chunk := s.cfg.ChunkSize
	d := &download{
		s: s, ref: ref, e: e, size: ref.Meta.Size, chunk: chunk,
		log:     s.log.With(zap.String("url", ref.URL())),
		t:       newChunkTable(ref.Meta.Size, chunk),
		changed: make(chan struct{}),
	}
	d.fetch.d, d.readers.d, d.hash.d = d, d, d
	if e == nil {
		d.noCache = errNotCaching
	}
	d.fetch.direct = e != nil
	return d
}

// errNotCaching: a download that never had a cache file.
var errNotCaching = errors.New("not caching this file")

func (d *download) broadcastLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// run owns the download: it creates the cache file, runs the workers
// (supervise) and the hash (verify.go) until all bytes landed or the
// download failed, then commits or removes the file (end).
func (d *download) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	d.prepareFile()
	// The hash follows the bytes as they land (verify.go).
	hctx, stopHash := context.WithCancel(ctx)
	defer stopHash()
	var hwg sync.WaitGroup
	if !d.s.cfg.NoVerify {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			d.hash.loop(hctx)
		}()
	}
	err := d.supervise(ctx, cancel)
	if err != nil {
		stopHash()
	}
	hwg.Wait() // with every byte on disk, the hash ends
	if err == nil {
		err = d.hashResult()
	}
	if err == nil {
		err = d.f.Sync()
	}
	d.end(err, start)
	d.s.ended(d)
}

// prepareFile creates the cache file and reserves its blocks, here and
// not under the cache's lock; on failure the cache copy is given up.
func (d *download) prepareFile() {
	if d.e == nil {
		return
	}
	f, err := createFile(d.e.path, d.size)
	if err == nil {
		d.mu.Lock()
		d.f = f
		d.mu.Unlock()
		if !d.s.skipReserve {
			err = d.reserve()
		}
	}
	if err != nil {
		d.giveUpCache(err)
	}
}

// supervise starts a worker, then waits: whenever no worker runs it
// decides whether the download is over (all on disk, failed, or given up
// with nobody reading) or starts one for the work that appeared. It
// returns once every worker has ended, with the download's failure.
func (d *download) supervise(ctx context.Context, cancel context.CancelFunc) error {
	var wg sync.WaitGroup
	d.mu.Lock()
	d.fetch.retry = newRetrier(d.s.cfg.RetryWindow)
	d.fetch.spawn = func() {
		d.fetch.workers++
		d.fetch.starting++
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.fetch.worker(ctx, cancel)
			d.mu.Lock()
			d.fetch.workers--
			if d.fetch.workers == 0 {
				d.broadcastLocked() // supervise decides what next
			}
			d.mu.Unlock()
		}()
	}
	d.fetch.spawn()
	for {
		ch := d.changed
		idle := d.fetch.workers == 0
		d.mu.Unlock()
		if idle {
			wg.Wait()
		}
		select {
		case <-ch:
		case <-d.s.pool.changed():
		case <-time.After(readerIdle): // background work waits for readers to pause
		case <-ctx.Done():
		}
		d.mu.Lock()
		if d.fetch.workers > 0 {
			continue
		}
		if ctx.Err() != nil && d.err == nil {
			d.err = ctx.Err()
		}
		if d.err != nil || d.t.allOnDisk() || (d.noCache != nil && d.readers.handles == 0) {
			break
		}
		if _, _, ok := d.pickLocked(); ok {
			d.fetch.spawn()
		}
	}
	err := cmp.Or(d.err, d.noCache)
	if d.fetch.ranged {
		d.fetch.ctl.end(d)
	}
	d.mu.Unlock()
	wg.Wait()
	return err
}

// hashResult is the hash's verdict on a download whose bytes all landed.
func (d *download) hashResult() error {
	if d.s.cfg.NoVerify {
		return nil
	}
	d.mu.Lock()
	err := d.hash.err
	if err == nil && !d.hash.done {
		err = fmt.Errorf("%s: the hash of the file did not end", d.ref.URL())
	}
	d.mu.Unlock()
	if errors.Is(err, ErrDigestMismatch) {
		d.s.countMismatch()
	}
	return err
}

// errNoSpace: the cache's disk is full; the cache copy is given up.
var errNoSpace = errors.New("no room in the cache")

// reserve allocates the file's blocks, so a full disk shows now and not in
// the middle of the file; on ENOSPC unused files are evicted once.
func (d *download) reserve() error {
	for attempt := 0; d.size > 0; attempt++ {
		err := syscall.Fallocate(int(d.f.Fd()), 0, 0, d.size)
		switch {
		case err == nil || errors.Is(err, syscall.EOPNOTSUPP):
			return nil
		case !errors.Is(err, syscall.ENOSPC):
			return fmt.Errorf("cache: reserving %d bytes: %w", d.size, err)
		case attempt > 0 || !d.s.reserveDisk(d.size):
			return fmt.Errorf("%w: reserving %d bytes: %w", errNoSpace, d.size, err)
		}
	}
	return nil
}

// giveUpCache stops writing the cache copy (the disk failed or has no
// room): readers go on from memory, the file is never committed.
func (d *download) giveUpCache(why error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.giveUpCacheLocked(why)
}

func (d *download) giveUpCacheLocked(why error) {
	if d.noCache != nil {
		return
	}
	d.noCache = why
	d.fetch.direct = false
	d.log.Warn("not caching this file: reading from the store into memory", zap.Error(why))
	// Queued chunks stay in memory for the readers; the writer skips them.
	// Chunks already on disk stay readable while the download lives.
	for k := range d.t.c {
		d.t.c[k].queued = false
	}
	d.broadcastLocked()
}

// end commits or removes the file, wakes the readers and logs.
func (d *download) end(err error, start time.Time) {
	if errors.Is(err, remote.ErrChanged) && d.s.onChange != nil {
		// Before readers wake: a reader that retries must find fresh metadata.
		d.s.onChange(d.ref)
	}
	// Commit before waking readers, so a reopen finds the complete file.
	if d.e != nil {
		d.s.finish(d.e, err)
	}
	d.mu.Lock()
	verified := err == nil && d.hash.done && d.hash.err == nil
	d.mu.Unlock()
	if verified || errors.Is(err, ErrDigestMismatch) {
		d.s.refused(d.ref, err) // the catalog names a refused file in error.txt
	}
	d.mu.Lock()
	d.finished = true
	if err != nil && d.err == nil {
		d.err = err
	}
	d.complete = err == nil
	for k := range d.t.c {
		d.releaseLocked(k)
	}
	d.broadcastLocked()
	closeNow := d.readers.handles == 0 && d.f != nil
	d.mu.Unlock()
	if closeNow {
		d.f.Close()
	}
	switch {
	case d.noCache != nil && !errors.Is(err, remote.ErrChanged) && d.s.ctx.Err() == nil:
		d.log.Debug("uncached read over", zap.NamedError("why", d.noCache))
	case err != nil && d.s.ctx.Err() == nil:
		d.log.Error("download failed", zap.Error(err))
	case err == nil:
		d.log.Debug("downloaded", zap.Int64("bytes", d.size), zap.Duration("took", time.Since(start)))
	}
}

// releaseLocked gives chunk k's buffer back, unless the writer holds it;
// replies in flight that point into it keep it until they are done.
func (d *download) releaseLocked(k int) {
	c := &d.t.c[k]
	if c.buf == nil || c.writing {
		return
	}
	if c.pin != nil {
		c.pin.orphan = true
		c.pin = nil
	} else {
		d.s.pool.free(c.buf)
	}
	c.buf, c.filled, c.queued = nil, 0, false
}

// pinLocked answers [off, end) from a chunk's buffer without a copy, when
// the range lies in one chunk whose buffer holds it. The buffer stays
// valid until the result's Done.
func (d *download) pinLocked(off, end int64) (cache.ReadResult, bool) {
	k := int(off / d.chunk)
	base := int64(k) * d.chunk
	c := &d.t.c[k]
	if c.buf == nil || end > base+d.chunk || c.filled < end-base {
		return cache.ReadResult{}, false
	}
	if c.pin == nil {
		c.pin = &bufPin{k: k, buf: c.buf}
	}
	p := c.pin
	p.n++
	return cache.ReadResult{Data: c.buf[off-base : end-base], Fd: -1, Done: func() { d.unpin(p) }}, true
}

func (d *download) unpin(p *bufPin) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p.n--
	if p.n > 0 {
		return
	}
	if p.orphan {
		d.s.pool.free(p.buf)
	} else if d.t.c[p.k].pin == p {
		d.t.c[p.k].pin = nil
	}
}

// pickLocked chooses where a new stream starts (chunkTable.pick), and
// whether it is for a reader.
func (d *download) pickLocked() (start int, forReader, ok bool) {
	if d.err != nil || d.fetch.streaming || d.finished {
		return 0, false, false
	}
	return d.t.pick(pickPolicy{
		hashChunk:  d.hash.chunkLocked(),
		endWaiters: d.readers.endWaiters > 0,
		cacheless:  d.noCache != nil,
		skipBehind: !d.fetch.direct && time.Since(d.readers.lastRead) < readerIdle,
	})
}

// errLongBody: a body went on past the range it announced.
var errLongBody = errors.New("more bytes than the range asked for")

// cacheDiskFailed tells a failure of the cache file (a full or failing
// disk) from one of the network, in a splice that does both.
func cacheDiskFailed(err error) bool {
	for _, e := range []error{remote.ErrDestination, syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.EFBIG} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// directPiece is how much is spliced into the cache file between wake-ups
// of readers.
const directPiece = 1 << 20

// dropBehindLocked frees, in a download that does not cache, the buffers
// of chunks well behind the latest read (a reader seeking back far gets
// them fetched again).
func (d *download) dropBehindLocked() {
	if d.noCache == nil {
		return
	}
	for _, k := range d.t.behindWindow() {
		d.releaseLocked(k)
		d.t.c[k].state = chunkMissing
	}
}

// written is the writer's report on chunk k.
func (d *download) written(k int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &d.t.c[k]
	c.writing = false
	if err != nil {
		if c.state == chunkInMemory {
			c.queued = false
		}
		d.giveUpCacheLocked(fmt.Errorf("cache write: %w", err))
		d.dropBehindLocked()
		return
	}
	c.state, c.queued = chunkOnDisk, false
	d.releaseLocked(k)
	d.broadcastLocked()
}

// takeForWrite marks chunk k as being written and returns its bytes, or
// nil when the chunk no longer needs writing.
func (d *download) takeForWrite(k int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &d.t.c[k]
	if c.state != chunkInMemory || !c.queued || d.noCache != nil || d.err != nil {
		c.queued = false
		return nil
	}
	c.writing = true
	return c.buf
}

// reclaim takes back a queued, unwritten buffer nobody waits for: the
// chunk goes back to missing and is fetched again later. It reports
// whether it freed one.
func (d *download) reclaim(k int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &d.t.c[k]
	if c.state != chunkInMemory || !c.queued || c.writing || c.waiting > 0 || (k >= d.t.next-1 && k < d.t.next+readerWindow) || k == d.hash.chunkLocked() {
		return false
	}
	d.releaseLocked(k)
	c.state = chunkMissing
	return true
}

func eofIf(short bool) error {
	if short {
		return io.EOF
	}
	return nil
}

// inFileLocked reports whether [off, end) is in the cache file.
func (d *download) inFileLocked(off, end int64) bool { return d.f != nil && d.t.inFile(off, end) }

// failed reports whether the download has failed for good.
func (d *download) failed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err != nil || d.noCache != nil
}

// present returns how many bytes are on disk.
func (d *download) present() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t.onDiskBytes()
}

// readyFile returns the cache file once all the file's bytes are in it
// (committed or about to be), else nil.
func (d *download) readyFile() *os.File {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil || d.noCache != nil || (d.err != nil && !d.complete) || !(d.complete || d.t.allOnDisk()) ||
		(!d.hash.done && !d.s.cfg.NoVerify) || d.hash.err != nil {
		return nil
	}
	return d.f
}

// reclaimIdle frees, in a download that gave up its cache copy, chunks in
// memory that nobody reads, writes or points into now (they are fetched
// again when read), until need bytes are freed; it returns what it freed.
func (d *download) reclaimIdle(need int64) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.noCache == nil {
		return 0
	}
	var freed int64
	for _, k := range d.t.idle(need) {
		freed += int64(cap(d.t.c[k].buf))
		d.releaseLocked(k)
		d.t.c[k].state = chunkMissing
	}
	return freed
}
