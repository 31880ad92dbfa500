package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/remote"
)

// Chunk states of a download.
const (
	chunkMissing uint8 = iota
	chunkFetching
	chunkDone
)

// download is one file being fetched into its cache file. Workers claim
// chunks (those readers wait for first, then those after the latest read,
// then the rest), fetch them with validated ranged GETs and mark them done;
// readers wait for their chunks and read the cache file. A server that
// ignores Range gets one stream from offset 0 instead.
type download struct {
	// Read only.
	s     *StreamContent
	ref   Ref
	e     *entry
	f     *os.File
	size  int64
	chunk int64
	n     int // chunks
	log   *zap.Logger

	mu           sync.Mutex // protects the fields below
	state        []uint8
	waiting      map[int]int   // chunk -> readers waiting for it
	next         int           // first chunk after the latest read
	changed      chan struct{} // closed and replaced on every change
	err          error         // terminal failure
	complete     bool
	finished     bool // run has returned
	handles      int  // open streamHandles
	streaming    bool // a whole-body stream owns the download
	scaled       bool // the extra workers were started
	workers      int  // running workers
	failures     int  // failed fetches since the last progress
	lastProgress time.Time
	spawn        func() // starts one more worker
}

func newDownload(s *StreamContent, ref Ref, f *os.File, e *entry) *download {
	chunk := s.cfg.ChunkSize
	n := int((ref.Meta.Size + chunk - 1) / chunk)
	return &download{
		s: s, ref: ref, e: e, f: f, size: ref.Meta.Size, chunk: chunk, n: n,
		log:     s.log.With(zap.String("url", ref.URL())),
		state:   make([]uint8, n),
		waiting: map[int]int{},
		changed: make(chan struct{}),
	}
}

// broadcastLocked wakes every waiter.
func (d *download) broadcastLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// run fetches the whole file with as many workers as the server allows,
// then commits it (or removes it) and tells the content cache.
func (d *download) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	if err := d.reserve(); err != nil {
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		d.end(err, start)
		return
	}
	var wg sync.WaitGroup
	d.mu.Lock()
	d.lastProgress = start
	// spawn runs with d.mu held. workers > 0 means wg is above zero, so a
	// later spawn (from wait) can never race with wg.Wait returning.
	d.spawn = func() {
		d.workers++
		wg.Add(1)
		go func() {
			d.worker(ctx, cancel)
			d.mu.Lock()
			d.workers--
			d.mu.Unlock()
			wg.Done()
		}()
	}
	// One worker learns whether the server honours Range; it starts the
	// others after its first 206.
	d.spawn()
	d.mu.Unlock()
	wg.Wait()

	d.mu.Lock()
	err := d.err
	if err == nil && !d.allDoneLocked() {
		err = fmt.Errorf("download of %s ended incomplete", d.ref.URL())
	}
	d.mu.Unlock()
	if err == nil {
		err = d.f.Sync()
	}
	d.end(err, start)
}

// errNoSpace: the cache's disk is full; readers go to the network.
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

// end commits or removes the file, wakes the readers and logs.
func (d *download) end(err error, start time.Time) {
	if errors.Is(err, remote.ErrChanged) && d.s.onChange != nil {
		// Before readers wake: a reader that retries must find fresh metadata.
		d.s.onChange(d.ref)
	}
	// Commit before waking readers, so a reopen finds the complete file.
	d.s.finish(d.e, err)
	d.mu.Lock()
	d.finished = true
	if err != nil && d.err == nil {
		d.err = err
	}
	d.complete = err == nil
	d.broadcastLocked()
	closeNow := d.handles == 0
	d.mu.Unlock()
	if closeNow {
		d.f.Close()
	}
	switch {
	case errors.Is(err, errNoSpace):
		d.log.Warn("cache full: reading straight from the store", zap.Error(err))
	case err != nil && d.s.ctx.Err() == nil:
		d.log.Error("download failed", zap.Error(err))
	case err == nil:
		d.log.Debug("downloaded", zap.Int64("bytes", d.size), zap.Duration("took", time.Since(start)))
	}
}

func (d *download) allDoneLocked() bool {
	for _, st := range d.state {
		if st != chunkDone {
			return false
		}
	}
	return true
}

