package faults

// Fault-matrix rows for the byte engine's own mechanisms (issue 9): streams
// and readers at different speeds, a cache that cannot keep the file, the
// daemon killed while cache writes are behind the reader, and a file
// changing while several streams are in flight. --write-behind sends every
// chunk through memory, as a busy cache disk does.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

func fltEngineCases() []fltCase {
	return []fltCase{
		{"two-speeds", "two readers at different speeds on one cold file (direct, and --write-behind)", false, fltRowTwoSpeeds},
		{"seek-back-uncached", "cache disk full (1 MiB tmpfs): read to the end, then seek back behind the memory window", false, fltRowSeekBack},
		{"kill9-behind", "kill -9 while cache writes are behind the reader (--write-behind, throttled store)", false, fltRowKill9Behind},
		{"changed-streams", "file replaced while a stream and a far reader's ranged GET are in flight", false, fltRowChangedStreams},
	}
}

// fltReadSlow reads p whole in 256 KiB pieces with a pause after each.
func fltReadSlow(p string, pause time.Duration) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out bytes.Buffer
	buf := make([]byte, 256<<10)
	for {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
		time.Sleep(pause)
	}
}

func fltRowTwoSpeeds(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	var saw []string
	for _, mode := range []string{"direct", "--write-behind"} {
		srv, want := fltStdServer(t, 16<<20)
		extra := []string{"--chunk-size", "1MiB"}
		if mode != "direct" {
			extra = append(extra, mode)
		}
		m = itest.StartMount(t, fltStores(srv), extra...)
		var wg sync.WaitGroup
		results := make([]fltResult, 2)
		for i, pause := range []time.Duration{0, 10 * time.Millisecond} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				data, err := fltReadSlow(fltWeightsPath(m), pause)
				results[i] = fltResult{data: data, err: err, took: time.Since(start)}
			}()
		}
		wg.Wait()
		for i, res := range results {
			fltExpectBytes(t, r, res, want, fmt.Sprintf("%s reader %d", mode, i))
		}
		_, gets := fltFaulted(srv, fltWeights)
		saw = append(saw, fmt.Sprintf("%s: fast %s, slow %s, %d GETs", mode, fltSecs(results[0].took), fltSecs(results[1].took), gets))
	}
	r.saw = strings.Join(saw, "; ")
	r.recovery = "n/a: one download shared"
}

