package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// Read-engine tests on real mounts: the persistent cache across remounts
// and a daemon crash, eviction under a small --cache-size, a full cache
// disk, and a server without Range support.

// engWeights is the remote name of lenet's weights, mounted as model.caffemodel.
const engWeights = "snapshot_iter_28140.caffemodel"

// engStoreDir copies the sample store and gives each named model (a copy
// of lenet) weights of the given size, deterministic per model; it returns
// the directory and each model's weights' sha256.
func engStoreDir(t *testing.T, sizes map[string]int) (string, map[string]string) {
	t.Helper()
	dir := itest.CopyStore(t)
	sums := map[string]string{}
	var children []string
	for model, size := range sizes {
		if model != "lenet" {
			if err := os.CopyFS(filepath.Join(dir, model), os.DirFS(filepath.Join(dir, "lenet"))); err != nil {
				t.Fatal(err)
			}
			children = append(children, model)
		}
		data := make([]byte, size)
		seed := sha256.Sum256([]byte(model))
		rand.NewChaCha8(seed).Read(data)
		if err := os.WriteFile(filepath.Join(dir, model, engWeights), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		sums[model] = hex.EncodeToString(sum[:])
	}
	if len(children) > 0 {
		master := `{"msg": "engine tests", "children": ["lenet", "alexnet-torch", "broken", "inception-tf", "` + strings.Join(children, `", "`) + `"]}`
		writeFile(t, filepath.Join(dir, "master.json"), master)
	}
	return dir, sums
}

// engStore serves a store directory with Range support (http.FileServer),
// counting requests and body bytes, optionally throttled.
type engStore struct {
	*httptest.Server
	base string
	mu   sync.Mutex
	hits map[string]int // "GET /lenet/x" -> requests
	sent atomic.Int64   // body bytes written
	rate atomic.Int64   // bytes per second for all bodies together; 0: unlimited

	lmu  sync.Mutex
	next time.Time // when the throttle lets the next piece go
}

func engStartStore(t *testing.T, dir string) *engStore {
	t.Helper()
	s := &engStore{hits: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.Method+" "+r.URL.Path]++
		s.mu.Unlock()
		files.ServeHTTP(&engThrottled{ResponseWriter: w, s: s}, r)
	}))
	t.Cleanup(func() {
		s.rate.Store(0)
		s.CloseClientConnections()
		s.Close()
	})
	s.base = s.URL + "/"
	return s
}

func (s *engStore) count(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[methodPath]
}

// throttle waits until n more bytes fit the rate.
func (s *engStore) throttle(n int) {
	rate := s.rate.Load()
	if rate <= 0 {
		return
	}
	s.lmu.Lock()
	now := time.Now()
	if s.next.Before(now) {
		s.next = now
	}
	s.next = s.next.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
	d := time.Until(s.next)
	s.lmu.Unlock()
	time.Sleep(min(d, time.Second))
}

// engThrottled writes a body in pieces at the store's rate.
type engThrottled struct {
	http.ResponseWriter
	s *engStore
}

func (w *engThrottled) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *engThrottled) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		w.s.throttle(k)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		w.s.sent.Add(int64(m))
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// engMount runs "modelstorefs mount" on mnt with the given cache dir (see
// mountWith).
func engMount(t *testing.T, mnt, cacheDir string, stores []string, extra ...string) *itest.Mount {
	t.Helper()
	return itest.MountWith(t, itest.Binary, mnt, cacheDir, stores, extra...)
}

