package engine

// Files read into memory are verified too, when they are read in order:
// a goroutine per memFile hashes its pages from the start as they are
// filled (the page it needs next is kept from reclaim). A read of the
// file's end waits for the hash when the hash can reach it with what is
// in memory (a reader that went through the file, as cp does), and fails
// on a mismatch; a reader that jumped to the end of a file it did not
// read gets its bytes unverified (the whole file would have to be fetched
// first), and that is logged once.
// memHash is a memFile's hash state; memFile.mu protects it.
type memHash struct {
	m *memFile

	at   int64 // bytes hashed so far
	done bool
	off  bool // given up: the end was read before the rest
	// stated is the digest the answers state (stated.go); check is the
	// loop's, used by it alone.
	stated stated
	check  *digestCheck
}

// loop hashes the file's pages in order until the end, a failure, or
// the file's last handle is gone.
func (h *memHash) loop() {
	m := h.m
	check := newDigestCheck(m.ref)
	h.check = check
	for {
		k, pg, data, ok := m.hash.next()
		if !ok {
			return
		}
		check.Write(data)
		m.unpin(k, pg)
		m.mu.Lock()
		h.at += int64(len(data))
		if h.at == m.size {
			check.learn(h.stated.d, h.at)
			h.done = true
			if _, _, err := check.result(); err != nil && m.err == nil {
				m.err = err
				logMismatch(m.log, err)
				defer m.s.countMismatch() // after m.mu: StreamContent.mu comes first
				defer m.s.refused(m.ref, err)
			}
		}
		over := h.done
		m.broadcastLocked()
		m.mu.Unlock()
		if over {
			return
		}
	}
}

// next waits for the bytes after the hashed ones and returns them,
// pinned in their page.
func (h *memHash) next() (k int64, pg *memPage, data []byte, ok bool) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if m.ctx.Err() != nil || m.err != nil || h.done || h.off {
			return 0, nil, nil, false
		}
		k = h.at / memPageSize
		base := k * memPageSize
		if pg = m.page[k]; pg != nil && pg.buf != nil && pg.filled > h.at-base {
			h.check.learn(h.stated.d, h.at) // before the bytes of its answer are hashed
			pg.pins++
			return k, pg, pg.buf[h.at-base : pg.filled], true
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-m.ctx.Done():
		}
		m.mu.Lock()
	}
}

// pageLocked is the page the hash needs next, -1 when none.
func (h *memHash) pageLocked() int64 {
	if h.done || h.off {
		return -1
	}
	return h.at / memPageSize
}

// endWaitsLocked reports whether a read ending at end must wait for the
// hash: it ends the file, and every byte after the hashed ones is in
// memory, so the hash will reach the end. Otherwise the hash gives up
// (logged once): the end is served unverified.
func (h *memHash) endWaitsLocked(end int64) bool {
	m := h.m
	if end < m.size || h.done || h.off {
		return false
	}
	for k := h.at / memPageSize; k*memPageSize < end; k++ {
		if pg := m.page[k]; pg == nil || pg.buf == nil || pg.filled < m.pageLen(k) {
			h.off = true
			m.log.Info("the end of a file read into memory was read before the rest: not verified")
			m.broadcastLocked()
			return false
		}
	}
	return true
}
