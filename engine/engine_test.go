package engine

// The byte engine's own mechanisms (issue 9): readers never wait for the
// cache disk, the buffer budget holds, a failing cache writer costs the
// cache copy and never the reader, and streams are added where they pay.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// gatedWriter holds every cache write until released (a disk that does
// not keep up), or fails them with err from chunk failAt on.
type gatedWriter struct {
	release chan struct{}
	once    sync.Once
	writes  atomic.Int32
	failAt  int64 // offset from which writes fail (-1: never)
	err     error
}

func newGatedWriter(held bool) *gatedWriter {
	g := &gatedWriter{release: make(chan struct{}), failAt: -1}
	if !held {
		g.open()
	}
	return g
}

func (g *gatedWriter) open() { g.once.Do(func() { close(g.release) }) }

func (g *gatedWriter) write(f *os.File, b []byte, off int64) (int, error) {
	<-g.release
	g.writes.Add(1)
	if g.failAt >= 0 && off >= g.failAt {
		return 0, g.err
	}
	return f.WriteAt(b, off)
}

// TestReaderNeverWaitsForTheDisk: with every cache write held, a cold
// reader still gets the whole file; the cache copy is finished once the
// disk catches up.
func TestReaderNeverWaitsForTheDisk(t *testing.T) {
	const size, chunk = 2 << 20, 128 << 10
	data := blob(101, size)
	_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: chunk})
	g := newGatedWriter(true)
	t.Cleanup(g.open)
	s.writeAt = g.write
	s.disk.hook = func() bool { return true } // a busy disk: through memory
	ref := refFor(t, st, "m", "f")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	got := storetest.ReadAll(t, h)
	h.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("read differs")
	}
	if n := g.writes.Load(); n != 0 {
		t.Fatalf("%d cache writes done while held", n)
	}
	if committed(s, ref) {
		t.Fatal("committed before any write")
	}
	g.open()
	testutil.WaitFor(t, "commit once the disk catches up", func() bool { return committed(s, ref) })
	checkObjects(t, s, data)
}

// TestBufferBudget: with a budget of 4 chunks and the disk held, a reader
// of a 32-chunk file gets every byte, the buffers stay near the budget
// (reclaimed chunks are fetched again), and the cache copy is finished
// later, right.
func TestBufferBudget(t *testing.T) {
	const size, chunk = 4 << 20, 128 << 10
	data := blob(102, size)
	srv, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: chunk, BufferBudget: 4 * chunk})
	g := newGatedWriter(true)
	t.Cleanup(g.open)
	s.writeAt = g.write
	s.disk.hook = func() bool { return true }
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			peak.Store(max(peak.Load(), s.pool.inUse()))
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	ref := refFor(t, st, "m", "f")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	// As the kernel reads: 128 KiB at a time.
	got := make([]byte, 0, size)
	buf := make([]byte, 128<<10)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := h.ReadAt(testutil.Ctx(t), buf, off)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		got = append(got, buf[:n]...)
	}
	h.Close()
	close(stop)
	wg.Wait()
	if !bytes.Equal(got, data) {
		t.Fatal("read differs")
	}
	// The budget, plus what readers and streams in flight may hold.
	if p := peak.Load(); p > 4*chunk+4*chunk {
		t.Errorf("buffers peaked at %d bytes, budget %d", p, 4*chunk)
	}
	g.open()
	testutil.WaitFor(t, "commit once the disk catches up", func() bool { return committed(s, ref) })
	checkObjects(t, s, data)
	if used := s.pool.inUse(); used != 0 {
		t.Errorf("%d bytes of buffers left after the download", used)
	}
	if n := srv.Count(http.MethodGet, "m/f"); n < 2 {
		t.Errorf("%d GET: the chunks reclaimed from the write queue were never fetched again", n)
	}
}