func fltRowSeekBack(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	cache := t.TempDir()
	if err := syscall.Mount("tmpfs", cache, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("tmpfs for the cache: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(cache, syscall.MNT_DETACH) })
	srv, want := fltStdServer(t, 16<<20)
	m = fltMountAt(t, t.TempDir(), cache, fltStores(srv), "--chunk-size", "1MiB", "--cache-min-free", "0")
	p := fltWeightsPath(m)
	res := fltRead(p, 60*time.Second)
	fltExpectBytes(t, r, res, want, "weights")
	// Back to the start and to the middle, with the file open.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back := []int64{0, 8 << 20, 100}
	for _, off := range back {
		buf := make([]byte, 300<<10)
		n, err := f.ReadAt(buf, off)
		if err != nil || !bytes.Equal(buf[:n], want[off:off+int64(n)]) || n != len(buf) {
			fltBug(t, r, "seek back to %d: %d bytes, %v, right: %v", off, n, err, bytes.Equal(buf[:n], want[off:off+int64(n)]))
		}
	}
	r.saw = fmt.Sprintf("whole read in %s, then 3 reads behind the window: right bytes", fltSecs(res.took))
	_, gets := fltFaulted(srv, fltWeights)
	r.recovery = fmt.Sprintf("no cache copy (%d log lines say why); %d GETs, the ones behind fetched again", fltLogCount(m, "not caching"), gets)
}

func fltRowKill9Behind(t *testing.T, r *fltRow) {
	var m2 *itest.Mount
	defer func() { fltFinish(t, r, m2) }()
	srv, want := fltStdServer(t, 24<<20)
	srv.AddFault(fltWeights, remotetest.Fault{Kind: remotetest.FaultThrottle, Method: "GET", Times: -1, Rate: 4 << 20})
	dir, cache := t.TempDir(), t.TempDir()
	m1 := fltMountAt(t, dir, cache, fltStores(srv), "--chunk-size", "1MiB", "--write-behind")
	if _, err := fltLs(filepath.Join(dir, "s", "big"), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	readerErr := fltKillMidDownload(t, srv, m1)
	srv.ClearFaults(fltWeights)
	m2 = fltMountAt(t, dir, cache, fltStores(srv), "--chunk-size", "1MiB", "--write-behind")
	// Nothing partial was kept as complete: every kept object is whole.
	objects, _ := filepath.Glob(filepath.Join(cache, "v2", "objects", "*", "*"))
	more, _ := filepath.Glob(filepath.Join(cache, "v2", "objects", "*"))
	for _, o := range append(objects, more...) {
		if st, err := os.Stat(o); err == nil && !st.IsDir() && st.Size() == int64(len(want)) {
			if data, _ := os.ReadFile(o); !bytes.Equal(data, want) {
				fltBug(t, r, "a partial cache file was kept as complete: %s", o)
			}
		}
	}
	res := fltRead(filepath.Join(dir, "s", "big", "model.caffemodel"), 60*time.Second)
	fltExpectBytes(t, r, res, want, "weights after kill -9 and remount")
	r.saw = fmt.Sprintf("reader at the kill: %v; after remount: %s", readerErr, fltErrno(res.err))
	r.recovery = fmt.Sprintf("partial download discarded at start; whole file in %s", fltSecs(res.took))
	fltCheckCacheDir(t, m2)
}

func fltRowChangedStreams(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, old := fltStdServer(t, 16<<20)
	srv.AddFault(fltWeights, remotetest.Fault{Kind: remotetest.FaultThrottle, Method: "GET", Times: -1, Rate: 4 << 20})
	m = itest.StartMount(t, fltStores(srv), "--chunk-size", "1MiB", "--retry-window", "5s")
	if _, err := fltLs(filepath.Join(m.Dir, "s", "big"), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	p := fltWeightsPath(m)
	var wg sync.WaitGroup
	var seq, far fltResult
	wg.Add(2)
	go func() { defer wg.Done(); seq = fltRead(p, 60*time.Second) }()
	go func() {
		defer wg.Done()
		time.Sleep(300 * time.Millisecond)
		far = fltReadPrefixAt(p, 14<<20, 1<<20, 60*time.Second)
	}()
	time.Sleep(600 * time.Millisecond)
	updated := bytes.Clone(old)
	copy(updated[5<<20:], "the new version of the weights")
	srv.put(fltWeights, updated, fltModTime.Add(time.Hour))
	srv.ClearFaults(fltWeights)
	wg.Wait()
	check := func(what string, res fltResult, off int64) string {
		switch {
		case res.err == nil && bytes.Equal(res.data, old[off:off+int64(len(res.data))]):
			return what + ": old version, right"
		case res.err == nil:
			fltBug(t, r, "%s: bytes of neither version alone (a mix)", what)
			return what + ": MIXED"
		case errors.Is(res.err, syscall.EIO):
			return what + ": EIO (file changed)"
		default:
			t.Errorf("%s: %v", what, res.err)
			return what + ": " + fltErrno(res.err)
		}
	}
	r.saw = check("sequential", seq, 0) + "; " + check("far reader", far, 14<<20)
	fltTouch(t, filepath.Join(m.Dir, ".refresh"))
	again := fltRead(p, 60*time.Second)
	if again.err != nil || !bytes.Equal(again.data, updated) {
		t.Errorf("after .refresh: %v, new version: %v", again.err, bytes.Equal(again.data, updated))
	}
	r.bytes = "never mixed"
	r.recovery = "after touch .refresh: the new version, " + fltErrno(again.err)
}

// fltReadPrefixAt reads n bytes at off of p, giving up after timeout.
func fltReadPrefixAt(p string, off int64, n int, timeout time.Duration) fltResult {
	start := time.Now()
	ch := make(chan fltResult, 1)
	go func() {
		f, err := os.Open(p)
		if err != nil {
			ch <- fltResult{err: err}
			return
		}
		defer f.Close()
		buf := make([]byte, n)
		m, err := f.ReadAt(buf, off)
		if err == io.EOF && m == n {
			err = nil
		}
		ch <- fltResult{data: buf[:m], err: err}
	}()
	select {
	case res := <-ch:
		res.took = time.Since(start)
		return res
	case <-time.After(timeout):
		return fltResult{err: fmt.Errorf("%s: still blocked after %s", p, timeout), took: timeout, hung: true}
	}
}