// worker claims and fetches chunks until none is left or the download
// fails for good.
func (d *download) worker(ctx context.Context, cancel context.CancelFunc) {
	backoff := 250 * time.Millisecond
	for {
		k, ok := d.claim()
		if !ok {
			return
		}
		err := d.fetch(ctx, k)
		if err == nil || errors.Is(err, errStreamTaken) {
			backoff = 250 * time.Millisecond
			continue
		}
		if d.fail(ctx, k, err) {
			cancel()
			return
		}
		d.log.Warn("fetch failed, retrying", zap.Int("chunk", k), zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// claim picks the next chunk to fetch: one a reader waits for, else the
// first missing one after the latest read, else the first missing one.
func (d *download) claim() (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil || d.streaming {
		return 0, false
	}
	best := -1
	for k, c := range d.waiting {
		if c > 0 && d.state[k] == chunkMissing && (best < 0 || k < best) {
			best = k
		}
	}
	if best < 0 {
		for k := d.next; k < d.n; k++ {
			if d.state[k] == chunkMissing {
				best = k
				break
			}
		}
	}
	if best < 0 {
		for k := 0; k < d.n; k++ {
			if d.state[k] == chunkMissing {
				best = k
				break
			}
		}
	}
	if best < 0 {
		return 0, false
	}
	d.state[best] = chunkFetching
	return best, true
}

// fail records a failed fetch of chunk k; it reports whether the whole
// download has failed (changed file, gone file, shutdown, or no progress
// for the retry window). Only the download's own context ending is a
// shutdown: an error that merely wraps context.Canceled (a request the
// HTTP layer cancelled itself) is a failure like any other, retried.
func (d *download) fail(ctx context.Context, k int, err error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state[k] == chunkFetching {
		d.state[k] = chunkMissing
	}
	if errors.Is(err, syscall.ENOSPC) && !errors.Is(err, errNoSpace) {
		err = fmt.Errorf("%w: %w", errNoSpace, err)
	}
	// A failing server gets the retry window, and at least one retry:
	// a single stall can last as long as the window itself.
	d.failures++
	terminal := ctx.Err() != nil || errors.Is(err, remote.ErrChanged) || errors.Is(err, errNoSpace) ||
		errors.Is(err, remote.ErrNotFound) || (d.failures > 1 && time.Since(d.lastProgress) > d.s.cfg.RetryWindow)
	if terminal && d.err == nil {
		d.err = err
		d.broadcastLocked()
	}
	return terminal
}

// doneLocked marks chunks [from, to) fetched.
func (d *download) doneLocked(from, to int) {
	for k := from; k < to; k++ {
		d.state[k] = chunkDone
	}
	d.lastProgress = time.Now()
	d.failures = 0
	d.broadcastLocked()
}

var errStreamTaken = errors.New("another worker streams this file")

// getRange is a validated ranged GET of the file. When the server says the
// file changed, it first asks whether the store merely changes its ETag on
// every request; if so (logged once per store), the GET is sent again,
// now as one whole stream checked by size and date.
func (d *download) getRange(ctx context.Context, off, n int64) (*remote.Body, error) {
	rs := d.ref.Store.Remote
	body, err := rs.GetRange(ctx, d.ref.Meta, off, n, d.ref.Model, d.ref.Name)
	if !errors.Is(err, remote.ErrChanged) {
		return body, err
	}
	marked, perr := rs.ProbeUnstableETag(ctx, d.ref.Meta, d.ref.Model, d.ref.Name)
	if perr != nil || (!marked && !rs.ETagUnstable()) {
		return nil, err
	}
	if marked {
		d.log.Warn("the store sends a new ETag on every request: its files are read as one whole stream each, checked by size and date",
			zap.String("store", d.ref.Store.Name))
	}
	return rs.GetRange(ctx, d.ref.Meta, off, n, d.ref.Model, d.ref.Name)
}

// fetch gets chunk k with a ranged GET into the cache file.
func (d *download) fetch(ctx context.Context, k int) error {
	off := int64(k) * d.chunk
	n := min(d.chunk, d.size-off)
	body, err := d.getRange(ctx, off, n)
	if err != nil {
		return err
	}
	defer body.Close()
	if body.Whole {
		return d.stream(ctx, k, body)
	}
	if err := body.CopyTo(d.f, off, n); err != nil {
		return err
	}
	// Reading past the announced end tells a server that sent too much.
	if m, err := body.Read(make([]byte, 1)); m > 0 || (err != nil && err != io.EOF) {
		return fmt.Errorf("GET %s: more bytes than the range asked for: %v", d.ref.URL(), err)
	}
	d.mu.Lock()
	d.doneLocked(k, k+1)
	if !d.scaled {
		// The server honours Range: more connections for the rest.
		d.scaled = true
		for range min(d.s.cfg.Parallel, d.n) - 1 {
			d.spawn()
		}
	}
	d.mu.Unlock()
	return nil
}

// stream writes a whole-file body (the server ignored Range) from offset
// 0, marking chunks done as they land. Only one worker streams.
func (d *download) stream(ctx context.Context, claimed int, body *remote.Body) error {
	d.mu.Lock()
	if d.streaming {
		if d.state[claimed] == chunkFetching {
			d.state[claimed] = chunkMissing
		}
		d.mu.Unlock()
		return errStreamTaken
	}
	d.streaming = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.streaming = false
		d.mu.Unlock()
	}()
	for k := 0; k < d.n; k++ {
		off := int64(k) * d.chunk
		n := min(d.chunk, d.size-off)
		d.mu.Lock()
		done := d.state[k] == chunkDone
		d.mu.Unlock()
		var err error
		if done {
			_, err = io.CopyN(io.Discard, body, n)
		} else {
			err = body.CopyTo(d.f, off, n)
		}
		if err != nil {
			if k != claimed {
				d.mu.Lock()
				if d.state[claimed] == chunkFetching {
					d.state[claimed] = chunkMissing
				}
				d.mu.Unlock()
			}
			return fmt.Errorf("streaming %s at %d: %w", d.ref.URL(), off, err)
		}
		d.mu.Lock()
		if d.state[k] != chunkDone {
			d.doneLocked(k, k+1)
		}
		d.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// Drain: the exact-length body reports a server that sent more.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return err
	}
	return nil
}

// readAt waits until the bytes [off, off+len(p)) are in the cache file (or
// the download failed, or ctx ended) and reads them.
func (d *download) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), d.size)
	if err := d.wait(ctx, int(off/d.chunk), int((end-1)/d.chunk)); err != nil {
		return 0, err
	}
	n, err := d.f.ReadAt(p[:end-off], off)
	if err == nil && end < off+int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

