package faults

// Fault-matrix rows for issue 17's engine bounds: memory and store bytes
// with readers of a file the cache cannot hold, a store claiming an
// absurd size, and a reopen just after a file's bytes arrived.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

func fltBoundsEngineCases() []fltCase {
	return []fltCase{
		{"random-uncached", "16 random 1 MiB readers of a 64 MiB file, --cache-size 16MiB --buffer-size 16MiB", false, fltRowRandomUncached},
		{"seq-uncached", "cat of a 64 MiB file larger than --cache-size 16MiB", false, fltRowSeqUncached},
		{"claimed-size", "HEAD claims Content-Length 2^63-1 and 2^50", false, fltRowClaimedSize},
		{"reopen-small-reads", "reopen right after the last byte, then 2-byte reads (20,000 bytes)", false, fltRowReopenSmallReads},
		{"flipped-byte", "one byte flipped in transit in the weights (store states Repr-Digest), then an honest proxy", false, fltRowFlippedByte},
	}
}

// fltSentBytes sums the bytes the store's GETs of rel asked for (a GET
// without a Range counts the whole file).
func fltSentBytes(srv *fltServer, rel string, size int64) (sent int64, gets int) {
	for _, q := range srv.Arrivals() {
		if q.URLPath != srv.base+rel || q.Method != http.MethodGet {
			continue
		}
		gets++
		var a, b int64
		if _, err := fmt.Sscanf(q.Range, "bytes=%d-%d", &a, &b); err != nil {
			if _, err := fmt.Sscanf(q.Range, "bytes=%d-", &a); err == nil {
				sent += size - a
			} else {
				sent += size
			}
			continue
		}
		sent += min(b, size-1) - a + 1
	}
	return sent, gets
}

func fltRowRandomUncached(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	const size, readSize = 64 << 20, 1 << 20
	srv, want := fltStdServer(t, size)
	// Without -race: its shadow memory would multiply the peak RSS.
	m = fltMountWith(t, fltPlain, t.TempDir(), t.TempDir(), fltStores(srv), "--cache-size", "16MiB", "--buffer-size", "16MiB")
	p := fltWeightsPath(m)
	var (
		wg   sync.WaitGroup
		read atomic.Int64
		bad  atomic.Int64
	)
	deadline := time.Now().Add(6 * time.Second)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(p)
			if err != nil {
				bad.Add(1)
				return
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 17))
			buf := make([]byte, readSize)
			for time.Now().Before(deadline) {
				off := rng.Int64N(size - readSize)
				n, err := f.ReadAt(buf, off)
				if err != nil || n != readSize || !bytes.Equal(buf, want[off:off+readSize]) {
					bad.Add(1)
					return
				}
				read.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		fltBug(t, r, "%d of 16 readers got an error or wrong bytes", bad.Load())
	}
	hwm, err := fltVmHWM(m.Cmd.Process.Pid)
	if err != nil {
		t.Errorf("VmHWM: %v", err)
	}
	sent, gets := fltSentBytes(srv, fltWeights, size)
	ratio := float64(sent) / float64(max(read.Load(), 1))
	r.saw = fmt.Sprintf("%d MiB read in 6 s, right bytes; VmHWM %d MiB", read.Load()>>20, hwm>>20)
	r.bytes = fmt.Sprintf("store sent %.2fx what was read (%d GETs)", ratio, gets)
	r.recovery = "n/a"
	// Issue 17's target: --buffer-size + 100 MiB.
	if limit := int64(16+100) << 20; hwm > limit {
		fltBug(t, r, "peak RSS %d MiB > buffer budget + 100 MiB (%d MiB)", hwm>>20, limit>>20)
	}
	if ratio > 4 {
		fltBug(t, r, "the store sent %.2fx the bytes read (> 4x)", ratio)
	}
	if st, err := fltStats(m); err == nil {
		if c, ok := st["content"].(map[string]any); ok {
			r.recovery = fmt.Sprintf(".stats: direct %v opens, in_memory %v", c["direct"], c["in_memory"])
		}
	}
}

func fltRowSeqUncached(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	const size = 64 << 20
	srv, want := fltStdServer(t, size)
	m = fltMountWith(t, fltPlain, t.TempDir(), t.TempDir(), fltStores(srv), "--cache-size", "16MiB")
	res := fltRead(fltWeightsPath(m), 60*time.Second)
	fltExpectBytes(t, r, res, want, "weights")
	sent, gets := fltSentBytes(srv, fltWeights, size)
	ratio := float64(sent) / float64(size)
	r.saw = "correct bytes in " + fltSecs(res.took)
	r.bytes += fmt.Sprintf("; store sent %.3fx the file (%d GETs)", ratio, gets)
	r.recovery = fmt.Sprintf("not cached (%d log line says why)", fltLogCount(m, "not caching"))
	if ratio > 1.1 {
		fltBug(t, r, "the store sent %.3fx the bytes read sequentially (> 1.1x)", ratio)
	}
}

