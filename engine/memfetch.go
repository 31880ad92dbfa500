package engine

// Fetching the pages of a file read into memory: what a reader needs and
// its read-ahead, within the buffer budget, one ranged GET per run,
// retried until the retry window.

import (
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/remote"
)

// planLocked starts the fetches a reader of pages [first, last] needs:
// the missing runs of those pages (always, but for the per-file cap), and
// the read-ahead past end once less than half of the window is there or
// on its way (so that read-ahead goes in large GETs, not one per read).
func (m *memFile) planLocked(first, last, end, ahead int64) {
	for k := first; k <= last; {
		if !m.page[k].missing() {
			k++
			continue
		}
		run := k
		for k <= last && m.page[k].missing() {
			k++
		}
		if m.fetches > 0 && (m.fetches >= m.s.cfg.Parallel || !m.s.policy.room(m.ref.Store)) {
			return // a fetch ending wakes the reader, who plans again
		}
		m.startLocked(run, k-run, true)
	}
	m.planAheadLocked(end, ahead)
}

// planAheadLocked starts the read-ahead past end once less than half of
// the window is there or on its way. It runs on every sequential read,
// also one answered from memory: the next GET goes out while the reader
// still has half a window to read.
func (m *memFile) planAheadLocked(end, ahead int64) {
	if ahead <= 0 || m.fetches >= m.s.cfg.Parallel || !m.s.policy.room(m.ref.Store) {
		return
	}
	from := end / memPageSize
	to := min(from+ahead/memPageSize+1, m.pages)
	k := from
	for k < to && !m.page[k].missing() {
		k++
	}
	if k >= to || (k-from)*memPageSize >= ahead/2 {
		return
	}
	run := k
	for k < to && m.page[k].missing() {
		k++
	}
	m.startLocked(run, k-run, false)
}

// startLocked marks pages [k, k+n) fetching and starts their fetch.
func (m *memFile) startLocked(k, n int64, forReader bool) {
	for j := k; j < k+n; j++ {
		m.wantLocked(j).fetching = true
	}
	m.fetches++
	m.s.wg.Add(1)
	go func() {
		defer m.s.wg.Done()
		m.fetch(k, n, forReader)
	}()
}

// fetch gets pages [k, k+n): memory first (all of it, waiting for the
// budget, for a reader; what fits for read-ahead), then one ranged GET,
// retried from the first page not yet filled until it succeeds or fails
// for good.
func (m *memFile) fetch(k, n int64, forReader bool) {
	release := m.s.policy.slot(m.ref.Store)
	defer release()
	got := m.s.pool.reserve(m.ctx, n*memPageSize, memPageSize, forReader) / memPageSize
	m.mu.Lock()
	m.unmarkLocked(k+got, k+n) // read-ahead that found no room
	for j := k; j < k+got; j++ {
		m.page[j].buf = m.s.pool.page()[:m.pageLen(j)]
	}
	m.mu.Unlock()
	done := k
	for done < k+got {
		var err error
		done, err = m.fetchFrom(done, k+got)
		if err == nil {
			break
		}
		m.mu.Lock()
		terminal := m.retry.terminal(m.ctx, err)
		if terminal && m.err == nil && mirrorable(m.ctx, err) &&
			m.mirror.switchLocked(m.s, &m.mu, m.ref, m.hash.stated.d, m.log, err) && m.err == nil {
			m.retry, terminal = newRetrier(m.s.cfg.RetryWindow), false
		}
		if terminal && m.err == nil && m.ctx.Err() == nil {
			m.err = err
			m.log.Error("reading from the store failed", zap.Error(err))
		}
		wait := m.retry.backoff()
		m.mu.Unlock()
		if terminal {
			if errors.Is(err, remote.ErrChanged) && m.s.onChange != nil {
				m.s.onChange(m.ref)
			}
			break
		}
		m.log.Warn("fetch failed, retrying", zap.Int64("offset", done*memPageSize), zap.Error(err))
		select {
		case <-m.ctx.Done():
		case <-time.After(wait):
		}
	}
	m.mu.Lock()
	m.unmarkLocked(done, k+got)
	for j := k; j < done; j++ {
		m.page[j].fetching = false
		m.freeIfClosedLocked(j)
	}
	m.fetches--
	m.broadcastLocked()
	m.mu.Unlock()
	m.s.pool.poke() // its pages may go now
}

// unmarkLocked puts pages [from, to) back to missing, freeing what they
// hold (a buffer replies still point into is freed by the last of them).
func (m *memFile) unmarkLocked(from, to int64) {
	for j := from; j < to; j++ {
		pg := m.page[j]
		if pg.pins > 0 {
			pg.orphan = true
			pg = &memPage{}
			m.page[j] = pg
		} else if pg.buf != nil {
			m.s.pool.free(pg.buf)
		}
		pg.fetching, pg.filled, pg.buf = false, 0, nil
		m.forgetIfUnusedLocked(j, pg)
	}
}

// fetchFrom GETs pages [k, end) (their buffers set; page k may be partly
// filled by an earlier attempt) and fills them in order. It returns the
// first page not completely filled.
func (m *memFile) fetchFrom(k, end int64) (int64, error) {
	m.mu.Lock()
	off := k*memPageSize + m.page[k].filled
	src := m.mirror.source(m.ref)
	m.mu.Unlock()
	n := min(end*memPageSize, m.size) - off
	body, err := getRange(m.ctx, src, m.log, off, n)
	if err == nil {
		err = m.hash.stated.noteBody(&m.mu, m.ref.URL(), body)
	}
	if err != nil {
		return k, err
	}
	defer body.Close()
	if body.Whole && off > 0 {
		// The server ignores Range: its answer starts at 0.
		if _, err := io.CopyN(io.Discard, body, off); err != nil {
			return k, fmt.Errorf("GET %s: skipping to %d: %w", m.ref.URL(), off, err)
		}
	}
	for ; k < end; k++ {
		if err := m.fillPage(k, body, k == end-1 && !body.Whole); err != nil {
			return k, err
		}
	}
	return k, nil
}

// fillPage reads page k from body, from where an earlier attempt left it,
// a step at a time, waking readers after each. With last set the body must
// end with the page; its last step shows only once that is known (a server
// that sends more lied about what it sent).
func (m *memFile) fillPage(k int64, body *remote.Body, last bool) error {
	m.mu.Lock()
	buf, got := m.page[k].buf, m.page[k].filled
	m.mu.Unlock()
	n := int64(len(buf))
	for got < n {
		step, err := io.ReadFull(body, buf[got:min(got+memStep, n)])
		got += int64(step)
		if err != nil {
			return fmt.Errorf("GET %s at %d: %w", m.ref.URL(), k*memPageSize+got, err)
		}
		if got == n && last {
			if b, err := body.Read(make([]byte, 1)); b > 0 || (err != nil && err != io.EOF) {
				return fmt.Errorf("GET %s: %w (%v)", m.ref.URL(), errLongBody, err)
			}
		}
		m.mu.Lock()
		m.page[k].filled = got
		if got == n {
			m.page[k].used = time.Now().UnixNano() // not the first to go
			m.retry.progressed()
		}
		m.broadcastLocked()
		m.mu.Unlock()
		if m.ctx.Err() != nil {
			return m.ctx.Err()
		}
	}
	return nil
}
