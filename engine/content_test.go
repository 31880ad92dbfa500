package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// blob returns n deterministic bytes that differ per seed.
func blob(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*31 + i>>8)
	}
	return b
}

// newStream opens a content cache for a test; MinFree is off (test disks
// may be small), RetryWindow short so failing downloads fail fast.
func newStream(t *testing.T, cfg StreamConfig) *StreamContent {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.MinFree == nil {
		cfg.MinFree = new(int64(0))
	}
	if cfg.RetryWindow == 0 {
		cfg.RetryWindow = 300 * time.Millisecond
	}
	s, err := NewStreamContent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic engine mode: straight into the cache file (a calm
	// disk), or through memory with writes behind when the environment
	// says so (make test runs the package both ways).
	memory := testMemoryMode()
	s.disk.hook = func() bool { return memory }
	t.Cleanup(func() { s.Close() })
	return s
}

// refFor stats model/name on the store, as the catalog does.
func refFor(t *testing.T, st *cache.Store, model, name string) cache.Ref {
	t.Helper()
	meta, err := st.Remote.Stat(testutil.Ctx(t), nil, model, name)
	if err != nil {
		t.Fatal(err)
	}
	return cache.Ref{Store: st, Model: model, Name: name, Meta: meta}
}

func objects(t *testing.T, s *StreamContent) map[string]int64  { return dirFiles(t, s.objects) }
func partials(t *testing.T, s *StreamContent) map[string]int64 { return dirFiles(t, s.partial) }

// committed reports whether ref's file is complete in the cache.
func committed(s *StreamContent, ref cache.Ref) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[ref.Key()]
	return ok && e.complete
}

// readersWaiting counts the reads waiting for ref's bytes now.
func readersWaiting(s *StreamContent, ref cache.Ref) int {
	s.mu.Lock()
	var d *download
	if e, ok := s.entries[ref.Key()]; ok {
		d = e.dl
	}
	s.mu.Unlock()
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.t.c {
		n += c.waiting
	}
	return n
}

// openRead opens ref and reads it whole.
func openRead(t *testing.T, s *StreamContent, ref cache.Ref) []byte {
	t.Helper()
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Size() != ref.Meta.Size {
		t.Fatalf("Size %d, want %d", h.Size(), ref.Meta.Size)
	}
	return storetest.ReadAll(t, h)
}

func TestContentSharedDownload(t *testing.T) {
	const size = 300 << 10
	tests := []struct {
		name     string
		chunk    int64
		wantGETs int
	}{
		{"one chunk", 1 << 20, 1},
		// One stream, or a few that never overlap: at most one per chunk.
		{"ranged chunks", 64 << 10, (size + 64<<10 - 1) / (64 << 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := blob(1, size)
			cfg := StreamConfig{Dir: t.TempDir(), ChunkSize: tt.chunk}
			srv, st, s := fixture(t, map[string][]byte{"m/w.bin": data}, remotetest.Options{}, cfg)
			ref := refFor(t, st, "m", "w.bin")
			ctx := testutil.Ctx(t)

			gate := srv.Hold("m/w.bin")
			const openers = 20
			wait := openAndReadAll(ctx, s, ref, openers)
			select {
			case <-gate.Arrived():
			case <-ctx.Done():
				t.Fatal("no download started")
			}
			testutil.WaitFor(t, "every opener to join the download", func() bool {
				st := s.Stats()
				return st.Misses+st.Joins == openers
			})
			gate.Release()
			got, errs := wait()
			for i := range openers {
				if errs[i] != nil {
					t.Fatalf("opener %d: %v", i, errs[i])
				}
				if !bytes.Equal(got[i], data) {
					t.Fatalf("opener %d read other bytes", i)
				}
			}
			if n := srv.Count("GET", "m/w.bin"); n == 0 || n > tt.wantGETs {
				t.Errorf("%d GETs for %d concurrent openers, want 1 to %d", n, openers, tt.wantGETs)
			}
			testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
			if p := partials(t, s); len(p) != 0 {
				t.Errorf("left in partial: %v", p)
			}
			if o := objects(t, s); len(o) != 1 || sumSizes(o) != size {
				t.Errorf("objects %v, want one of %d bytes", o, size)
			}
			checkCachedAfterDownload(t, srv, st, s, cfg, ref, data)
		})
	}
}