// TestCacheWriteFails: the cache disk fails mid-file (ENOSPC, EIO); the
// reader goes on with right bytes, nothing is committed, nothing stays
// reserved, and a reader that seeks back behind the memory window gets
// its bytes fetched again.
func TestCacheWriteFails(t *testing.T) {
	const size, chunk = 2 << 20, 128 << 10
	data := blob(103, size)
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
		t.Run(errno.Error(), func(t *testing.T) {
			_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: chunk})
			g := newGatedWriter(false)
			g.failAt, g.err = 3*chunk, errno
			s.writeAt = g.write
			s.disk.hook = func() bool { return true }
			ref := refFor(t, st, "m", "f")
			h, err := s.Open(testutil.Ctx(t), ref)
			if err != nil {
				t.Fatal(err)
			}
			if got := storetest.ReadAll(t, h); !bytes.Equal(got, data) {
				t.Fatal("read differs")
			}
			// Back to the start, and a piece in the middle.
			for _, off := range []int64{0, 5 * chunk, 100} {
				buf := make([]byte, 1000)
				n, err := h.ReadAt(testutil.Ctx(t), buf, off)
				if err != nil || n != len(buf) || !bytes.Equal(buf, data[off:off+1000]) {
					t.Fatalf("read back at %d: %d, %v", off, n, err)
				}
			}
			h.Close()
			waitIdle(t, s)
			if committed(s, ref) || len(objects(t, s)) != 0 {
				t.Fatal("committed a file whose cache writes failed")
			}
			if used := s.Stats().UsedBytes; used != 0 {
				t.Errorf("Usage %d after the cache copy was given up", used)
			}
			// A new open tries to cache again, and does.
			g.failAt = -1
			if !bytes.Equal(openRead(t, s, ref), data) {
				t.Fatal("reopened read differs")
			}
			testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
			checkObjects(t, s, data)
		})
	}
}

// TestTwoReadersDifferentSpeeds: a fast and a slow reader on one cold
// file share the download and both get right bytes.
func TestTwoReadersDifferentSpeeds(t *testing.T) {
	const size, chunk = 2 << 20, 128 << 10
	data := blob(104, size)
	srv, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: chunk})
	ref := refFor(t, st, "m", "f")
	ctx := testutil.Ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, pause := range []time.Duration{0, 2 * time.Millisecond} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := s.Open(ctx, ref)
			if err != nil {
				errs <- err
				return
			}
			defer h.Close()
			buf := make([]byte, 64<<10)
			for off := int64(0); off < size; off += int64(len(buf)) {
				n, err := h.ReadAt(ctx, buf, off)
				if err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					errs <- fmt.Errorf("reader (pause %v) at %d: %d, %v", pause, off, n, err)
					return
				}
				time.Sleep(pause)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkOneDownload(t, s, srv, ref, data, chunk, size/chunk)
}

// TestStreamsGrowOnACappedStore: when every connection is capped (a long
// link), the download opens more streams, because each one pays; the
// count is remembered for the store. Right bytes throughout.
func TestStreamsGrowOnACappedStore(t *testing.T) {
	const size, chunk = 8 << 20, 256 << 10
	data := blob(105, size)
	srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
	// A second server on a capped listener, serving the same files.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	capped := remotetest.Throttle{Rate: 4 << 20}.Listen(ln)
	origin, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &http.Server{Handler: httputil.NewSingleHostReverseProxy(origin), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = proxy.Serve(capped) }()
	t.Cleanup(func() { proxy.Close() })
	st := newTestStore(t, "http://"+ln.Addr().String()+"/")
	s := newStream(t, StreamConfig{ChunkSize: chunk, RetryWindow: 10 * time.Second, Logger: zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel))})
	ref := refFor(t, st, "m", "f")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := s.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	// One sequential reader, as cat: the streams are the controller's.
	got := make([]byte, 0, size)
	buf := make([]byte, 128<<10)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := h.ReadAt(ctx, buf, off)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		got = append(got, buf[:n]...)
	}
	h.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("read differs")
	}
	if n := capped.Accepted(); n < 3 {
		t.Errorf("%d connections to a store capped per connection: streams were not added", n)
	}
	if r := s.policy.remembered(st); r < 2 {
		t.Errorf("remembered %d streams for the store, want more than one", r)
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	checkObjects(t, s, data)
}

