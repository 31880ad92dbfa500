package engine

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// Files the cache has no room for: read from the store into memory,
// shared by their handles, within the buffer budget.

// askedBytes sums the bytes the GETs of path asked for (ranges; a GET
// without one counts the whole file).
func askedBytes(t *testing.T, srv *remotetest.Server, path string, size int64) (n int64, gets int) {
	t.Helper()
	for _, r := range srv.Requests(path) {
		if r.Method != http.MethodGet {
			continue
		}
		gets++
		start, end, ok := parseRange(&http.Request{Header: http.Header{"Range": {r.Range}}})
		if !ok {
			n += size
			continue
		}
		if end < 0 || end >= size {
			end = size - 1
		}
		n += end - start + 1
	}
	return n, gets
}

// watchBuffers samples the memory held in buffers until the test ends and
// returns a function giving the peak.
func watchBuffers(t *testing.T, s *StreamContent) func() int64 {
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if b := s.pool.inUse(); b > peak.Load() {
				peak.Store(b)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	var once sync.Once
	end := func() { once.Do(func() { close(stop); wg.Wait() }) }
	t.Cleanup(end)
	return func() int64 { end(); return peak.Load() }
}

// TestMemFileRandomReaders: 12 handles of a file larger than the cache,
// each reading at random, share one file in memory; memory never passes
// the budget, and the store sends at most 4x what was read.
func TestMemFileRandomReaders(t *testing.T) {
	// The test server hashes the file for its ETag on every GET: small.
	const size, budget, readSize = 3 << 20, 1 << 20, 200 << 10
	data := blob(61, size)
	// The retry window is not what is tested: in CI's memory-mode run,
	// beside the integration tests, no fetch of the file landed a byte for
	// 5 s once (its requests time out after 2 s; the errors said "context
	// deadline exceeded"), and the file failed for good.
	srv, st, s := fixture(t, map[string][]byte{"m/big": data}, remotetest.Options{}, StreamConfig{MaxBytes: 1 << 20, ChunkSize: 64 << 10, BufferBudget: budget, RetryWindow: 30 * time.Second})
	ref := refFor(t, st, "m", "big")
	peak := watchBuffers(t, s)
	ctx := testutil.Ctx(t)
	var (
		wg   sync.WaitGroup
		read atomic.Int64
	)
	for i := range 12 {
		h, err := s.Open(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if !uncached(h) {
			t.Fatalf("handle %T: want a read into memory", h)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer h.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			buf := make([]byte, readSize)
			last := int64(-memSeqSlack - 1)
			for range 10 {
				// At random, and never close enough to the last read to
				// count as sequential (the file is small).
				off := rng.Int64N(size - readSize)
				for off >= last-memSeqSlack && off <= last+memSeqSlack {
					off = rng.Int64N(size - readSize)
				}
				last = off + readSize
				n, err := h.ReadAt(ctx, buf, off)
				if err != nil || n != readSize || !bytes.Equal(buf, data[off:off+readSize]) {
					t.Errorf("ReadAt(%d): %d bytes, %v, same bytes %v", off, n, err, bytes.Equal(buf[:n], data[off:off+int64(n)]))
					return
				}
				read.Add(int64(n))
			}
		}()
	}
	s.mu.Lock()
	shared := len(s.uncached)
	s.mu.Unlock()
	wg.Wait()
	if shared != 1 {
		t.Errorf("%d files in memory for 12 handles of one file, want 1", shared)
	}
	if p := peak(); p > budget {
		t.Errorf("buffers peaked at %d bytes, budget %d", p, budget)
	}
	asked, gets := askedBytes(t, srv, "m/big", size)
	t.Logf("read %d bytes, the store sent %d in %d GETs (%.2fx)", read.Load(), asked, gets, float64(asked)/float64(read.Load()))
	if asked > 4*read.Load() {
		t.Errorf("the store sent %d bytes for %d read (> 4x)", asked, read.Load())
	}
	testutil.WaitFor(t, "pages freed", func() bool { return s.pool.inUse() == 0 })
}

// TestMemFileSequential: a sequential reader of a file larger than the
// cache gets a read-ahead that grows: few GETs, and the store sends about
// what was read.
func TestMemFileSequential(t *testing.T) {
	const size = 8<<20 + 12345
	data := blob(62, size)
	srv, st, s := fixture(t, map[string][]byte{"m/big": data}, remotetest.Options{}, StreamConfig{MaxBytes: 1 << 20, RetryWindow: 5 * time.Second})
	ref := refFor(t, st, "m", "big")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var got []byte
	buf := make([]byte, 128<<10)
	for off := int64(0); off < size; {
		r, err := h.Read(testutil.Ctx(t), buf, off)
		got = append(got, r.Data...)
		off += int64(len(r.Data))
		if r.Done != nil {
			r.Done()
		}
		if err != nil {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, other than the file's %d", len(got), size)
	}
	asked, gets := askedBytes(t, srv, "m/big", size)
	t.Logf("%d GETs, %d bytes sent for %d read", gets, asked, size)
	if float64(asked) > 1.1*size {
		t.Errorf("the store sent %d bytes for %d read (> 1.1x)", asked, size)
	}
	if gets > size/(1<<20) {
		t.Errorf("%d GETs for %d MiB read sequentially: read-ahead did not grow", gets, size>>20)
	}
}

// TestClaimedSizeNotTrusted: a store claiming an enormous size costs
// memory in proportion to what is read: opens and reads fail cleanly (the
// GET's total size differs), nothing panics, nothing stays allocated.
func TestClaimedSizeNotTrusted(t *testing.T) {
	data := blob(63, 100<<10)
	srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
	st := newTestStore(t, srv.URL)
	for _, claimed := range []int64{1 << 50, math.MaxInt64, math.MaxInt64 - 1} {
		s := newStream(t, StreamConfig{})
		ref := refFor(t, st, "m", "f")
		ref.Meta.Size = claimed
		h, err := s.Open(testutil.Ctx(t), ref)
		if err != nil {
			t.Fatalf("claimed %d: Open: %v", claimed, err)
		}
		for _, off := range []int64{0, claimed - 10, claimed / 2} {
			if _, err := h.ReadAt(testutil.Ctx(t), make([]byte, 64<<10), off); err == nil {
				t.Errorf("claimed %d: ReadAt(%d) succeeded", claimed, off)
			}
		}
		h.Close()
		testutil.WaitFor(t, "memory freed", func() bool { return s.pool.inUse() == 0 })
	}
}

// TestReopenBeforeCommit: a file whose bytes have all arrived is read in
// page-cache or passthrough mode (Fd >= 0) also when it is opened in the
// moment before its commit.
func TestReopenBeforeCommit(t *testing.T) {
	data := blob(64, 300<<10)
	_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: 64 << 10})
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	s.commitHook = func() { <-release }
	ref := refFor(t, st, "m", "f")
	if !bytes.Equal(openRead(t, s, ref), data) {
		t.Fatal("first read differs")
	}
	// Through memory (a busy disk) the writer may still be behind.
	testutil.WaitFor(t, "all bytes on disk", func() bool {
		s.mu.Lock()
		d := s.entries[ref.Key()].dl
		s.mu.Unlock()
		return d.readyFile() != nil
	})
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if committed(s, ref) {
		t.Fatal("committed although the commit is held")
	}
	if h.Fd() < 0 {
		t.Error("a file with all its bytes on disk, before its commit: Fd -1 (direct I/O for its whole life)")
	}
	free()
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	if !bytes.Equal(storetest.ReadAll(t, h), data) {
		t.Error("reread differs")
	}
}

// TestUnsizedOnce: opens of a file whose size the store does not tell
// share one download, on the cache's context: an open given up by its
// caller does not abort it.
func TestUnsizedOnce(t *testing.T) {
	data := blob(65, 200<<10)
	srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{Chunked: true, NoRange: true})
	s := newStream(t, StreamConfig{})
	ref := cache.Ref{Store: newTestStore(t, srv.URL), Model: "m", Name: "f", Meta: refFor(t, newTestStore(t, srv.URL), "m", "f").Meta}
	if ref.Meta.Size >= 0 {
		t.Fatalf("size %d: want an unsized file", ref.Meta.Size)
	}
	before := srv.Count("GET", "m/f") // learning that it has no size
	gate := srv.Hold("m/f")
	t.Cleanup(gate.Release)
	cancelled, cancel := context.WithCancel(testutil.Ctx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := s.Open(cancelled, ref)
		errc <- err
	}()
	<-gate.Arrived()
	cancel()
	if err := <-errc; err == nil {
		t.Error("a cancelled open succeeded")
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := s.Open(testutil.Ctx(t), ref)
			if err != nil {
				t.Error(err)
				return
			}
			defer h.Close()
			if !bytes.Equal(storetest.ReadAll(t, h), data) {
				t.Error("content differs")
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // the opens wait for the one download
	gate.Release()
	wg.Wait()
	if n := srv.Count("GET", "m/f") - before; n != 1 {
		t.Errorf("%d GETs for 5 opens (one cancelled), want 1", n)
	}
}

// TestNotCachingLoggedOnce: a file read into memory again and again is
// logged once.
func TestNotCachingLoggedOnce(t *testing.T) {
	data := blob(66, 100<<10)
	core, logs := observer.New(zap.WarnLevel)
	_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{MaxBytes: 10 << 10, Logger: zap.New(core)})
	ref := refFor(t, st, "m", "f")
	for range 10 {
		if !bytes.Equal(openRead(t, s, ref), data) {
			t.Fatal("content differs")
		}
	}
	if n := logs.FilterMessageSnippet("not caching").Len(); n != 1 {
		t.Errorf("%d 'not caching' lines for 10 opens of one file, want 1", n)
	}
	if st := s.Stats(); st.Direct != 10 {
		t.Errorf("stats direct %d, want 10", st.Direct)
	}
}