// openAndReadAll has n goroutines open ref and read it whole at once; the
// function returned waits for them and gives each one's bytes or error.
func openAndReadAll(ctx context.Context, s *StreamContent, ref cache.Ref, n int) (wait func() ([][]byte, []error)) {
	var wg sync.WaitGroup
	got := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := s.Open(ctx, ref)
			if err != nil {
				errs[i] = err
				return
			}
			defer h.Close()
			buf := make([]byte, h.Size())
			n, err := h.ReadAt(ctx, buf, 0)
			if err != nil || int64(n) != h.Size() {
				errs[i] = fmt.Errorf("ReadAt: %d bytes, %v", n, err)
				return
			}
			got[i] = buf
		}()
	}
	return func() ([][]byte, []error) {
		wg.Wait()
		return got, errs
	}
}

// checkCachedAfterDownload: once ref (data) is committed, a second open is
// a cache hit with the file's fd; the cache survives a restart (s is
// closed, a new StreamContent with s's config cfg opens its directory);
// and another version of the same URL is another object.
func checkCachedAfterDownload(t *testing.T, srv *remotetest.Server, st *cache.Store, s *StreamContent, cfg StreamConfig, ref cache.Ref, data []byte) {
	t.Helper()
	ctx := testutil.Ctx(t)
	total := srv.Total()
	h, err := s.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if h.Fd() < 0 {
		t.Error("complete file has no fd")
	}
	if !bytes.Equal(storetest.ReadAll(t, h), data) {
		t.Error("cache hit read other bytes")
	}
	h.Close()
	if srv.Total() != total {
		t.Errorf("cache hit made %d requests", srv.Total()-total)
	}

	// The cache survives a restart.
	s.Close()
	s2 := newStream(t, cfg)
	if !bytes.Equal(openRead(t, s2, ref), data) {
		t.Error("persisted file read other bytes")
	}
	if srv.Total() != total {
		t.Errorf("reopened cache made %d requests", srv.Total()-total)
	}

	// Another version of the same URL is another object.
	srv.Set("m/w.bin", blob(2, 1000))
	ref2 := refFor(t, st, "m", "w.bin")
	if !bytes.Equal(openRead(t, s2, ref2), blob(2, 1000)) {
		t.Error("new version read other bytes")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s2, ref2) })
	if n := len(objects(t, s2)); n != 2 {
		t.Errorf("%d objects, want 2 versions", n)
	}
}

func TestContentPartialReads(t *testing.T) {
	data := blob(7, 200<<10)
	srv, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: 16 << 10})
	ref := refFor(t, st, "m", "f")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, c := range []struct{ off, n int64 }{
		{150 << 10, 1000}, {0, 10}, {16<<10 - 5, 10}, {int64(len(data)) - 7, 7}, {5, 100 << 10},
	} {
		buf := make([]byte, c.n)
		n, err := h.ReadAt(testutil.Ctx(t), buf, c.off)
		if err != nil || int64(n) != c.n || !bytes.Equal(buf, data[c.off:c.off+c.n]) {
			t.Errorf("ReadAt(%d, %d): %d bytes, %v", c.off, c.n, n, err)
		}
	}
	// Past the end: short read with io.EOF, never a short read without it.
	buf := make([]byte, 100)
	n, err := h.ReadAt(testutil.Ctx(t), buf, int64(len(data))-10)
	if n != 10 || err == nil || !bytes.Equal(buf[:10], data[len(data)-10:]) {
		t.Errorf("read over the end: %d bytes, %v", n, err)
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	for _, r := range srv.Requests("m/f") {
		if r.Method == http.MethodGet && r.Range == "" {
			t.Errorf("unranged GET with chunked downloads: %+v", r)
		}
	}
}

func TestContentRemovedObjectIsFetchedAgain(t *testing.T) {
	data := blob(3, 5000)
	srv, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{})
	ref := refFor(t, st, "m", "f")
	for i := range 2 {
		if !bytes.Equal(openRead(t, s, ref), data) {
			t.Fatalf("round %d: other bytes", i)
		}
		testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
		for p := range objects(t, s) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := srv.Count("GET", "m/f"); n != 2 {
		t.Errorf("%d GETs, want 2 (the object was removed behind the cache's back)", n)
	}
}

