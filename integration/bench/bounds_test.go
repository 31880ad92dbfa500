package bench

// (j)-(m): what verifying every byte costs, and the bounds a user sets:
// memory and store bytes with readers of a file the cache cannot hold.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

func (b *benchState) sectionBounds(t *testing.T) {
	src := t.TempDir()
	sum := benchWriteBigStore(t, src)
	raw, err := hex.DecodeString(sum)
	if err != nil {
		t.Fatal(err)
	}
	digest := "sha-256=:" + base64.StdEncoding.EncodeToString(raw) + ":"
	sent := &benchSent{}
	srv := startBenchServer(t, sent.wrap(http.FileServer(http.Dir(src)), "/"+benchBigRel, digest), 0)
	if _, err := benchRunTimed(time.Minute, nil, "cat", filepath.Join(src, benchBigRel)); err != nil {
		t.Fatal(err)
	}
	b.verifyRows(t, srv, sum, sent)
	b.uncachedRows(t, srv, sent)
}

// benchSent wraps a handler: the file at path states digest, and the bytes
// sent for it and the time its last byte was written are counted.
type benchSent struct {
	bytes atomic.Int64
	last  atomic.Int64 // UnixNano of the write that ended a body
}

func (s *benchSent) wrap(h http.Handler, path, digest string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Repr-Digest", digest)
		h.ServeHTTP(&benchCountWriter{ResponseWriter: w, s: s}, r)
		s.last.Store(time.Now().UnixNano())
	})
}

type benchCountWriter struct {
	http.ResponseWriter
	s *benchSent
}

func (w *benchCountWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.s.bytes.Add(int64(n))
	return n, err
}

// verifyRows: (j) a cold 1 GiB read verified against the stated digest,
// against the same read with --verify=false; (k) the time from the
// store's last byte to the reader's end of file.
func (b *benchState) verifyRows(t *testing.T, srv *benchServer, sum string, sent *benchSent) {
	rel := filepath.Join(itest.StoreName(srv.URL), benchBigJob)
	var on, off, tails []float64
	for range b.reps {
		for _, verify := range []bool{true, false} {
			cache := b.tempDir(t, "cache-")
			var tail time.Duration
			r := b.readOnce(t, benchReadOpts{mount: b.msfsMount(cache, srv.URL, fmt.Sprintf("--verify=%v", verify)), rel: rel, sum: sum, timeout: 2 * time.Minute})
			if verify {
				tail = b.tailLatency(t, srv, sum, sent)
			}
			os.RemoveAll(cache)
			switch {
			case r.err != nil:
				t.Errorf("(j) --verify=%v: %v", verify, r.err)
			case !r.sumOK:
				t.Errorf("(j) --verify=%v: wrong bytes", verify)
			case verify:
				on = append(on, r.rate)
				if tail >= 0 {
					tails = append(tails, float64(tail.Milliseconds()))
				}
			default:
				off = append(off, r.rate)
			}
		}
	}
	onMed, offMed := benchMedian(on), benchMedian(off)
	b.add(benchRow{
		what: "(j) cold 1 GiB read, Go server stating Repr-Digest, verified vs --verify=false",
		msfs: benchRate(onMed), base: benchRate(offMed), ratio: benchRatio(onMed, offMed),
		target: ">= 0.85x (at most 15% slower)", met: benchMet(offMed > 0, onMed >= 0.85*offMed),
		note: fmt.Sprintf("medians of %d (verified %s; not %s); SHA-256 beside the download, in file order", b.reps, benchRates(on), benchRates(off)),
	})
	tailMed := benchMedian(tails)
	b.add(benchRow{
		what: "(k) 1 GiB: the store's last byte to the reader's end of file (verified)",
		msfs: fmt.Sprintf("%.0f ms", tailMed), base: "-", ratio: "-",
		target: "<= 50 ms", met: benchMet(len(tails) > 0, len(tails) > 0 && tailMed <= 50),
		note: fmt.Sprintf("per read: %v ms", tails),
	})
}