func fltRowClaimedSize(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, _ := fltStdServer(t, 1<<20)
	var sizes []string
	for _, claimed := range []int64{math.MaxInt64, 1 << 50} {
		name := fmt.Sprintf("claimed%d", len(sizes))
		sizes = append(sizes, name)
		data := fltNoise(uint64(claimed%1000), 100<<10)
		srv.put(name+"/info.json", []byte(`{"name": "`+name+`", "framework": "caffe", "snapshot file": "w.caffemodel", "model file": "m.prototxt"}`), fltModTime)
		srv.put(name+"/m.prototxt", []byte("name: \"x\"\n"), fltModTime)
		srv.put(name+"/w.caffemodel", data, fltModTime)
		srv.handle(srv.base+name+"/w.caffemodel", func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodHead {
				w.Header().Set("Content-Length", strconv.FormatInt(claimed, 10))
				w.Header().Set("ETag", `"lie"`)
				w.WriteHeader(http.StatusOK)
				return
			}
			srv.Answer(w, req, nil)
		})
	}
	srv.put("master.json", []byte(`{"children": ["lenet", "big", "claimed0", "claimed1"]}`), fltModTime)
	m = fltMountWith(t, fltPlain, t.TempDir(), t.TempDir(), fltStores(srv))
	var saw []string
	for _, name := range sizes {
		res := fltReadPrefixAt(filepath.Join(m.Dir, "s", name, "model.caffemodel"), 0, 64<<10, 30*time.Second)
		saw = append(saw, fmt.Sprintf("%s: %s", name, fltErrno(res.err)))
		if res.err == nil {
			fltBug(t, r, "%s: a read of a file whose size the store lied about succeeded", name)
		}
	}
	r.saw = fmt.Sprint(saw, "; ", fltCheckMemory(t, m))
	r.recovery = "n/a"
}

func fltRowReopenSmallReads(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, want := fltStdServer(t, 4<<20)
	m = itest.StartMount(t, fltStores(srv))
	p := fltWeightsPath(m)
	res := fltRead(p, 60*time.Second)
	fltExpectBytes(t, r, res, want, "weights")
	before := fltReadRequests(t, m)
	f, err := os.Open(p) // at once: the commit may not have happened yet
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 0, 20000)
	buf := make([]byte, 2)
	for len(got) < 20000 {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	reads := fltReadRequests(t, m) - before
	r.saw = fmt.Sprintf("%d FUSE READs for 20,000 bytes in 2-byte reads", reads)
	if !bytes.Equal(got, want[:len(got)]) || len(got) != 20000 {
		fltBug(t, r, "2-byte reads after the reopen: %d bytes, right: %v", len(got), bytes.Equal(got, want[:len(got)]))
	}
	if reads > 200 {
		fltBug(t, r, "%d READs for 20,000 bytes read 2 at a time (> 200): the reopen kept direct I/O", reads)
	}
	r.recovery = "n/a"
}

// fltReadRequests is the daemon's count of FUSE READs so far.
func fltReadRequests(t *testing.T, m *itest.Mount) int64 {
	t.Helper()
	st, err := fltStats(m)
	if err != nil {
		t.Fatalf(".stats: %v", err)
	}
	n, _ := st["read_requests"].(float64)
	return int64(n)
}

// fltFlipWriter flips the byte at file offset at in an answer whose body
// starts at file offset start.
type fltFlipWriter struct {
	http.ResponseWriter
	start, at, seen int64
}

func (w *fltFlipWriter) Write(p []byte) (int, error) {
	if i := w.at - w.start - w.seen; i >= 0 && i < int64(len(p)) {
		p = bytes.Clone(p)
		p[i] ^= 0x01
	}
	w.seen += int64(len(p))
	return w.ResponseWriter.Write(p)
}

func fltRowFlippedByte(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	const size = 16 << 20
	srv, want := fltStdServer(t, size)
	sum := sha256.Sum256(want)
	var honest atomic.Bool
	var flips atomic.Int32
	const at = size - 3<<20 // in the back half: fetched by any stream
	srv.handle(srv.base+fltWeights, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
		var start, end int64 = 0, size - 1
		if rng := req.Header.Get("Range"); rng != "" {
			if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &start, &end); err != nil {
				end = size - 1
			}
		}
		if req.Method == http.MethodGet && !honest.Load() && start <= at && end >= at {
			flips.Add(1)
			w = &fltFlipWriter{ResponseWriter: w, start: start, at: at}
		}
		srv.Answer(w, req, nil)
	})
	m = itest.StartMount(t, fltStores(srv), "--chunk-size", "1MiB")
	model := filepath.Join(m.Dir, "s", "big")
	dst := t.TempDir()
	out, err := exec.Command("cp", "-r", model, filepath.Join(dst, "bad")).CombinedOutput()
	if err == nil || flips.Load() == 0 {
		fltBug(t, r, "cp -r of a model whose weights had a byte flipped in transit: %v (%d flips)\n%s", err, flips.Load(), out)
	}
	r.saw = fmt.Sprintf("cp -r exit %v (%d answers flipped)", exitCode(err), flips.Load())
	if n := fltLogCount(m, "digest mismatch"); n == 0 {
		t.Error("no log line names the digest mismatch")
	}
	if st, err := fltStats(m); err == nil {
		c, _ := st["content"].(map[string]any)
		r.recovery = fmt.Sprintf(".stats digest_mismatches %v; ", c["digest_mismatches"])
	}
	honest.Store(true)
	out, err = exec.Command("cp", "-r", model, filepath.Join(dst, "good")).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -r once the proxy is honest: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "good", "model.caffemodel"))
	r.bytes, _ = fltVerify(got, want)
	v := make([]byte, 64)
	n, err := syscall.Getxattr(fltWeightsPath(m), "user.modelstore.verified", v)
	if err != nil || string(v[:n]) != "store" {
		fltBug(t, r, "user.modelstore.verified after an honest copy: %q, %v", v[:max(n, 0)], err)
	}
	r.recovery += "honest proxy: cp -r ok, verified=" + string(v[:max(n, 0)])
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