// badDownloadCase is a row of TestContentRejectsBadDownloads: a store
// that serves a file other than its ref says (setup changes the store,
// meta the ref), and how the failure must show.
type badDownloadCase struct {
	name    string
	chunk   int64
	setup   func(srv *remotetest.Server)
	meta    func(m remote.Meta) remote.Meta
	wantIs  error // nil: any error
	changed bool  // OnChange is told
	maxGETs int   // 0: any number (retried within RetryWindow)
}

func TestContentRejectsBadDownloads(t *testing.T) {
	data := blob(4, 64<<10)
	for _, tt := range badDownloadCases() {
		t.Run(tt.name, func(t *testing.T) { runBadDownload(t, tt, data) })
	}
}

// badDownloadCases: sizes and ETags other than the ref's, a body cut
// short, a file gone, a server error.
func badDownloadCases() []badDownloadCase {
	return []badDownloadCase{
		{"store serves fewer bytes than Meta.Size", 0, nil,
			func(m remote.Meta) remote.Meta { m.Size += 10; return m }, remote.ErrChanged, true, 1},
		{"store serves more bytes than Meta.Size", 0, nil,
			func(m remote.Meta) remote.Meta { m.Size -= 10; return m }, remote.ErrChanged, true, 1},
		{"ranged: total size differs from Meta.Size", 16 << 10, nil,
			func(m remote.Meta) remote.Meta { m.Size -= 10; return m }, remote.ErrChanged, true, 0},
		{"other ETag", 0, nil,
			func(m remote.Meta) remote.Meta { m.ETag = `"other"`; return m }, remote.ErrChanged, true, 1},
		{"body cut short of Content-Length", 0,
			func(srv *remotetest.Server) { srv.Truncate("m/f", 1000) }, nil, nil, false, 0},
		{"file gone", 0, func(srv *remotetest.Server) { srv.Remove("m/f") }, nil, remote.ErrNotFound, false, 1},
		{"server error", 0, func(srv *remotetest.Server) { srv.SetStatus("m/f", http.StatusInternalServerError) },
			nil, nil, false, 0},
	}
}

// runBadDownload reads data through tt's bad store: the read fails soon,
// with tt's error; nothing is kept; OnChange is told when tt says; and once
// the store is right again the file opens.
func runBadDownload(t *testing.T, tt badDownloadCase, data []byte) {
	srv, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: tt.chunk})
	told := recordChanges(s)
	ref := refFor(t, st, "m", "f")
	if tt.meta != nil {
		ref.Meta = tt.meta(ref.Meta)
	}
	if tt.setup != nil {
		tt.setup(srv)
	}
	start := time.Now()
	h, err := s.Open(testutil.Ctx(t), ref)
	if err == nil {
		buf := make([]byte, h.Size())
		_, err = h.ReadAt(testutil.Ctx(t), buf, 0)
		h.Close()
	}
	if err == nil {
		t.Fatal("read succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v to fail", d)
	}
	if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
		t.Errorf("err = %v, want %v", err, tt.wantIs)
	}
	testutil.WaitFor(t, "the failed download to clean up", func() bool {
		return len(partials(t, s)) == 0
	})
	if o := objects(t, s); len(o) != 0 {
		t.Errorf("a bad download was kept: %v", o)
	}
	if used := s.Stats().UsedBytes; used != 0 {
		t.Errorf("Usage %d bytes after a failed download", used)
	}
	n := srv.Count("GET", "m/f")
	if tt.maxGETs > 0 && n > tt.maxGETs {
		t.Errorf("%d GETs, want at most %d (the failure is final)", n, tt.maxGETs)
	}
	if tt.changed {
		// Told after the readers are woken: wait for it.
		testutil.WaitFor(t, "OnChange", func() bool { return len(told()) > 0 })
		if first := told()[0]; first.Name != "f" || first.Meta != ref.Meta {
			t.Errorf("OnChange told %+v, want the ref read", first)
		}
	} else if n := len(told()); n != 0 {
		t.Errorf("OnChange told %d times for a file that did not change", n)
	}

	// Nothing is poisoned: once the store is right, the file opens.
	srv.Truncate("m/f", -1)
	srv.SetStatus("m/f", 0)
	srv.Set("m/f", data)
	good := refFor(t, st, "m", "f")
	if !bytes.Equal(openRead(t, s, good), data) {
		t.Error("other bytes")
	}
}