// engSHA reads a file (through the mount) and returns its sha256.
func engSHA(t *testing.T, path string) (string, error) {
	t.Helper()
	var sum string
	err := itest.WithTimeout(t, 25*time.Second, "read "+path, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		sum = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return sum, err
}

// engCheckSHA fails the test unless path reads whole with sha256 want.
func engCheckSHA(t *testing.T, path, want string) {
	t.Helper()
	got, err := engSHA(t, path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if got != want {
		t.Fatalf("%s: sha256 %s, want %s", path, got, want)
	}
}

// engCacheFiles lists the data files of a cache dir's v2/<sub> with their
// sha256 (sub "objects" or "partial"; the daemons' lock files left out).
func engCacheFiles(t *testing.T, cacheDir, sub string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(cacheDir, "v2", sub)
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !de.Type().IsRegular() || strings.HasSuffix(p, ".lock") { // a daemon's lock, no data
			return nil
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) { // evicted or committed meanwhile
			return nil
		}
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// engDirBytes is the size of the regular files below dir.
func engDirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if de.Type().IsRegular() {
			if info, err := de.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// engWaitCommitted waits until the cache holds a complete object with
// sha256 sum.
func engWaitCommitted(t *testing.T, cacheDir, sum string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, s := range engCacheFiles(t, cacheDir, "objects") {
			if s == sum {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete object with sha256 %s in %s after 10s", sum, cacheDir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// engStatsJSON is the part of /.stats these tests look at.
type engStatsJSON struct {
	Content struct {
		Hits, Joins, Misses, Direct int64
	}
	Errors map[string]int64
}

// engStats reads the mount's /.stats; ok is false when the daemon has none.
func engStats(t *testing.T, mnt string) (st engStatsJSON, ok bool) {
	t.Helper()
	var data []byte
	err := itest.WithTimeout(t, 10*time.Second, "read /.stats", func() error {
		var err error
		data, err = os.ReadFile(filepath.Join(mnt, ".stats"))
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return st, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("/.stats: %v\n%s", err, data)
	}
	return st, true
}

// TestEngineCacheSurvivesRemount: a file read through one mount is read
// through the next mount over the same cache dir without a GET.
func TestEngineCacheSurvivesRemount(t *testing.T) {
	dir, sums := engStoreDir(t, map[string]int{"lenet": 16 << 20})
	srv := engStartStore(t, dir)
	cacheDir := t.TempDir()
	weights := "GET /lenet/" + engWeights

	m1 := engMount(t, t.TempDir(), cacheDir, []string{srv.base})
	engCheckSHA(t, filepath.Join(m1.Dir, itest.StoreName(srv.base), "lenet", "model.caffemodel"), sums["lenet"])
	engWaitCommitted(t, cacheDir, sums["lenet"])
	m1.Stop(t)
	if t.Failed() {
		return
	}
	gets := srv.count(weights)
	if gets == 0 {
		t.Fatal("no GET of the weights counted")
	}

	m2 := engMount(t, t.TempDir(), cacheDir, []string{srv.base})
	path := filepath.Join(m2.Dir, itest.StoreName(srv.base), "lenet", "model.caffemodel")
	engCheckSHA(t, path, sums["lenet"])
	if n := srv.count(weights); n != gets {
		t.Errorf("the second mount made %d GETs of a file complete in the cache", n-gets)
	}
	// Also a read at an offset, from a fresh open.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if err := itest.WithTimeout(t, 10*time.Second, "pread", func() error {
		_, err := f.ReadAt(buf, 10<<20)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := srv.count(weights); n != gets {
		t.Errorf("%d GETs for a read at an offset of a cached file", n-gets)
	}
	if p := engCacheFiles(t, cacheDir, "partial"); len(p) != 0 {
		t.Errorf("partial downloads left: %v", p)
	}
	if st, ok := engStats(t, m2.Dir); ok && (st.Content.Hits == 0 || st.Content.Misses != 0 || st.Content.Direct != 0) {
		t.Errorf("/.stats of the second mount: %+v, want cache hits only", st.Content)
	}
}

// TestEngineKillDuringDownload: the daemon is killed (SIGKILL) in the
// middle of a download. The part on disk is never taken as complete: the
// next mount, on the same (now dead) mountpoint and cache dir, recovers the
// mountpoint, fetches the file again and serves the right bytes.
func TestEngineKillDuringDownload(t *testing.T) {
	t.Parallel() // its own store, counted and throttled by itself
	const size = 64 << 20
	dir, sums := engStoreDir(t, map[string]int{"lenet": size})
	srv := engStartStore(t, dir)
	srv.rate.Store(8 << 20)
	cacheDir := t.TempDir()
	mnt := t.TempDir()
	weights := "GET /lenet/" + engWeights

	m1 := engMount(t, mnt, cacheDir, []string{srv.base})
	path := filepath.Join(mnt, itest.StoreName(srv.base), "lenet", "model.caffemodel")
	readDone := engReadInBackground(path)
	deadline := time.Now().Add(15 * time.Second)
	for srv.sent.Load() < 20<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("download not under way after 15s: %d bytes sent\n%s", srv.sent.Load(), m1.Logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := m1.Kill(); err != nil {
		t.Fatal(err)
	}
	sent := srv.sent.Load()
	if sent >= size {
		t.Fatalf("the whole file (%d bytes) was sent before the kill: the test proves nothing", sent)
	}
	select {
	case err := <-readDone:
		if err == nil {
			t.Error("a read through the killed daemon succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Error("a reader of the killed mount still hangs")
	}
	engCheckAfterKill(t, cacheDir, mnt, sums["lenet"])

	// A new daemon on the same mountpoint and cache dir, full speed.
	srv.rate.Store(0)
	before := srv.count(weights)
	m2 := engMount(t, mnt, cacheDir, []string{srv.base})
	if !strings.Contains(m2.Logs.String(), "stale mount") {
		t.Logf("no stale-mount line in the second daemon's logs:\n%s", m2.Logs)
	}
	engCheckSHA(t, path, sums["lenet"])
	if srv.count(weights) == before {
		t.Error("the file was served after the kill without being fetched again: the partial file was taken as complete")
	}
	engWaitCommitted(t, cacheDir, sums["lenet"])
	for p, s := range engCacheFiles(t, cacheDir, "objects") {
		if s != sums["lenet"] {
			t.Errorf("wrong object %s", p)
		}
	}
	m2.Stop(t)
	if itest.IsMounted(mnt) {
		t.Error("mountpoint still mounted after the second daemon stopped")
	}
}

// engReadInBackground reads the file at path to its end on a goroutine
// of its own, and sends on the channel returned how the read ended (with
// an error when the daemon dies).
func engReadInBackground(path string) <-chan error {
	readDone := make(chan error, 1)
	go func() {
		// Ends with an error when the daemon dies.
		f, err := os.Open(path)
		if err != nil {
			readDone <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		readDone <- err
	}()
	return readDone
}

// engCheckAfterKill checks what a daemon killed mid-download leaves: no
// object in cacheDir but one of sum (nothing wrong committed), and logs
// whether a partial file is left and what stat of the dead mountpoint mnt
// gives.
func engCheckAfterKill(t *testing.T, cacheDir, mnt, sum string) {
	t.Helper()
	// Nothing complete in the cache; the partial file is there.
	for p, s := range engCacheFiles(t, cacheDir, "objects") {
		if s != sum {
			t.Errorf("the killed daemon left a wrong object %s", p)
		}
	}
	if p := engCacheFiles(t, cacheDir, "partial"); len(p) == 0 {
		t.Log("no partial file after the kill (the daemon may not fallocate up front)")
	}
	if _, err := os.Stat(mnt); !errors.Is(err, syscall.ENOTCONN) {
		t.Logf("dead mountpoint: stat gives %v (expected ENOTCONN)", err)
	}
}

// TestEngineEvictionSmallCache: with --cache-size 1MiB, reading three
// 600 KiB files works and the cache never holds more than 1 MiB.
func TestEngineEvictionSmallCache(t *testing.T) {
	const size, limit = 600 << 10, 1 << 20
	models := []string{"lenet", "lenet2", "lenet3"}
	sizes := map[string]int{}
	for _, m := range models {
		sizes[m] = size
	}
	dir, sums := engStoreDir(t, sizes)
	srv := engStartStore(t, dir)
	cacheDir := t.TempDir()
	m := engMount(t, t.TempDir(), cacheDir, []string{srv.base}, "--cache-size", "1MiB")
	root := filepath.Join(m.Dir, itest.StoreName(srv.base))
	objects := filepath.Join(cacheDir, "v2", "objects")
	check := func(when string) {
		t.Helper()
		if n := engDirBytes(t, objects); n > limit {
			t.Errorf("%s: %d bytes in v2/objects, --cache-size 1MiB", when, n)
		}
		if n := engDirBytes(t, filepath.Join(cacheDir, "v2")); n > limit {
			t.Errorf("%s: %d bytes in the cache (objects and partial), --cache-size 1MiB", when, n)
		}
		for p, s := range engCacheFiles(t, cacheDir, "objects") {
			ok := false
			for _, want := range sums {
				ok = ok || s == want
			}
			if !ok {
				t.Errorf("%s: object %s is none of the files", when, p)
			}
		}
	}
	for round := range 2 {
		for _, model := range models {
			engCheckSHA(t, filepath.Join(root, model, "model.caffemodel"), sums[model])
			check(fmt.Sprintf("round %d, after %s", round, model))
		}
	}
	// Once the downloads have settled too.
	time.Sleep(200 * time.Millisecond)
	check("at the end")
	if n := len(engCacheFiles(t, cacheDir, "objects")); n > 1 {
		t.Errorf("%d objects of 600 KiB in a 1 MiB cache", n)
	}
}

// TestEngineFullDisk: the cache dir is a 2 MiB tmpfs. A 5 MiB file is read
// straight from the store, with the right bytes and no EIO; a file that
// fits is cached; neither breaks the other.
func TestEngineFullDisk(t *testing.T) {
	t.Parallel() // its own tmpfs cache dir, store and mount
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "mounting a tmpfs needs root")
	}
	cacheDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", cacheDir).CombinedOutput(); err != nil {
		testutil.SkipOrFail(t, "cannot mount a tmpfs: %v %s", err, out)
	}
	// Registered before the daemon's, so it runs after the daemon stopped.
	t.Cleanup(func() {
		if err := syscall.Unmount(cacheDir, 0); err != nil {
			t.Logf("unmount tmpfs: %v; detaching", err)
			_ = syscall.Unmount(cacheDir, syscall.MNT_DETACH)
		}
	})
	dir, sums := engStoreDir(t, map[string]int{"lenet": 5 << 20, "small": 1536 << 10})
	srv := engStartStore(t, dir)
	m := engMount(t, t.TempDir(), cacheDir, []string{srv.base}, "--cache-min-free", "0")
	root := filepath.Join(m.Dir, itest.StoreName(srv.base))
	big := filepath.Join(root, "lenet", "model.caffemodel")
	small := filepath.Join(root, "small", "model.caffemodel")

	engCheckSHA(t, big, sums["lenet"])
	// A read at an offset of the file that does not fit.
	want := make([]byte, 1000)
	data, err := os.ReadFile(filepath.Join(dir, "lenet", engWeights))
	if err != nil {
		t.Fatal(err)
	}
	copy(want, data[4<<20:])
	got := make([]byte, 1000)
	if err := itest.WithTimeout(t, 20*time.Second, "pread", func() error {
		f, err := os.Open(big)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.ReadAt(got, 4<<20)
		return err
	}); err != nil {
		t.Fatalf("pread of a file larger than the cache disk: %v", err)
	}
	if string(got) != string(want) {
		t.Fatal("pread of a file larger than the cache disk: wrong bytes")
	}

	engCheckSHA(t, small, sums["small"])
	engWaitCommitted(t, cacheDir, sums["small"])
	// The big one again, with the small one taking most of the disk.
	engCheckSHA(t, big, sums["lenet"])
	engCheckSHA(t, small, sums["small"])
	if strings.Contains(m.Logs.String(), "EIO") || strings.Contains(m.Logs.String(), "no space left") {
		t.Errorf("EIO or ENOSPC in the daemon's logs:\n%s", m.Logs)
	}
	if st, ok := engStats(t, m.Dir); ok {
		if st.Content.Direct == 0 {
			t.Errorf("/.stats counts no direct read, yet a 5 MiB file cannot be cached on a 2 MiB disk: %+v", st)
		}
		for errno, n := range st.Errors {
			t.Errorf("/.stats: %d reads failed with %s", n, errno)
		}
	}
	for p, s := range engCacheFiles(t, cacheDir, "objects") {
		if s != sums["small"] {
			t.Errorf("unexpected object %s in the tmpfs cache", p)
		}
	}
}

// TestEnginePythonNoRange: python's http.server ignores Range (200 with
// the whole file). A 20 MiB file reads right through the mount, first at a
// high offset, then whole, twice.
func TestEnginePythonNoRange(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	const size = 20 << 20
	dir, sums := engStoreDir(t, map[string]int{"lenet": size})
	data, err := os.ReadFile(filepath.Join(dir, "lenet", engWeights))
	if err != nil {
		t.Fatal(err)
	}
	url := itest.StartPython(t, dir)
	m := itest.StartMount(t, []string{url})
	path := filepath.Join(m.Dir, itest.StoreName(url), "lenet", "model.caffemodel")

	// The end first: its bytes must come from offset 19 MiB of the file,
	// although the server sends the whole file from offset 0.
	got := make([]byte, 1<<20)
	if err := itest.WithTimeout(t, 25*time.Second, "pread", func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := f.ReadAt(got, size-1<<20)
		if n == len(got) && err == io.EOF {
			err = nil
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data[size-1<<20:]) {
		t.Fatal("the last MiB read through the mount differs")
	}
	for i := range 2 {
		got, err := engSHA(t, path)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if got != sums["lenet"] {
			t.Fatalf("read %d: sha256 %s, want %s", i, got, sums["lenet"])
		}
	}
}
