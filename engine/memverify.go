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
	at   int64 // bytes hashed so far
	done bool
	off  bool // given up: the end was read before the rest
}

// hashLoop hashes the file's pages in order until the end, a failure, or
// the file's last handle is gone.
func (m *memFile) hashLoop() {
	check := newDigestCheck(m.ref.URL(), m.ref.Meta.Digest)
	for {
		k, pg, data, ok := m.nextToHash()
		if !ok {
			return
		}
		check.Write(data)
		m.unpin(k, pg)
		m.mu.Lock()
		m.hash.at += int64(len(data))
		if m.hash.at == m.size {
			m.hash.done = true
			if _, _, err := check.result(); err != nil && m.err == nil {
				m.err = err
				logMismatch(m.log, err)
				defer m.s.countMismatch() // after m.mu: StreamContent.mu comes first
			}
		}
		over := m.hash.done
		m.broadcastLocked()
		m.mu.Unlock()
		if over {
			return
		}
	}
}

// nextToHash waits for the bytes after the hashed ones and returns them,
// pinned in their page.
func (m *memFile) nextToHash() (k int64, pg *memPage, data []byte, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if m.ctx.Err() != nil || m.err != nil || m.hash.done || m.hash.off {
			return 0, nil, nil, false
		}
		k = m.hash.at / memPageSize
		base := k * memPageSize
		if pg = m.page[k]; pg != nil && pg.buf != nil && pg.filled > m.hash.at-base {
			pg.pins++
			return k, pg, pg.buf[m.hash.at-base : pg.filled], true
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

// hashPageLocked is the page the hash needs next, -1 when none.
func (m *memFile) hashPageLocked() int64 {
	if m.hash.done || m.hash.off {
		return -1
	}
	return m.hash.at / memPageSize
}

// endWaitsLocked reports whether a read ending at end must wait for the
// hash: it ends the file, and every byte after the hashed ones is in
// memory, so the hash will reach the end. Otherwise the hash gives up
// (logged once): the end is served unverified.
func (m *memFile) endWaitsLocked(end int64) bool {
	if end < m.size || m.hash.done || m.hash.off {
		return false
	}
	for k := m.hash.at / memPageSize; k*memPageSize < end; k++ {
		if pg := m.page[k]; pg == nil || pg.buf == nil || pg.filled < m.pageLen(k) {
			m.hash.off = true
			m.log.Info("the end of a file read into memory was read before the rest: not verified")
			m.broadcastLocked()
			return false
		}
	}
	return true
}