// recordChanges records what s tells OnChange; the function returned gives
// the refs told so far.
func recordChanges(s *StreamContent) func() []cache.Ref {
	var mu sync.Mutex
	var told []cache.Ref
	s.OnChange(func(r cache.Ref) {
		mu.Lock()
		told = append(told, r)
		mu.Unlock()
	})
	return func() []cache.Ref {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(told)
	}
}

func TestContentClearsPartialAtStart(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "v2", "partial")
	first := newStream(t, StreamConfig{Dir: dir})
	first.Close()
	// Leftovers of a crashed process: a download directory without a live
	// lock, a stray file, an orphan lock.
	if err := os.MkdirAll(filepath.Join(root, "p-dead", "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		filepath.Join(root, "p-dead", "0123456789abcdef"), filepath.Join(root, "p-dead", "sub", "x"),
		filepath.Join(root, "p-dead.lock"), filepath.Join(root, "stray"), filepath.Join(root, "orphan.lock"),
	} {
		if err := os.WriteFile(p, []byte("partial download"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := newStream(t, StreamConfig{Dir: dir})
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{filepath.Base(s.partial), filepath.Base(s.partial) + ".lock"}
	if !slices.Equal(names, want) {
		t.Errorf("partial dir holds %q, want only this process's %q", names, want)
	}
	if used := s.Stats().UsedBytes; used != 0 {
		t.Errorf("leftovers counted: %d bytes", used)
	}

	// A second process sharing the cache leaves the first one's downloads alone.
	marker := filepath.Join(s.partial, "in-progress")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	second := newStream(t, StreamConfig{Dir: dir})
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("a live process's partial download was removed: %v", err)
	}
	if second.partial == s.partial {
		t.Error("two processes share one partial directory")
	}
}

func TestContentEviction(t *testing.T) {
	const size, maxBytes = 1000, 2500
	files := map[string][]byte{}
	for i := range 6 {
		files[fmt.Sprintf("m/f%d", i)] = blob(10+i, size)
	}
	dir := t.TempDir()
	srv, st, s := fixture(t, files, remotetest.Options{}, StreamConfig{Dir: dir, MaxBytes: maxBytes})
	ctx := testutil.Ctx(t)
	ref := func(i int) cache.Ref { return refFor(t, st, "m", fmt.Sprintf("f%d", i)) }
	check := func(when string) {
		t.Helper()
		if total := sumSizes(objects(t, s)) + sumSizes(partials(t, s)); total > maxBytes {
			t.Errorf("%s: %d bytes on disk, MaxBytes %d", when, total, maxBytes)
		}
		if st := s.Stats(); st.UsedBytes > maxBytes || st.MaxBytes != maxBytes {
			t.Errorf("%s: used %d/%d, MaxBytes %d", when, st.UsedBytes, st.MaxBytes, maxBytes)
		}
	}

	// f0 stays open while the others come and go.
	ref0 := ref(0)
	h0, err := s.Open(ctx, ref0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(storetest.ReadAll(t, h0), files["m/f0"]) {
		t.Fatal("f0: other bytes")
	}
	testutil.WaitFor(t, "f0 committed", func() bool { return committed(s, ref0) })
	for i := 1; i <= 5; i++ {
		r := ref(i)
		if !bytes.Equal(openRead(t, s, r), files[fmt.Sprintf("m/f%d", i)]) {
			t.Fatalf("f%d: other bytes", i)
		}
		testutil.WaitFor(t, fmt.Sprintf("f%d committed", i), func() bool { return committed(s, r) })
		check(fmt.Sprintf("after f%d", i))
		s.mu.Lock()
		e, ok := s.entries[ref0.Key()]
		s.mu.Unlock()
		if !ok {
			t.Fatalf("after f%d: the open f0 was evicted", i)
		}
		if _, err := os.Stat(e.path); err != nil {
			t.Fatalf("after f%d: the open f0's file is gone: %v", i, err)
		}
	}
	if !bytes.Equal(storetest.ReadAll(t, h0), files["m/f0"]) {
		t.Error("open f0 reads other bytes")
	}
	h0.Close()
	check("after closing f0")

	// Least recently used goes first: f5 (just used) is still there, f1
	// (oldest) is not.
	before := srv.Count("GET", "m/f5")
	openRead(t, s, ref(5))
	if srv.Count("GET", "m/f5") != before {
		t.Error("the most recently used file was evicted")
	}
	before = srv.Count("GET", "m/f1")
	r1 := ref(1)
	openRead(t, s, r1)
	if srv.Count("GET", "m/f1") != before+1 {
		t.Error("the least recently used file was kept")
	}
	testutil.WaitFor(t, "f1 committed", func() bool { return committed(s, r1) })
	check("at the end")

	// A restart with a smaller limit evicts down to it.
	s.Close()
	s2 := newStream(t, StreamConfig{Dir: dir, MaxBytes: size})
	if total := sumSizes(objects(t, s2)); total > size {
		t.Errorf("after restart with MaxBytes %d: %d bytes on disk", size, total)
	}
}

func TestContentLargerThanCacheReadsDirect(t *testing.T) {
	data := blob(8, 10000)
	_, st, s := fixture(t, map[string][]byte{"m/big": data}, remotetest.Options{}, StreamConfig{MaxBytes: 4096})
	ref := refFor(t, st, "m", "big")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, 3000)
	n, err := h.ReadAt(testutil.Ctx(t), buf, 5000)
	if err != nil || n != 3000 || !bytes.Equal(buf, data[5000:8000]) {
		t.Fatalf("direct read: %d bytes, %v", n, err)
	}
	if !bytes.Equal(storetest.ReadAll(t, h), data) {
		t.Error("direct full read differs")
	}
	if o, p := objects(t, s), partials(t, s); len(o)+len(p) != 0 {
		t.Errorf("a file larger than the cache was stored: %v %v", o, p)
	}
}

func TestContentCancelledRead(t *testing.T) {
	data := blob(5, 100<<10)
	srv, st, s := fixture(t, map[string][]byte{"m/a": data, "m/b": data}, remotetest.Options{}, StreamConfig{})
	t.Run("another reader still gets the file", func(t *testing.T) { cancelBesidePatientReader(t, srv, st, s, data) })
	t.Run("the download completes without readers", func(t *testing.T) { cancelOnlyReader(t, srv, st, s, data) })
}

// cancelBesidePatientReader: of two readers waiting for m/a (data), one
// gives up; it gets context.Canceled at once, the other the whole file,
// from the one GET.
func cancelBesidePatientReader(t *testing.T, srv *remotetest.Server, st *cache.Store, s *StreamContent, data []byte) {
	ref := refFor(t, st, "m", "a")
	gate := srv.Hold("m/a")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, len(data))
	patient := readAsync(testutil.Ctx(t), h, buf, 0)
	waitArrived(t, gate)
	h2, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	impatient := readAsync(ctx, h2, make([]byte, 10), 0)
	testutil.WaitFor(t, "both readers waiting", func() bool { return readersWaiting(s, ref) == 2 })
	cancel()
	select {
	case err := <-impatient:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled read: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second): // a hang, not a speed: CI is busy
		t.Fatal("cancelled read did not return")
	}
	h2.Close()
	gate.Release()
	if err := <-patient; err != nil {
		t.Fatalf("patient read: %v", err)
	}
	if !bytes.Equal(buf, data) {
		t.Error("other bytes")
	}
	if n := srv.Count("GET", "m/a"); n != 1 {
		t.Errorf("%d GETs, want 1", n)
	}
}

