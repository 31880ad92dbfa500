package engine

// Files the cache has no room for are read from the store into memory.
// One memFile per file version, shared by every handle of it, holds pages
// of the file fetched for its readers: memory in proportion to what is
// read (never to what the store claims the size is), within the daemon's
// buffer budget, and fetches sized by how the file is read, as
// mountpoint-s3's prefetcher does: a random reader fetches the pages its
// read covers, a sequential one a read-ahead window that doubles with each
// sequential read, up to memAheadMax.

import (
	"context"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

const (
	// memPageSize is the unit of memory of a file read into memory.
	memPageSize = 256 << 10
	// memStep is how much of a page is read between wake-ups of readers.
	memStep = 64 << 10
	// memAheadMax bounds the read-ahead of a sequential reader.
	memAheadMax = 8 << 20
	// memSeqSlack: a read within this distance of where the handle's last
	// read ended still counts as sequential (the kernel sends a large
	// read's parts concurrently, not always in order).
	memSeqSlack = 1 << 20
)

// memFile is one file version read from the store into memory.
type memFile struct {
	// Read only.
	s      *StreamContent
	ref    cache.Ref
	key    string
	size   int64
	pages  int64 // how many pages the file has
	log    *zap.Logger
	ctx    context.Context // its fetches; cancelled with its last handle
	cancel context.CancelFunc

	mu      sync.Mutex // protects the fields below
	page    map[int64]*memPage
	changed chan struct{} // closed and replaced on every change
	err     error         // terminal failure
	handles int
	closed  bool // the last handle is gone: pages are freed as they come back
	fetches int  // fetches running
	retry   retrier
	mirror  mirrors // other stores' copies (mirror.go)
	hash    memHash
}

// waitLocked waits, with m.mu released, for the next change or for ctx
// to end (its error).
func (m *memFile) waitLocked(ctx context.Context) error {
	ch := m.changed
	m.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-ch:
	}
	m.mu.Lock()
	return ctx.Err()
}

// memPage is one page: being fetched, or holding filled bytes.
type memPage struct {
	buf      []byte
	filled   int64
	fetching bool
	pins     int   // replies in flight that point into buf
	wanted   int   // readers waiting for it: kept until they copy it
	used     int64 // when it was last read (UnixNano)
	// orphan: the page was put back to missing while replies pointed into
	// its buffer; the last of them frees it.
	orphan bool
}

func newMemFile(s *StreamContent, ref cache.Ref, key string) *memFile {
	ctx, cancel := context.WithCancel(s.ctx)
	m := &memFile{
		s: s, ref: ref, key: key, size: ref.Meta.Size,
		pages: ref.Meta.Size/memPageSize + min(ref.Meta.Size%memPageSize, 1), // no overflow near MaxInt64
		log:   s.log.With(zap.String("url", ref.URL())),
		ctx:   ctx, cancel: cancel,
		page:    map[int64]*memPage{},
		changed: make(chan struct{}),
		retry:   newRetrier(s.cfg.RetryWindow),
	}
	m.hash.m = m
	return m
}

func (m *memFile) broadcastLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *memFile) pageLen(k int64) int64 { return min(memPageSize, m.size-k*memPageSize) }

// memHandle is one open of a memFile; it tracks whether its reader is
// sequential (m.mu protects its fields).
type memHandle struct {
	m     *memFile
	next  int64 // where the latest read ended
	seq   int   // sequential reads in a row
	ahead int64 // read-ahead window
	once  sync.Once
}

func (h *memHandle) Read(ctx context.Context, p []byte, off int64) (cache.ReadResult, error) {
	return h.m.read(ctx, h, p, off, true)
}

func (h *memHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	r, err := h.m.read(ctx, h, p, off, false)
	return len(r.Data), err
}

func (h *memHandle) Size() int64 { return h.m.size }
func (h *memHandle) Fd() int     { return -1 }
func (h *memHandle) Close() error {
	h.once.Do(h.m.dropHandle)
	return nil
}

// advanceLocked records a read of [off, end) and returns the read-ahead
// it earns: none for a random reader; for a sequential one, a window that
// starts at the read's size and doubles with each sequential read.
func (h *memHandle) advanceLocked(off, end int64) int64 {
	if off >= h.next-memSeqSlack && off <= h.next+memSeqSlack {
		h.seq++
	} else {
		h.seq, h.ahead = 0, 0
	}
	h.next = max(h.next, end)
	if h.seq >= 2 {
		h.ahead = min(max(2*h.ahead, end-off), memAheadMax)
	}
	return h.ahead
}

