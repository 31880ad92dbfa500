package engine

// The readers of a download: reads answered from a chunk's buffer (in
// place), from the cache file (spliced), or copied; a read waits for its
// bytes and makes sure a stream is on its way to them.

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
)

// readers is a download's reader side; download.mu protects its fields.
type readers struct {
	d *download

	handles  int
	lastRead time.Time // the latest read, for readerIdle
	// endWaiters: reads of the file's end waiting for the hash.
	endWaiters int
}

// read answers a reader: p from off, waiting (at most until ctx ends) for
// bytes still on their way. It returns the bytes, or, when they are all on
// disk, the cache file's descriptor so the caller can splice.
//
// With zeroCopy, bytes in a buffer are returned in place (pinLocked), for
// the caller to send before calling the result's Done.
func (r *readers) read(ctx context.Context, p []byte, off int64, zeroCopy bool) (cache.ReadResult, error) {
	d := r.d
	if off >= d.size {
		return cache.ReadResult{Fd: -1}, io.EOF
	}
	end := min(off+int64(len(p)), d.size)
	first, last := int(off/d.chunk), int((end-1)/d.chunk)
	d.mu.Lock()
	defer d.mu.Unlock()
	r.lastRead = time.Now()
	if first >= d.t.next-1 || last+1 > d.t.next {
		d.t.next = last + 1
	}
	for k := first; k <= last; k++ {
		d.t.c[k].waiting++
	}
	defer func() {
		for k := first; k <= last; k++ {
			d.t.c[k].waiting--
		}
	}()
	endWaiting := false
	for {
		// The file's end only once its hash matched (verify.go).
		wait, herr := d.hash.endWaitsLocked(end)
		if herr != nil {
			return cache.ReadResult{Fd: -1}, herr
		}
		if wait && !endWaiting {
			endWaiting = true
			r.endWaiters++
			defer func() { r.endWaiters-- }()
		}
		if !wait {
			if r, ok, err := r.answerLocked(p[:end-off], off, zeroCopy); ok || err != nil {
				return r, cmp.Or(err, eofIf(end < off+int64(len(p))))
			}
		}
		if d.err != nil {
			return cache.ReadResult{Fd: -1}, d.err
		}
		r.demandLocked()
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			d.mu.Lock()
			return cache.ReadResult{Fd: -1}, ctx.Err()
		case <-ch:
		}
		d.mu.Lock()
	}
}

// answerLocked answers a read of p at off if all its bytes are there: in
// place from a chunk's buffer (zeroCopy), as a range of the cache file, or
// copied into p. It may release the lock while it reads the cache file.
func (r *readers) answerLocked(p []byte, off int64, zeroCopy bool) (cache.ReadResult, bool, error) {
	d := r.d
	end := off + int64(len(p))
	if zeroCopy {
		if r, ok := d.pinLocked(off, end); ok {
			return r, true, nil
		}
	}
	if d.complete || d.inFileLocked(off, end) {
		return cache.ReadResult{Fd: int(d.f.Fd()), Off: off, N: len(p)}, true, nil
	}
	disk, ok := r.copyLocked(p, off)
	if !ok {
		return cache.ReadResult{}, false, nil
	}
	if len(disk) > 0 {
		// Pieces on disk are read without the lock (the reader's handle
		// keeps the file open; chunks on disk do not change).
		d.mu.Unlock()
		err := r.readPieces(p, off, disk)
		d.mu.Lock()
		if err != nil {
			return cache.ReadResult{Fd: -1}, false, err
		}
	}
	return cache.ReadResult{Data: p, Fd: -1}, true, nil
}

// copyLocked copies [off, off+len(p)) into p if every byte is there: from
// buffers now, and it returns the pieces that are in the cache file, for
// readPieces.
func (r *readers) copyLocked(p []byte, off int64) (disk [][2]int64, ok bool) {
	d := r.d
	end := off + int64(len(p))
	if !d.t.there(off, end) {
		return nil, false
	}
	for at := off; at < end; {
		k := int(at / d.chunk)
		c := &d.t.c[k]
		in := at - int64(k)*d.chunk
		stop := min(end, int64(k+1)*d.chunk)
		if c.buf != nil && c.filled >= stop-int64(k)*d.chunk {
			copy(p[at-off:stop-off], c.buf[in:])
		} else if d.f == nil {
			return nil, false
		} else {
			disk = append(disk, [2]int64{at, stop})
		}
		at = stop
	}
	return disk, true
}

// readPieces reads the pieces [from, to) of the cache file into p (which
// starts at off).
func (r *readers) readPieces(p []byte, off int64, pieces [][2]int64) error {
	d := r.d
	for _, pc := range pieces {
		if _, err := d.f.ReadAt(p[pc[0]-off:pc[1]-off], pc[0]); err != nil {
			return fmt.Errorf("reading the cache file of %s at %d: %w", d.ref.URL(), pc[0], err)
		}
	}
	return nil
}

// demandLocked makes sure someone fetches what a waiting reader needs:
// a new stream when no worker would reach it soon.
func (r *readers) demandLocked() {
	d := r.d
	_, forReader, ok := d.pickLocked()
	if !ok || !forReader || d.fetch.starting > 0 {
		return
	}
	switch {
	case d.fetch.workers == 0:
		d.broadcastLocked() // run starts one
	case d.fetch.ranged && !d.fetch.whole && d.fetch.workers < 2*d.s.cfg.Parallel && d.s.policy.room(d.ref.Store):
		d.fetch.spawn() // a reader far from every stream gets its own, within the store's cap
	}
}

// add and drop count handles; the file is closed when the
// download is over and nobody reads.
func (r *readers) add() {
	d := r.d
	d.mu.Lock()
	r.handles++
	d.mu.Unlock()
}

func (r *readers) drop() {
	d := r.d
	d.mu.Lock()
	r.handles--
	closeNow := r.handles == 0 && d.finished && d.f != nil
	d.broadcastLocked() // a download that does not cache ends with its last reader
	d.mu.Unlock()
	if closeNow {
		d.f.Close()
	}
}