// cancelOnlyReader: the only reader of m/b (data) gives up and closes; the
// download goes on and commits, so the next open reads the cache copy.
func cancelOnlyReader(t *testing.T, srv *remotetest.Server, st *cache.Store, s *StreamContent, data []byte) {
	ref := refFor(t, st, "m", "b")
	gate := srv.Hold("m/b")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := readAsync(ctx, h, make([]byte, 10), 0)
	waitArrived(t, gate)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read: %v", err)
	}
	h.Close()
	gate.Release()
	testutil.WaitFor(t, "the download to land", func() bool { return committed(s, ref) })
	if !bytes.Equal(openRead(t, s, ref), data) {
		t.Error("other bytes")
	}
	if n := srv.Count("GET", "m/b"); n != 1 {
		t.Errorf("%d GETs, want 1", n)
	}
}

func TestContentCloseWaitsForDownloads(t *testing.T) {
	srv, st, s := fixture(t, map[string][]byte{"m/f": blob(6, 100<<10)}, remotetest.Options{}, StreamConfig{})
	ref := refFor(t, st, "m", "f")
	gate := srv.Hold("m/f")
	defer gate.Release()
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	errc := readAsync(context.Background(), h, make([]byte, 100), 0)
	waitArrived(t, gate)
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not stop a stuck download")
	}
	// Close returned: the download has ended and cleaned up after itself.
	if p := partials(t, s); len(p) != 0 {
		t.Errorf("Close returned while the partial file exists: %v", p)
	}
	if o := objects(t, s); len(o) != 0 {
		t.Errorf("an aborted download was kept: %v", o)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("read of an aborted download succeeded")
		}
	case <-time.After(time.Second):
		t.Fatal("reader still waiting after Close")
	}
}

