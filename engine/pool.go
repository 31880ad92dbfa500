package engine

// The buffer pool: the daemon-wide budget of download memory (chunk
// buffers and pages). A leaf: its lock is never held while another is
// taken. Making room (reclaiming memory other downloads hold) is the
// cache's job (StreamContent.reclaim), handed to the pool at its start.

import (
	"context"
	"sync"
)

// keptFree is how many free buffers of each size are kept for reuse.
const keptFree = 4

// bufferPool counts every byte of download memory against one budget.
type bufferPool struct {
	// Read only.
	budget    int64
	chunkSize int64
	// reclaim frees memory nobody reads now (called with no lock held).
	reclaim func(need int64, forReader bool)

	mu         sync.Mutex // protects the fields below
	used       int64
	freeChunks [][]byte
	freePages  [][]byte
	freed      chan struct{} // closed and replaced when memory is freed or may be reclaimed
}

func newBufferPool(budget, chunkSize int64, reclaim func(int64, bool)) *bufferPool {
	return &bufferPool{budget: budget, chunkSize: chunkSize, reclaim: reclaim, freed: make(chan struct{})}
}

// alloc returns a buffer of size bytes for a chunk, within the budget, or
// nil. A reader's fetch first makes room: buffers queued for writing are
// reclaimed (their chunks are fetched again later), then memory nobody
// reads now; background work takes only memory that has been idle for
// readerIdle.
func (p *bufferPool) alloc(size int64, forReader bool) []byte {
	if b := p.take(size); b != nil {
		return b
	}
	p.reclaim(size, forReader)
	return p.take(size)
}

// allocWait is alloc for a reader, waiting for the budget to have room
// (nil once ctx ends).
func (p *bufferPool) allocWait(ctx context.Context, size int64) []byte {
	for ctx.Err() == nil {
		freed := p.changed()
		if b := p.alloc(size, true); b != nil {
			return b
		}
		select {
		case <-ctx.Done():
		case <-freed:
		}
	}
	return nil
}

func (p *bufferPool) take(size int64) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used+size > p.budget {
		return nil
	}
	p.used += size
	if n := len(p.freeChunks); n > 0 && int64(cap(p.freeChunks[n-1])) == size {
		b := p.freeChunks[n-1]
		p.freeChunks = p.freeChunks[:n-1]
		return b[:size]
	}
	return make([]byte, size)
}

// reserve counts up to want bytes, in whole units, against the budget for
// pages of files read into memory (page gives the pages). A reader's
// fetch (wait) gets all of it, waiting for memory to be freed (at most
// until ctx ends); read-ahead gets what fits now. It returns the bytes
// reserved.
func (p *bufferPool) reserve(ctx context.Context, want, unit int64, wait bool) int64 {
	for ctx.Err() == nil {
		freed := p.changed()
		if p.tryReserve(want) {
			return want
		}
		p.reclaim(want, wait)
		if p.tryReserve(want) {
			return want
		}
		if !wait {
			for n := want - unit; n > 0; n -= unit {
				if p.tryReserve(n) {
					return n
				}
			}
			return 0
		}
		select {
		case <-ctx.Done():
		case <-freed:
		}
	}
	return 0
}

func (p *bufferPool) tryReserve(n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used+n > p.budget {
		return false
	}
	p.used += n
	return true
}

// page returns a page for memory reserved with reserve.
func (p *bufferPool) page() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.freePages); n > 0 {
		b := p.freePages[n-1]
		p.freePages = p.freePages[:n-1]
		return b[:memPageSize]
	}
	return make([]byte, memPageSize)
}

// free gives a buffer (a chunk's or a page) back and wakes fetches
// waiting for room.
func (p *bufferPool) free(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used -= int64(cap(b))
	switch int64(cap(b)) {
	case p.chunkSize:
		if len(p.freeChunks) < keptFree {
			p.freeChunks = append(p.freeChunks, b)
		}
	case memPageSize:
		if len(p.freePages) < keptFree*(memAheadMax/memPageSize) {
			p.freePages = append(p.freePages, b)
		}
	}
	p.wakeLocked()
}

// poke wakes fetches waiting for the budget: memory they may reclaim was
// released (a fetch ended, a reply let its page go).
func (p *bufferPool) poke() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wakeLocked()
}

func (p *bufferPool) wakeLocked() {
	close(p.freed)
	p.freed = make(chan struct{})
}

// changed is closed the next time memory is freed, or may be reclaimed.
func (p *bufferPool) changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.freed
}

// inUse is the memory held now.
func (p *bufferPool) inUse() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}
