package engine

import "testing"

// The chunk table on its own: no HTTP, no disk.

// table builds a chunk table from a picture, one letter per chunk:
// . missing, f fetching (filled bytes), m in memory, d on disk, w missing
// with a reader waiting.
func table(states string, chunk, filled int64) chunkTable {
	t := newChunkTable(int64(len(states))*chunk, chunk)
	for i, c := range states {
		switch c {
		case 'f':
			t.c[i].state, t.c[i].filled = chunkFetching, filled
		case 'm':
			t.c[i].state, t.c[i].filled, t.c[i].buf = chunkInMemory, chunk, make([]byte, chunk)
		case 'd':
			t.c[i].state = chunkOnDisk
		case 'w':
			t.c[i].waiting = 1
		}
	}
	return t
}

// TestSplit: where a new stream starts in a run of missing chunks, and how
// much it takes off the stream heading into the run.
func TestSplit(t *testing.T) {
	const chunk = 8
	tests := []struct {
		name       string
		states     string
		filled     int64 // of the fetching chunk before the run
		k, end     int
		at, length int
	}{
		{name: "run at the start", states: "....", k: 0, end: 4, at: 0, length: 4},
		{name: "run after a chunk on disk", states: "d...", k: 1, end: 4, at: 1, length: 3},
		{name: "headed run of 4", states: "f....", filled: 2, k: 1, end: 5, at: 3, length: 2},
		{name: "headed run of 3", states: "f...", filled: 2, k: 1, end: 4, at: 2, length: 2},
		{name: "headed run of 2", states: "f..", filled: 7, k: 1, end: 3, at: 2, length: 1},
		{name: "headed single chunk, head early", states: "f.", filled: 3, k: 1, end: 2, at: 1, length: 1},
		{name: "headed single chunk, head past half", states: "f.", filled: 4, k: 1, end: 2, at: 1, length: 0},
	}
	for _, tt := range tests {
		tb := table(tt.states, chunk, tt.filled)
		if at, length := tb.split(tt.k, tt.end); at != tt.at || length != tt.length {
			t.Errorf("%s: split(%d, %d) = %d, %d; want %d, %d", tt.name, tt.k, tt.end, at, length, tt.at, tt.length)
		}
	}
}

// TestPick: where a new stream starts, and whether it is a reader's.
func TestPick(t *testing.T) {
	const chunk = 8
	tests := []struct {
		name      string
		states    string
		next      int
		policy    pickPolicy
		start     int
		forReader bool
		ok        bool
	}{
		{name: "empty table: from the start", states: "....", policy: pickPolicy{hashChunk: -1}, start: 0, forReader: true, ok: true},
		{name: "a waiting reader first", states: "dd..w...", next: 0, policy: pickPolicy{hashChunk: -1}, start: 4, forReader: true, ok: true},
		{name: "a waiting reader a stream reaches soon: back half of the run", states: "ddfw....", policy: pickPolicy{hashChunk: -1}, start: 5, forReader: false, ok: true},
		{name: "the reader's window", states: "dddd....", next: 4, policy: pickPolicy{hashChunk: -1}, start: 4, forReader: true, ok: true},
		{name: "the largest run, after the reader", states: "d..dd...", next: 8, policy: pickPolicy{hashChunk: -1}, start: 5, ok: true},
		{name: "the back half of a headed run", states: "f.......", next: 8, policy: pickPolicy{hashChunk: -1}, start: 4, ok: true},
		{name: "cacheless: readers' chunks only", states: "dd......", next: 8, policy: pickPolicy{hashChunk: -1, cacheless: true}},
		{name: "behind the readers waits", states: "..dddd..", next: 8, policy: pickPolicy{hashChunk: -1, skipBehind: true}},
		{name: "the hash's chunk for a reader of the end", states: "d.dddddd", next: 8, policy: pickPolicy{hashChunk: 1, endWaiters: true}, start: 1, forReader: true, ok: true},
		{name: "all on disk", states: "dddd", next: 4, policy: pickPolicy{hashChunk: -1}},
	}
	for _, tt := range tests {
		tb := table(tt.states, chunk, 0)
		tb.next = tt.next
		start, forReader, ok := tb.pick(tt.policy)
		if ok != tt.ok || (ok && (start != tt.start || forReader != tt.forReader)) {
			t.Errorf("%s: pick = %d, %v, %v; want %d, %v, %v", tt.name, start, forReader, ok, tt.start, tt.forReader, tt.ok)
		}
	}
}

// TestThereAndInFile: which byte ranges have landed, and which are in the
// cache file.
func TestThereAndInFile(t *testing.T) {
	const chunk = 8
	tb := table("dmf.", chunk, 5) // the fetching chunk has 5 bytes, spliced (no buffer)
	tests := []struct {
		off, end     int64
		there, inFil bool
	}{
		{0, 8, true, true},
		{0, 16, true, false},   // chunk 1 is in memory
		{16, 21, true, true},   // spliced part of chunk 2
		{16, 22, false, false}, // past what chunk 2 has
		{24, 25, false, false}, // missing
		{8, 16, true, false},
	}
	for _, tt := range tests {
		if got := tb.there(tt.off, tt.end); got != tt.there {
			t.Errorf("there(%d, %d) = %v", tt.off, tt.end, got)
		}
		if got := tb.inFile(tt.off, tt.end); got != tt.inFil {
			t.Errorf("inFile(%d, %d) = %v", tt.off, tt.end, got)
		}
	}
	if n := tb.onDiskBytes(); n != chunk {
		t.Errorf("onDiskBytes %d, want %d", n, chunk)
	}
	all := table("dd", chunk, 0)
	if tb.allOnDisk() || !all.allOnDisk() {
		t.Error("allOnDisk")
	}
}
