package engine

// The fetcher: one download's workers and their streams (ranged GETs,
// or one whole-file stream from a server that ignores Range), filling
// chunks into buffers or splicing them into the cache file.

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/remote"
)

// fetcher is a download's workers and streams; download.mu protects its
// fields.
type fetcher struct {
	d *download

	whole     bool // the server ignores Range: one whole-file stream
	streaming bool // the whole-file stream is running
	ranged    bool // a 206 was seen: more streams may be added
	// direct: bytes go from the socket straight into the cache file
	// (spliced, no copy through this process), and readers splice them
	// from there as each piece lands. Chosen per chunk while the cache
	// disk keeps up (see diskWatch); otherwise chunks go through memory.
	direct   bool
	workers  int
	starting int // workers started that have not picked their work yet
	stop     int // workers asked to stop at their next chunk boundary
	retry    retrier
	mirror   mirrors // other stores' copies (mirror.go)
	spawn    func()  // starts a worker; only with workers > 0 or from run
	ctl      controller
	bytesIn  int64 // bytes received, for the controller
}

// worker runs streams until there is nothing it should fetch.
func (f *fetcher) worker(ctx context.Context, cancel context.CancelFunc) {
	d := f.d
	backoff := 250 * time.Millisecond
	for first := true; ; first = false {
		d.mu.Lock()
		if first {
			f.starting--
		}
		if f.stop > 0 {
			f.stop--
			d.mu.Unlock()
			return
		}
		k, forReader, ok := d.pickLocked()
		if ok {
			d.t.c[k].state = chunkFetching
		}
		src := f.sourceLocked()
		d.mu.Unlock()
		if !ok {
			return
		}
		buf, ok := f.bufferFor(forReader)
		if !ok {
			d.mu.Lock()
			d.t.c[k].state = chunkMissing
			d.mu.Unlock()
			return // run starts us again when the budget has room
		}
		release := d.s.policy.slot(src.Store)
		err := f.streamFrom(ctx, k, buf)
		release()
		if err == nil {
			backoff = 250 * time.Millisecond
			continue
		}
		if f.fail(ctx, err) {
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

// fail records a failed fetch; it reports whether the whole download has
// failed (see retrier.terminal).
func (f *fetcher) fail(ctx context.Context, err error) bool {
	d := f.d
	d.mu.Lock()
	defer d.mu.Unlock()
	terminal := f.retry.terminal(ctx, err)
	if terminal && d.err == nil && mirrorable(ctx, err) && f.tryMirrorLocked(err) {
		return false
	}
	if terminal && d.err == nil {
		d.err = err
		d.broadcastLocked()
	}
	return terminal
}

// streamFrom fetches chunk k (already marked fetching, with buf) and goes
// on with the chunks after it in the same GET while they are missing.
func (f *fetcher) streamFrom(ctx context.Context, k int, buf []byte) error {
	d := f.d
	d.mu.Lock()
	end := d.t.runEnd(k)
	if buf != nil {
		d.t.c[k].buf = buf[:d.t.chunkLen(k)]
	}
	src := f.sourceLocked()
	d.mu.Unlock()
	off := int64(k) * d.chunk
	body, err := getRange(ctx, src, d.log, off, min(int64(end)*d.chunk, d.size)-off)
	if err == nil {
		err = d.hash.stated.noteBody(&d.mu, d.ref.URL(), body)
	}
	if err != nil {
		f.abandon(k)
		return err
	}
	defer body.Close()
	if body.Whole {
		return f.streamWhole(ctx, k, body)
	}
	d.mu.Lock()
	if !f.ranged {
		f.ranged = true
		f.ctl.start(d)
	}
	d.mu.Unlock()
	for j := k; j < end; j++ {
		if j > k && !f.continueInto(j) {
			return nil
		}
		last := j == end-1
		if err := f.fill(ctx, j, body, last, j == k); err != nil {
			f.abandon(j)
			return err
		}
	}
	return nil
}

// endsHere checks, after a stream's last chunk, that its body ends there:
// a server that sends more lied about what it sent.
func (f *fetcher) endsHere(body *remote.Body, last bool) error {
	d := f.d
	if !last {
		return nil
	}
	if m, err := body.Read(make([]byte, 1)); m > 0 || (err != nil && err != io.EOF) {
		return fmt.Errorf("GET %s: %w (%v)", d.ref.URL(), errLongBody, err)
	}
	return nil
}

// continueInto claims chunk j for the stream that just filled j-1: only
// if it is still missing, no worker was asked to stop, and a buffer is
// there for it (for the reader, or within the budget).
func (f *fetcher) continueInto(j int) bool {
	d := f.d
	d.mu.Lock()
	if d.t.c[j].state != chunkMissing || d.err != nil || f.stop > 0 {
		d.mu.Unlock()
		return false
	}
	forReader := d.t.c[j].waiting > 0 || j < d.t.next+readerWindow
	if d.noCache != nil && !forReader {
		d.mu.Unlock()
		return false
	}
	d.t.c[j].state = chunkFetching
	d.mu.Unlock()
	buf, ok := f.bufferFor(forReader)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ok {
		d.t.c[j].state = chunkMissing
		return false
	}
	if buf != nil {
		d.t.c[j].buf = buf[:d.t.chunkLen(j)]
	}
	return true
}

// bufferFor returns the buffer for a chunk about to be fetched: none when
// it goes straight into the cache file (the disk keeps up), else one from
// the budget. ok is false when background work finds no room.
func (f *fetcher) bufferFor(forReader bool) (buf []byte, ok bool) {
	d := f.d
	d.mu.Lock()
	if f.direct && d.s.disk.busyNow() {
		f.direct = false
		d.log.Info("cache disk busy: this file goes through memory, its cache copy written behind")
	}
	direct := f.direct
	d.mu.Unlock()
	if direct {
		return nil, true
	}
	buf = d.s.pool.alloc(d.chunk, forReader)
	return buf, buf != nil
}

// fill reads chunk j from body into its buffer, a piece at a time, waking
// readers after each piece; a full chunk goes to the write-behind queue.
//
// With last set the body must end with the chunk: a server that sends
// more lied about what it sent, and the chunk is not kept (nor, so, the
// file committed).
func (f *fetcher) fill(ctx context.Context, j int, body *remote.Body, last, first bool) error {
	d := f.d
	d.mu.Lock()
	buf := d.t.c[j].buf
	d.mu.Unlock()
	if buf == nil {
		return f.fillDirect(ctx, j, body, last, first)
	}
	var got int64
	for got < int64(len(buf)) {
		m, err := io.ReadFull(body, buf[got:min(got+piece, int64(len(buf)))])
		got += int64(m)
		d.mu.Lock()
		f.pieceLandedLocked(j, got, int64(len(buf)), int64(m), last, first)
		d.mu.Unlock()
		if err != nil {
			return fmt.Errorf("GET %s at %d: %w", d.ref.URL(), int64(j)*d.chunk+got, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := f.endsHere(body, last); err != nil {
		return err
	}
	d.mu.Lock()
	c := &d.t.c[j]
	c.state, c.filled = chunkInMemory, got
	// Progress is a chunk completed: a server that sends the same first
	// bytes again and again makes none, and meets the retry window.
	f.retry.progressed()
	queue := d.noCache == nil
	c.queued = queue
	d.dropBehindLocked()
	d.broadcastLocked()
	d.mu.Unlock()
	if queue {
		d.s.queue.push(d, j)
	} else {
		d.s.pool.poke() // reclaimIdle may take it once read
	}
	return nil
}

// pieceLandedLocked records step more bytes of chunk j received (got of
// its n so far) by a stream, first if this is the stream's first chunk:
// readers see them, except the last piece of a stream's last chunk, which
// shows only once endsHere knows the body ends there; the controller
// counts them, and a stream's first bytes end its connecting.
func (f *fetcher) pieceLandedLocked(j int, got, n, step int64, last, first bool) {
	d := f.d
	if !last || got < n {
		d.t.c[j].filled = got
	}
	f.bytesIn += step
	if first && got == step {
		f.ctl.connected()
	}
	f.ctl.observe(d)
	d.broadcastLocked()
}

// fillDirect splices chunk j from body into the cache file, a piece at a
// time, waking readers (who splice from the file) after each piece.
func (f *fetcher) fillDirect(ctx context.Context, j int, body *remote.Body, last, first bool) error {
	d := f.d
	n := d.t.chunkLen(j)
	off := int64(j) * d.chunk
	var got int64
	for got < n {
		step := min(directPiece, n-got)
		if err := body.CopyTo(d.f, off+got, step); err != nil {
			if cacheDiskFailed(err) {
				// The disk, not the store: no cache copy, and the chunk is
				// fetched again through memory for the readers.
				d.giveUpCache(fmt.Errorf("cache write: %w", err))
			}
			return fmt.Errorf("GET %s at %d: %w", d.ref.URL(), off+got, err)
		}
		got += step
		d.mu.Lock()
		f.pieceLandedLocked(j, got, n, step, last, first)
		d.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := f.endsHere(body, last); err != nil {
		return err
	}
	d.mu.Lock()
	c := &d.t.c[j]
	c.state, c.filled = chunkOnDisk, n
	f.retry.progressed()
	d.broadcastLocked()
	d.mu.Unlock()
	return nil
}

// abandon puts a chunk whose fetch failed back to missing.
func (f *fetcher) abandon(k int) {
	d := f.d
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &d.t.c[k]
	if c.state == chunkFetching {
		c.state, c.filled = chunkMissing, 0
		d.releaseLocked(k)
	}
	d.broadcastLocked()
}

// streamWhole reads a whole-file body (the server ignored Range) from
// offset 0, filling chunks as they come. Only one whole stream runs.
func (f *fetcher) streamWhole(ctx context.Context, claimed int, body *remote.Body) error {
	d := f.d
	d.mu.Lock()
	f.whole = true
	if f.streaming {
		d.mu.Unlock()
		f.abandon(claimed)
		return nil
	}
	f.streaming = true
	if claimed != 0 {
		// The buffer was taken for another chunk: the stream starts at 0.
		d.t.c[claimed].state = chunkMissing
		d.releaseLocked(claimed)
	}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		f.streaming = false
		d.broadcastLocked()
		d.mu.Unlock()
	}()
	for k := 0; k < d.t.n; k++ {
		n := d.t.chunkLen(k)
		d.mu.Lock()
		st := d.t.c[k].state
		take := st == chunkMissing || (k == 0 && st == chunkFetching)
		forReader := d.t.c[k].waiting > 0 || k < d.t.next+readerWindow
		if take && d.noCache != nil && !forReader && k > d.t.next+readerWindow+2 {
			take = false // nothing to keep it for: skip over it
		}
		if take {
			d.t.c[k].state = chunkFetching
		}
		d.mu.Unlock()
		if !take {
			if _, err := io.CopyN(io.Discard, body, n); err != nil {
				return fmt.Errorf("streaming %s at %d: %w", d.ref.URL(), int64(k)*d.chunk, err)
			}
			continue
		}
		d.mu.Lock()
		buf := d.t.c[k].buf
		d.mu.Unlock()
		if buf == nil {
			if buf, _ = f.bufferFor(true); buf == nil {
				d.mu.Lock()
				direct := f.direct
				d.mu.Unlock()
				if !direct {
					// Within the budget, as every fetch: wait for room.
					if buf = d.s.pool.allocWait(ctx, d.chunk); buf == nil {
						f.abandon(k)
						return ctx.Err()
					}
				}
			}
			if buf != nil {
				d.mu.Lock()
				d.t.c[k].buf = buf[:n]
				d.mu.Unlock()
			}
		}
		if err := f.fill(ctx, k, body, false, false); err != nil {
			f.abandon(k)
			return fmt.Errorf("streaming: %w", err)
		}
	}
	// Drain: the exact-length body reports a server that sent more.
	_, err := io.Copy(io.Discard, body)
	return err
}