// read answers a reader from memory, fetching what is missing and waiting
// (at most until ctx ends) for it. Pages are copied into p as they arrive,
// in any order, so a reader holds no page while it waits for another (no
// reader holds memory another needs); a page it waits for is kept until it
// is copied. With zeroCopy, a range inside one page is answered in place
// (the result's Done lets the page go).
func (m *memFile) read(ctx context.Context, h *memHandle, p []byte, off int64, zeroCopy bool) (cache.ReadResult, error) {
	if off >= m.size || off < 0 {
		return cache.ReadResult{Fd: -1}, io.EOF
	}
	end := off + min(int64(len(p)), m.size-off) // no overflow near MaxInt64
	eof := eofIf(end-off < int64(len(p)))
	first, last := off/memPageSize, (end-1)/memPageSize
	m.mu.Lock()
	defer m.mu.Unlock()
	ahead := h.advanceLocked(off, end)
	copied := make([]bool, last-first+1)
	left := len(copied)
	for {
		now := time.Now().UnixNano()
		for k := first; k <= last; k++ {
			base := k * memPageSize
			from, to := max(off, base), min(end, base+memPageSize)
			pg := m.page[k]
			if copied[k-first] || pg == nil || pg.buf == nil || pg.filled < to-base {
				continue
			}
			pg.used = now
			if h.seq >= 2 && to == base+m.pageLen(k) && (k+1)*memPageSize <= m.hash.at {
				// Read to its end by a sequential reader, and hashed: the
				// first to go.
				pg.used = 0
			}
			if zeroCopy && first == last && !m.hash.endWaitsLocked(end) {
				m.planAheadLocked(end, ahead)
				return m.pinLocked(k, off, end), eof
			}
			copy(p[from-off:to-off], pg.buf[from-base:to-base])
			copied[k-first] = true
			left--
		}
		if m.err != nil {
			return cache.ReadResult{Fd: -1}, m.err
		}
		if left == 0 && !m.hash.endWaitsLocked(end) {
			m.planAheadLocked(end, ahead)
			return cache.ReadResult{Data: p[:end-off], Fd: -1}, eof
		}
		if left == 0 { // the file's end, waiting for the hash (memverify.go)
			if err := m.waitLocked(ctx); err != nil {
				return cache.ReadResult{Fd: -1}, err
			}
			continue
		}
		wait := first
		for copied[wait-first] {
			wait++
		}
		m.planLocked(wait, last, end, ahead)
		pg := m.wantLocked(wait)
		pg.wanted++
		err := m.waitLocked(ctx)
		pg.wanted--
		m.forgetIfUnusedLocked(wait, pg)
		if err != nil {
			return cache.ReadResult{Fd: -1}, err
		}
	}
}

// wantLocked returns page k, adding it as missing when it is not there.
func (m *memFile) wantLocked(k int64) *memPage {
	pg := m.page[k]
	if pg == nil {
		pg = &memPage{}
		m.page[k] = pg
	}
	return pg
}

// forgetIfUnusedLocked drops a page entry that holds nothing and that
// nobody fetches.
func (m *memFile) forgetIfUnusedLocked(k int64, pg *memPage) {
	if pg.buf == nil && !pg.fetching && pg.wanted == 0 && m.page[k] == pg {
		delete(m.page, k)
	}
}

// missing reports whether page k needs a fetch.
func (pg *memPage) missing() bool { return pg == nil || (pg.buf == nil && !pg.fetching) }

// pinLocked answers [off, end), inside page k, from the page's buffer.
func (m *memFile) pinLocked(k, off, end int64) cache.ReadResult {
	pg := m.page[k]
	pg.pins++
	base := k * memPageSize
	return cache.ReadResult{Data: pg.buf[off-base : end-base], Fd: -1, Done: func() { m.unpin(k, pg) }}
}

func (m *memFile) unpin(k int64, pg *memPage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.s.pool.poke() // poolMu is a leaf: taken under m.mu
	pg.pins--
	switch {
	case pg.pins > 0:
	case pg.orphan:
		m.s.pool.free(pg.buf)
		pg.buf = nil
	case !pg.fetching:
		m.freeIfClosedLocked(k)
	}
}

// freeIfClosedLocked frees page j once its file has no handle left.
func (m *memFile) freeIfClosedLocked(j int64) {
	pg := m.page[j]
	if m.closed && pg.pins == 0 && pg.buf != nil {
		m.s.pool.free(pg.buf)
		pg.buf = nil
		delete(m.page, j)
	}
}

// reclaimable lists the pages nobody reads, fetches or points into now,
// last read before olderThan (UnixNano; 0: any time).
func (m *memFile) reclaimable(olderThan int64) []pageRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []pageRef
	for k, pg := range m.page {
		if pg.buf != nil && !pg.fetching && pg.pins == 0 && pg.wanted == 0 && k != m.hash.pageLocked() && (olderThan == 0 || pg.used < olderThan) {
			out = append(out, pageRef{m, k, pg.used})
		}
	}
	return out
}

// pageRef names a page that may be reclaimed.
type pageRef struct {
	m    *memFile
	k    int64
	used int64
}

// drop frees the page if it is still idle; it reports the bytes freed.
func (r pageRef) drop() int64 {
	m := r.m
	m.mu.Lock()
	pg := m.page[r.k]
	if pg == nil || pg.buf == nil || pg.fetching || pg.pins > 0 || pg.wanted > 0 || r.k == m.hash.pageLocked() {
		m.mu.Unlock()
		return 0
	}
	buf := pg.buf
	pg.buf, pg.filled = nil, 0
	delete(m.page, r.k)
	m.broadcastLocked() // a reader waiting for the hash looks again
	m.mu.Unlock()
	m.s.pool.free(buf)
	return memPageSize
}

// addHandle and dropHandle count the file's handles; the last one gone
// stops its fetches and frees its pages.
func (m *memFile) addHandle() *memHandle {
	m.mu.Lock()
	m.handles++
	m.mu.Unlock()
	return &memHandle{m: m}
}

func (m *memFile) dropHandle() {
	m.s.mu.Lock()
	m.mu.Lock()
	m.handles--
	last := m.handles == 0
	if last {
		m.closed = true
		if m.s.uncached[m.key] == m {
			delete(m.s.uncached, m.key)
		}
		for k := range m.page {
			if !m.page[k].fetching {
				m.freeIfClosedLocked(k)
			}
		}
	}
	m.mu.Unlock()
	m.s.mu.Unlock()
	if last {
		m.cancel() // its fetches free their pages as they end
	}
}

// failed reports whether the file failed for good (a new open starts afresh).
func (m *memFile) failed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err != nil
}
