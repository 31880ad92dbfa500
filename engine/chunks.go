package engine

// The chunk table: one file's chunks and their states, and where a new
// stream should start. Pure: no I/O, no lock of its own (download.mu
// protects it), no HTTP; its table tests need none.

// Chunk states.
const (
	chunkMissing uint8 = iota
	chunkFetching
	chunkInMemory
	chunkOnDisk
)

// readerWindow is how many chunks past the latest read are fetched ahead
// with a reader's priority.
const readerWindow = 2

// chunkState is one chunk's state; buf holds its bytes while it is fetching or
// in memory (filled of them valid).
type chunkState struct {
	state   uint8
	buf     []byte
	filled  int64
	queued  bool    // in the write-behind queue
	writing bool    // the writer is writing it: the buffer may not go
	waiting int     // readers waiting for it
	pin     *bufPin // replies in flight that point into buf
}

// chunkTable is a file cut into chunks.
type chunkTable struct {
	size  int64 // the file's
	chunk int64 // a chunk's (the last may be shorter)
	n     int
	c     []chunkState
	next  int // first chunk after the latest read
}

func newChunkTable(size, chunk int64) chunkTable {
	n := int((size + chunk - 1) / chunk)
	return chunkTable{size: size, chunk: chunk, n: n, c: make([]chunkState, n)}
}

func (t *chunkTable) chunkLen(k int) int64 { return min(t.chunk, t.size-int64(k)*t.chunk) }

// pickPolicy is what, beside the table, decides where a stream starts.
type pickPolicy struct {
	hashChunk  int  // the chunk the hash needs next (-1: none)
	endWaiters bool // a reader of the file's end waits for the hash
	cacheless  bool // the download keeps no cache copy: readers' chunks only
	// skipBehind: through memory with readers active, the chunks behind
	// them (reclaimed before the writer reached them) wait: they would
	// compete with the readers for the network, the CPU and the buffers.
	skipBehind bool
}

// pick chooses where a new stream starts, and whether it is for a reader
// (which gets memory first) or background work (only within the budget):
// a chunk a reader waits for, the hash's next chunk when a reader of the
// end waits for it, the reader's window, else the largest missing run,
// or the back half of one a stream is heading into (split).
func (t *chunkTable) pick(p pickPolicy) (start int, forReader, ok bool) {
	for k := range t.c {
		if c := &t.c[k]; c.waiting > 0 && c.state == chunkMissing && !t.streamNear(k) {
			return k, true, true
		}
	}
	if hk := p.hashChunk; p.endWaiters && hk >= 0 && t.c[hk].state == chunkMissing && !t.streamNear(hk) {
		return hk, true, true
	}
	for k := t.next; k < min(t.next+readerWindow, t.n); k++ {
		if t.c[k].state == chunkMissing && !t.streamNear(k) {
			return k, true, true
		}
	}
	if p.cacheless {
		return 0, false, false
	}
	from := 0
	if p.skipBehind {
		from = t.next
	}
	best, bestLen := -1, 0
	for k := from; k < t.n; {
		if t.c[k].state != chunkMissing {
			k++
			continue
		}
		end := k
		for end < t.n && t.c[end].state == chunkMissing {
			end++
		}
		at, length := t.split(k, end)
		// Runs after the reader come first: that is where it goes next.
		if length > bestLen || (length == bestLen && length > 0 && k >= t.next && best < t.next) {
			best, bestLen = at, length
		}
		k = end
	}
	if bestLen == 0 {
		return 0, false, false
	}
	return best, false, true
}

// streamNear reports whether a stream will reach chunk k soon: one is
// fetching a chunk just before it.
func (t *chunkTable) streamNear(k int) bool {
	for j := max(0, k-readerWindow); j < k; j++ {
		if t.c[j].state == chunkFetching {
			return true
		}
	}
	return false
}

// split says where a new stream would start in the missing run [k, end),
// and how many of its chunks it would take off the stream heading into
// the run (the chunk before it is being fetched), if any. The new stream
// takes the back half; a single chunk is worth a new GET only while the
// stream heading into it is less than half-way through its current chunk.
func (t *chunkTable) split(k, end int) (at, length int) {
	n := end - k
	if k == 0 || t.c[k-1].state != chunkFetching {
		return k, n
	}
	if n == 1 {
		if t.c[k-1].filled < t.chunkLen(k-1)/2 {
			return k, 1
		}
		return k, 0
	}
	return k + n/2, n - n/2
}

// runEnd is the end of the run of missing chunks after k.
func (t *chunkTable) runEnd(k int) int {
	end := k + 1
	for end < t.n && t.c[end].state == chunkMissing {
		end++
	}
	return end
}

func (t *chunkTable) allOnDisk() bool {
	for k := range t.c {
		if t.c[k].state != chunkOnDisk {
			return false
		}
	}
	return true
}

// onDiskBytes is how many bytes are on disk.
func (t *chunkTable) onDiskBytes() int64 {
	var n int64
	for k := range t.c {
		if t.c[k].state == chunkOnDisk {
			n += t.chunkLen(k)
		}
	}
	return n
}

// rangeOnDisk reports whether chunks first to last are on disk.
func (t *chunkTable) rangeOnDisk(first, last int) bool {
	for k := first; k <= last; k++ {
		if t.c[k].state != chunkOnDisk {
			return false
		}
	}
	return true
}

// inFile reports whether [off, end) is in the cache file: chunks on disk,
// or the spliced part of chunks being fetched straight into it.
func (t *chunkTable) inFile(off, end int64) bool {
	for at := off; at < end; {
		k := int(at / t.chunk)
		c := &t.c[k]
		stop := min(end, int64(k+1)*t.chunk)
		if c.state != chunkOnDisk && !(c.state == chunkFetching && c.buf == nil && c.filled >= stop-int64(k)*t.chunk) {
			return false
		}
		at = stop
	}
	return true
}

// there reports whether every byte of [off, end) has landed: on disk, in
// a buffer, or spliced into the file.
func (t *chunkTable) there(off, end int64) bool {
	for at := off; at < end; {
		k := int(at / t.chunk)
		c := &t.c[k]
		stop := min(end, int64(k+1)*t.chunk)
		switch {
		case c.state == chunkOnDisk:
		case (c.state == chunkFetching || c.state == chunkInMemory) && c.filled >= stop-int64(k)*t.chunk:
		default:
			return false
		}
		at = stop
	}
	return true
}

// behindWindow lists the chunks in memory, waited for by nobody, well
// behind or ahead of the latest read (a download without a cache copy
// drops them).
func (t *chunkTable) behindWindow() []int {
	var out []int
	for k := range t.c {
		c := &t.c[k]
		if c.state == chunkInMemory && c.waiting == 0 && (k < t.next-2 || k >= t.next+readerWindow+2) {
			out = append(out, k)
		}
	}
	return out
}

// idle lists chunks in memory that nobody reads, writes or points into
// now, up to need bytes of them.
func (t *chunkTable) idle(need int64) []int {
	var out []int
	var n int64
	for k := range t.c {
		c := &t.c[k]
		if n >= need {
			break
		}
		if c.state == chunkInMemory && c.buf != nil && c.waiting == 0 && c.pin == nil && !c.writing {
			out = append(out, k)
			n += int64(cap(c.buf))
		}
	}
	return out
}