// TestContentServerWithoutRange: a store that ignores Range gets one whole
// stream, and readers of any offset are served from it.
func TestContentServerWithoutRange(t *testing.T) {
	data := blob(9, 200<<10)
	srv, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{NoRange: true}, StreamConfig{ChunkSize: 16 << 10, Parallel: 4})
	ref := refFor(t, st, "m", "f")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Read the end first: the bytes before it must not land there.
	buf := make([]byte, 1000)
	n, err := h.ReadAt(testutil.Ctx(t), buf, int64(len(data))-1000)
	if err != nil || n != 1000 || !bytes.Equal(buf, data[len(data)-1000:]) {
		t.Fatalf("tail read: %d bytes, %v", n, err)
	}
	if !bytes.Equal(storetest.ReadAll(t, h), data) {
		t.Fatal("full read differs")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	if n := srv.Count("GET", "m/f"); n > 2 {
		t.Errorf("%d whole-file GETs for one file", n)
	}
}

func TestContentEmptyFile(t *testing.T) {
	srv, st, s := fixture(t, map[string][]byte{"m/empty": {}}, remotetest.Options{}, StreamConfig{})
	ref := refFor(t, st, "m", "empty")
	if ref.Meta.Size != 0 {
		t.Fatalf("Stat size %d", ref.Meta.Size)
	}
	for i := range 2 {
		h, err := s.Open(testutil.Ctx(t), ref)
		if err != nil {
			t.Fatal(err)
		}
		n, err := h.ReadAt(testutil.Ctx(t), make([]byte, 10), 0)
		h.Close()
		if n != 0 || err == nil {
			t.Errorf("round %d: read %d bytes, err %v; want 0 and io.EOF", i, n, err)
		}
		testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	}
	if n := srv.Count("GET", "m/empty"); n > 1 {
		t.Errorf("%d GETs for an empty file", n)
	}
}

// memoryModeEnv makes the engine tests run every chunk through memory, as
// on a busy cache disk.
const memoryModeEnv = "MODELSTOREFS_TEST_ENGINE_MEMORY"

func testMemoryMode() bool { return os.Getenv(memoryModeEnv) != "" }

// TestContentAdoptsOtherProcessObjects: a file another process committed
// into the shared cache directory after this one indexed it is used, not
// downloaded again.
func TestContentAdoptsOtherProcessObjects(t *testing.T) {
	data := blob(9, 200<<10)
	srv, st, _ := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{})
	dir := t.TempDir()
	mount := newStream(t, StreamConfig{Dir: dir})
	other := newStream(t, StreamConfig{Dir: dir})
	ref := refFor(t, st, "m", "f")
	if !bytes.Equal(openRead(t, other, ref), data) {
		t.Fatal("content differs")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(other, ref) })
	before := srv.Count(http.MethodGet, "m/f")
	if !bytes.Equal(openRead(t, mount, ref), data) {
		t.Fatal("content differs")
	}
	if n := srv.Count(http.MethodGet, "m/f"); n != before {
		t.Errorf("%d more GETs: the file another process committed was downloaded again", n-before)
	}
}