// TestDiskTurnsBusy: a download that starts straight into the cache file
// goes through memory from the chunk where the disk is found busy; the
// bytes and the committed file are right either way.
func TestDiskTurnsBusy(t *testing.T) {
	const size, chunk = 2 << 20, 128 << 10
	data := blob(106, size)
	_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: chunk})
	var asked atomic.Int32
	s.disk.hook = func() bool { return asked.Add(1) > 4 } // busy from the fifth chunk on
	g := newGatedWriter(false)
	s.writeAt = g.write
	ref := refFor(t, st, "m", "f")
	if got := openRead(t, s, ref); !bytes.Equal(got, data) {
		t.Fatal("read differs")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	checkObjects(t, s, data)
	if g.writes.Load() == 0 {
		t.Error("no chunk went through memory and the writer after the disk turned busy")
	}
	if int(g.writes.Load()) >= size/chunk {
		t.Errorf("%d chunks written behind: none went straight into the file", g.writes.Load())
	}
}

// TestPays: a step of streams pays when each added stream brings at least
// half of what each stream brought before it.
func TestPays(t *testing.T) {
	tests := []struct {
		name   string
		best   float64
		before int
		rate   float64
		after  int
		want   bool
	}{
		{name: "first window", rate: 100, after: 1, want: true},
		{name: "capped link, doubled", best: 40, before: 1, rate: 80, after: 2, want: true},
		{name: "capped link, quadrupled", best: 40, before: 1, rate: 150, after: 4, want: true},
		{name: "half a share each", best: 40, before: 1, rate: 60, after: 2, want: true},
		{name: "loopback, +30% for a second stream", best: 1000, before: 1, rate: 1300, after: 2, want: false},
		{name: "loopback, +40% for three more", best: 1000, before: 1, rate: 1400, after: 4, want: false},
		{name: "shared link, 4 to 8", best: 400, before: 4, rate: 420, after: 8, want: false},
		{name: "slower", best: 400, before: 4, rate: 300, after: 8, want: false},
	}
	for _, tt := range tests {
		if got := pays(tt.best, tt.before, tt.rate, tt.after); got != tt.want {
			t.Errorf("%s: pays(%v, %d, %v, %d) = %v, want %v", tt.name, tt.best, tt.before, tt.rate, tt.after, got, tt.want)
		}
	}
}

// TestZeroCopyReadKeepsItsBuffer: Read answers from a chunk's buffer in
// place; a buffer released while such an answer is in flight (here: the
// download ends and frees every buffer, and a second file's download
// takes buffers from the pool) is not reused until the answer is done.
func TestZeroCopyReadKeepsItsBuffer(t *testing.T) {
	const size, chunk = 1 << 20, 128 << 10
	a, b := blob(107, size), blob(108, size)
	_, st, s := fixture(t, map[string][]byte{"m/a": a, "m/b": b}, remotetest.Options{}, StreamConfig{ChunkSize: chunk})
	s.disk.hook = func() bool { return true } // through memory
	g := newGatedWriter(true)                 // and kept there until the writes are let through
	t.Cleanup(g.open)
	s.writeAt = g.write
	refA := refFor(t, st, "m", "a")
	h, err := s.Open(testutil.Ctx(t), refA)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Read(testutil.Ctx(t), make([]byte, 4096), 5000)
	if err != nil {
		t.Fatal(err)
	}
	if r.Done == nil || r.Fd >= 0 {
		t.Fatalf("Read from memory: Done %v, Fd %d; want an answer in place", r.Done != nil, r.Fd)
	}
	if !bytes.Equal(r.Data, a[5000:5000+4096]) {
		t.Fatal("in-place answer differs")
	}
	// The rest of a, so that its download ends and frees its buffers.
	if got := storetest.ReadAll(t, h); !bytes.Equal(got, a) {
		t.Fatal("read of a differs")
	}
	h.Close()
	g.open()
	testutil.WaitFor(t, "a committed", func() bool { return committed(s, refA) })
	if got := openRead(t, s, refFor(t, st, "m", "b")); !bytes.Equal(got, b) {
		t.Fatal("read of b differs")
	}
	if !bytes.Equal(r.Data, a[5000:5000+4096]) {
		t.Fatal("the buffer of an answer in flight was reused")
	}
	if n := s.pool.inUse(); n < chunk {
		t.Fatalf("%d bytes of buffers held; the answer in flight holds a chunk", n)
	}
	r.Done()
	testutil.WaitFor(t, "every buffer back", func() bool { return s.pool.inUse() == 0 })
}