// tailLatency reads the big file through a fresh mount with a Go reader
// and returns the time from the store's last byte to the reader's end of
// file (-1 when it could not be measured).
func (b *benchState) tailLatency(t *testing.T, srv *benchServer, sum string, sent *benchSent) time.Duration {
	cache := b.tempDir(t, "cache-")
	defer os.RemoveAll(cache)
	mnt := b.tempDir(t, "mnt-")
	p, err := b.msfsMount(cache, srv.URL)(t, mnt)
	if err != nil {
		t.Errorf("(k): %v", err)
		return -1
	}
	defer p.stop()
	f, err := os.Open(filepath.Join(mnt, itest.StoreName(srv.URL), benchBigJob))
	if err != nil {
		t.Errorf("(k): %v", err)
		return -1
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) || n == 0 {
			break
		}
		if err != nil {
			t.Errorf("(k): %v", err)
			return -1
		}
	}
	end := time.Now()
	if hex.EncodeToString(h.Sum(nil)) != sum {
		t.Error("(k): wrong bytes")
		return -1
	}
	return end.Sub(time.Unix(0, sent.last.Load()))
}

// uncachedRows: (l) 16 random 1 MiB readers of a file larger than the
// cache, with --cache-size 16MiB --buffer-size 16MiB: the daemon's peak
// RSS and the store's bytes per byte read; (m) a sequential read of it.
func (b *benchState) uncachedRows(t *testing.T, srv *benchServer, sent *benchSent) {
	rel := filepath.Join(itest.StoreName(srv.URL), benchBigJob)
	mount := func() (*benchProc, string) {
		mnt := b.tempDir(t, "mnt-")
		p, err := b.msfsMount(b.tempDir(t, "cache-"), srv.URL, "--cache-size", "16MiB", "--buffer-size", "16MiB")(t, mnt)
		if err != nil {
			t.Fatalf("(l): %v", err)
		}
		return p, filepath.Join(mnt, rel)
	}
	p, path := mount()
	before := sent.bytes.Load()
	read := benchRandomReaders(t, path, 16, 10*time.Second)
	hwm, _ := benchVmHWM(p.cmd.Process.Pid)
	ratio := float64(sent.bytes.Load()-before) / float64(max(read, 1))
	p.stop()
	b.add(benchRow{
		what: "(l) 16 random 1 MiB readers, 10 s, 1 GiB file, --cache-size 16MiB --buffer-size 16MiB: peak RSS",
		msfs: fmt.Sprintf("%d MiB", hwm>>20), base: "16 MiB + 100 MiB", ratio: "-",
		target: "<= 116 MiB; store bytes <= 4x read", met: benchMet(true, hwm <= 116<<20 && ratio <= 4),
		note: fmt.Sprintf("%d MiB read; the store sent %.2fx that", read>>20, ratio),
	})
	p, path = mount()
	before = sent.bytes.Load()
	d, err := benchRunTimed(2*time.Minute, nil, "cat", path)
	ratio = float64(sent.bytes.Load()-before) / float64(benchBigSize)
	p.stop()
	if err != nil {
		t.Errorf("(m): %v", err)
	}
	b.add(benchRow{
		what: "(m) cat of the 1 GiB file with --cache-size 16MiB (read into memory): store bytes per byte read",
		msfs: fmt.Sprintf("%.3fx", ratio), base: "-", ratio: "-",
		target: "<= 1.1x", met: benchMet(err == nil, err == nil && ratio <= 1.1),
		note: benchRate(float64(benchBigSize) / 1e6 / d.Seconds()),
	})
}

// benchRandomReaders runs n readers of 1 MiB at random offsets of path for
// d and returns the bytes they read.
func benchRandomReaders(t *testing.T, path string, n int, d time.Duration) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(path)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 5))
			buf := make([]byte, 1<<20)
			for time.Now().Before(deadline) {
				n, err := f.ReadAt(buf, rng.Int64N(fi.Size()-int64(len(buf))))
				if err != nil {
					t.Error(err)
					return
				}
				read.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	return read.Load()
}