// ready waits until [off, off+n) is downloaded and returns the cache
// file's descriptor.
func (d *download) ready(ctx context.Context, off, n int64) (int, error) {
	if off < d.size && n > 0 {
		end := min(off+n, d.size)
		if err := d.wait(ctx, int(off/d.chunk), int((end-1)/d.chunk)); err != nil {
			return -1, err
		}
	}
	return int(d.f.Fd()), nil
}

// wait blocks until chunks first..last are done. Waiting chunks are
// fetched first, and the chunks after them next (read-ahead).
func (d *download) wait(ctx context.Context, first, last int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next = last + 1
	if d.complete || d.rangeDoneLocked(first, last) {
		return nil
	}
	for k := first; k <= last; k++ {
		d.waiting[k]++
	}
	// A read far from where the workers are, while all of them are busy,
	// gets a worker of its own (bounded) instead of queueing behind them.
	if d.scaled && !d.streaming && d.workers > 0 && d.workers < 2*d.s.cfg.Parallel && d.missingInLocked(first, last) {
		d.spawn()
	}
	defer func() { // runs before the Unlock above
		for k := first; k <= last; k++ {
			if d.waiting[k]--; d.waiting[k] <= 0 {
				delete(d.waiting, k)
			}
		}
	}()
	for !d.complete && !d.rangeDoneLocked(first, last) {
		if d.err != nil {
			return d.err
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			d.mu.Lock()
			return ctx.Err()
		case <-ch:
		}
		d.mu.Lock()
	}
	return nil
}

// missingInLocked reports whether a chunk of first..last is unclaimed.
func (d *download) missingInLocked(first, last int) bool {
	for k := first; k <= last; k++ {
		if d.state[k] == chunkMissing {
			return true
		}
	}
	return false
}

func (d *download) rangeDoneLocked(first, last int) bool {
	for k := first; k <= last; k++ {
		if d.state[k] != chunkDone {
			return false
		}
	}
	return true
}

// failed reports whether the download has failed for good.
func (d *download) failed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err != nil
}

// present returns how many bytes are downloaded.
func (d *download) present() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for k, st := range d.state {
		if st == chunkDone {
			n += min(d.chunk, d.size-int64(k)*d.chunk)
		}
	}
	return n
}

func (d *download) isComplete() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.complete
}

// addHandle and dropHandle count readers; the file is closed when the
// download is over and nobody reads.
func (d *download) addHandle() {
	d.mu.Lock()
	d.handles++
	d.mu.Unlock()
}

func (d *download) dropHandle() {
	d.mu.Lock()
	d.handles--
	closeNow := d.handles == 0 && d.finished
	d.mu.Unlock()
	if closeNow {
		d.f.Close()
	}
}
