package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// The read-engine tests below use files of several chunks, so that ranged
// downloads, priorities and parallel workers all come into play.

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkObjects fails the test if a complete cache object holds anything but
// one of the allowed contents: nothing partial or mixed is ever committed.
func checkObjects(t *testing.T, s *StreamContent, allowed ...[]byte) {
	t.Helper()
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[sha(a)] = true
	}
	for p := range objects(t, s) {
		data, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) { // evicted meanwhile
				continue
			}
			t.Fatal(err)
		}
		if !ok[sha(data)] {
			t.Errorf("committed object %s (%d bytes) is none of the versions served", filepath.Base(p), len(data))
		}
	}
}

// waitIdle waits until no download runs: no partial file, no entry being
// downloaded.
func waitIdle(t *testing.T, s *StreamContent) {
	t.Helper()
	testutil.WaitFor(t, "downloads to end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.entries {
			if !e.complete {
				return false
			}
		}
		return len(partials(t, s)) == 0
	})
}

// parseRange reads the "bytes=a-b" a client sent; ok false without one.
func parseRange(r *http.Request) (start, end int64, ok bool) {
	v, found := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	if !found {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(v, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if b == "" {
		end, err2 = -1, nil
	}
	return start, end, err1 == nil && err2 == nil
}

// slowWriter sends a body in pieces with a pause after each: a slow link.
type slowWriter struct {
	http.ResponseWriter
	piece int
	pause time.Duration
}

func (w *slowWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), w.piece)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		time.Sleep(w.pause)
	}
	return n, nil
}

// cutWriter sends left body bytes, then drops the connection.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (w *cutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *cutWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n, _ := w.ResponseWriter.Write(p[:w.left])
		w.left -= n
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		panic(http.ErrAbortHandler)
	}
	w.left -= len(p)
	return w.ResponseWriter.Write(p)
}

// answer206 writes a 206 with the given Content-Range and body;
// contentLength < 0 leaves Content-Length out (chunked body).
func answer206(w http.ResponseWriter, etag, contentRange string, contentLength int, body []byte) {
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	w.Header().Set("Content-Range", contentRange)
	if contentLength >= 0 {
		w.Header().Set("Content-Length", strconv.Itoa(contentLength))
	}
	w.WriteHeader(http.StatusPartialContent)
	if contentLength < 0 {
		_ = http.NewResponseController(w).Flush()
	}
	_, _ = w.Write(body)
}

// lyingSize and lyingChunk are TestStreamLyingServer's file and chunk.
const lyingSize, lyingChunk = 256 << 10, 64 << 10

// lyingCase is one lie of TestStreamLyingServer: lie answers a GET of
// [start, end] of data, whose ETag is etag; is is the error a reader must
// get when the server always lies (nil: any).
type lyingCase struct {
	name string
	lie  func(w http.ResponseWriter, etag string, start, end int64)
	is   error
}

// TestStreamLyingServer: ranged answers that lie about what they hold
// (Content-Range, length) are never written as the asked bytes: readers get
// the right bytes once the server answers right, or an error; nothing
// wrong is committed.
func TestStreamLyingServer(t *testing.T) {
	data := blob(21, lyingSize)
	for _, tt := range lyingServerCases(data) {
		for _, times := range []int{0, 2} {
			if times > 0 && errors.Is(tt.is, remote.ErrChanged) {
				continue // a changed file fails the download for good, by design
			}
			name := tt.name + ", always"
			if times > 0 {
				name = fmt.Sprintf("%s, %d times", tt.name, times)
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel() // each waits out its retries
				runLyingServer(t, tt, times, data)
			})
		}
	}
}

// lyingServerCases are the lies about data: Content-Range, lengths and
// bodies that do not hold the asked bytes.
func lyingServerCases(data []byte) []lyingCase {
	return []lyingCase{
		{name: "Content-Range shifted by one byte (consistent bytes)", lie: func(w http.ResponseWriter, etag string, start, end int64) {
			s, e := start+1, min(end+1, lyingSize-1)
			answer206(w, etag, fmt.Sprintf("bytes %d-%d/%d", s, e, lyingSize), int(e-s+1), data[s:e+1])
		}},
		{name: "Content-Range of another span", lie: func(w http.ResponseWriter, etag string, start, end int64) {
			if start == 0 { // the span of the first bytes, one short
				answer206(w, etag, fmt.Sprintf("bytes 0-%d/%d", end-1, lyingSize), int(end), data[:end])
				return
			}
			answer206(w, etag, fmt.Sprintf("bytes 0-%d/%d", end-start, lyingSize), int(end-start+1), data[:end-start+1])
		}},
		{name: "Content-Range longer than asked", lie: func(w http.ResponseWriter, etag string, start, end int64) {
			e := end + 100 // past the end of the file, when the asked span ends there
			body := append(bytes.Clone(data[start:min(e+1, lyingSize)]), make([]byte, max(0, e+1-lyingSize))...)
			answer206(w, etag, fmt.Sprintf("bytes %d-%d/%d", start, e, lyingSize), len(body), body)
		}},
		{name: "Content-Range of another total lyingSize", is: remote.ErrChanged, lie: func(w http.ResponseWriter, etag string, start, end int64) {
			answer206(w, etag, fmt.Sprintf("bytes %d-%d/%d", start, end, lyingSize*2), int(end-start+1), data[start:end+1])
		}},
		{name: "Content-Length disagrees with Content-Range", lie: func(w http.ResponseWriter, etag string, start, end int64) {
			body := append(bytes.Clone(data[start:end+1]), "ten bytes!"...)
			answer206(w, etag, fmt.Sprintf("bytes %d-%d/%d", start, end, lyingSize), len(body), body)
		}},
		{name: "short body, connection dropped", lie: func(w http.ResponseWriter, etag string, start, end int64) {
			answer206(w, etag, fmt.Sprintf("bytes %d-%d/%d", start, end, lyingSize), int(end-start+1), data[start:start+(end-start)/2])
		}},
		{name: "short body, chunked and cleanly ended", lie: func(w http.ResponseWriter, etag string, start, end int64) {
			answer206(w, etag, fmt.Sprintf("bytes %d-%d/%d", start, end, lyingSize), -1, data[start:start+(end-start)/2])
		}},
		{name: "long body, chunked", lie: func(w http.ResponseWriter, etag string, start, end int64) {
			answer206(w, etag, fmt.Sprintf("bytes %d-%d/%d", start, end, lyingSize), -1, append(bytes.Clone(data[start:end+1]), "trailing junk"...))
		}},
		{name: "whole file with 206", lie: func(w http.ResponseWriter, etag string, start, end int64) {
			body := data
			if start == 0 && end == lyingSize-1 { // the whole file was asked: then twice
				body = append(bytes.Clone(data), data...)
			}
			answer206(w, etag, fmt.Sprintf("bytes %d-%d/%d", start, end, lyingSize), -1, body)
		}},
	}
}

// runLyingServer serves data through tt's lie, times times and then the
// truth (0: always the lie), and reads it whole and in random pieces at
// once: the bytes read are right, and only the truth is committed.
func runLyingServer(t *testing.T, tt lyingCase, times int, data []byte) {
	cfg := StreamConfig{ChunkSize: lyingChunk, Parallel: 4}
	if times > 0 {
		cfg.RetryWindow = 10 * time.Second
	}
	srv, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, cfg)
	ref := refFor(t, st, "m", "f")
	var lies atomic.Int32
	srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
		start, end, ok := parseRange(r)
		if !ok || r.Method != http.MethodGet || (times > 0 && lies.Load() >= int32(times)) {
			serve(w, r)
			return
		}
		lies.Add(1)
		tt.lie(w, ref.Meta.ETag, start, end)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := s.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	n, err, randomErr := readWholeAndRandom(t, ctx, h, data)
	if times > 0 {
		if err != nil || n != lyingSize || randomErr != nil {
			t.Fatalf("after %d lies the server told the truth, yet: %d bytes, %v; random reader %v", times, n, err, randomErr)
		}
		testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	} else {
		if err == nil {
			t.Fatalf("read %d bytes from a server that always lies", n)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("err %v, want %v", err, tt.is)
		}
	}
	waitIdle(t, s)
	checkObjects(t, s, data)
	if times == 0 {
		if o := objects(t, s); len(o) != 0 {
			t.Errorf("committed from a lying server: %v", o)
		}
		if used := s.Stats().UsedBytes; used != 0 {
			t.Errorf("Usage %d after a failed download", used)
		}
	}
}

// readWholeAndRandom reads h whole from 0 and, at once, 20 pieces at
// random offsets; it fails the test if either got bytes other than data's.
// It returns the whole read's count and error and the random reader's
// error.
func readWholeAndRandom(t *testing.T, ctx context.Context, h cache.Handle, data []byte) (n int, err, randomErr error) {
	t.Helper()
	size := int64(len(data))
	var wg sync.WaitGroup
	var wrong atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		rnd := rand.New(rand.NewPCG(1, 2))
		for range 20 {
			off := rnd.Int64N(size)
			buf := make([]byte, 1+rnd.IntN(20000))
			n, err := h.ReadAt(ctx, buf, off)
			if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				wrong.Add(1)
			}
			if err != nil && err != io.EOF {
				randomErr = err
				return
			}
		}
	}()
	buf := make([]byte, size)
	n, err = h.ReadAt(ctx, buf, 0)
	wg.Wait()
	if n > 0 && !bytes.Equal(buf[:n], data[:n]) {
		t.Fatalf("the reader got wrong bytes (err %v)", err)
	}
	if wrong.Load() > 0 {
		t.Fatalf("the random reader got wrong bytes %d times", wrong.Load())
	}
	return n, err, randomErr
}

// changedSize and changedChunk are TestStreamContentChanged's file and
// chunk.
const changedSize, changedChunk = 1 << 20, 64 << 10

// changedCase is a row of TestStreamContentChanged: a server, and whether
// it ignores If-Range (then it answers ranges from the new version).
type changedCase struct {
	name          string
	opt           remotetest.Options
	ignoreIfRange bool
	// bug, when set, names the bug the engine once had that a failure of
	// the case means is back; the failure is reported with it.
	bug string
}

// TestStreamContentChanged: the file is replaced on the server (same size)
// right after the first chunk was served. The reader gets ErrChanged, the
// catalog is told, and nothing mixing the two versions is committed.
func TestStreamContentChanged(t *testing.T) {
	old, updated := blob(31, changedSize), blob(32, changedSize)
	tests := []changedCase{
		{name: "ETag, server honours If-Range"},
		{name: "ETag, server ignores If-Range", ignoreIfRange: true},
		{name: "Last-Modified only, server honours If-Range", opt: remotetest.Options{NoETag: true}},
		{name: "Last-Modified only, server ignores If-Range", opt: remotetest.Options{NoETag: true}, ignoreIfRange: true,
			bug: "regression: remote/ranges.go GetRange once accepted a 206 whose Last-Modified differed from the version asked (it compared ETags only), so chunks of two versions were committed as one file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runContentChanged(t, tt, old, updated) })
	}
}

// runContentChanged reads old while the server changes it to updated after
// the first chunk; the read fails with ErrChanged and nothing is kept;
// then the new version, asked for with its own metadata, is whole.
func runContentChanged(t *testing.T, tt changedCase, old, updated []byte) {
	srv, st, s := fixture(t, map[string][]byte{"m/f": old}, tt.opt, StreamConfig{ChunkSize: changedChunk, Parallel: 4, RetryWindow: 5 * time.Second})
	var told atomic.Int32
	var toldRef atomic.Value
	s.OnChange(func(r cache.Ref) { told.Add(1); toldRef.Store(r) })
	ref := refFor(t, st, "m", "f")
	served := changeAfterFirstChunk(srv, ref, tt.ignoreIfRange, old, updated)

	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, changedSize)
	n, rerr := h.ReadAt(testutil.Ctx(t), buf, 0)
	h.Close()
	waitIdle(t, s)

	fails := changedReadFailures(t, s, ref, buf[:n], rerr, old, updated)
	if rerr != nil {
		testutil.WaitFor(t, "OnChange", func() bool { return told.Load() > 0 })
		if r, _ := toldRef.Load().(cache.Ref); r.Meta != ref.Meta || r.Name != "f" {
			fails = append(fails, fmt.Sprintf("OnChange told %+v", r))
		}
	}
	if len(fails) > 0 {
		if tt.bug != "" {
			t.Errorf("%s:\n%s", tt.bug, strings.Join(fails, "\n"))
		}
		t.Fatal(strings.Join(fails, "\n"))
	}
	if used := s.Stats().UsedBytes; used != 0 {
		t.Errorf("Usage %d after a failed download", used)
	}
	if n := served.Load(); n > int32(changedSize/changedChunk)+4 {
		t.Errorf("%d GETs: a changed file must fail the download, not be retried", n)
	}

	// The new version, asked for with its own metadata, is whole.
	srv.Intercept("m/f", nil)
	ref2 := refFor(t, st, "m", "f")
	if ref2.Meta == ref.Meta {
		t.Fatal("Stat does not show the change")
	}
	if !bytes.Equal(openRead(t, s, ref2), updated) {
		t.Fatal("the new version reads other bytes")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref2) })
	checkObjects(t, s, updated)
}

// changeAfterFirstChunk makes srv answer the first GET of m/f (ref) with
// old cut after one chunk, changing the file to updated (an hour newer)
// meanwhile; later GETs meet the new version, with If-Range stripped when
// ignoreIfRange. It returns the count of GETs served.
func changeAfterFirstChunk(srv *remotetest.Server, ref cache.Ref, ignoreIfRange bool, old, updated []byte) *atomic.Int32 {
	oldMod := ref.Meta.ModTime()
	var first atomic.Bool
	var served atomic.Int32
	srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
		if r.Method != http.MethodGet {
			serve(w, r)
			return
		}
		served.Add(1)
		if first.CompareAndSwap(false, true) {
			// The file changes now; this answer is still the old one.
			srv.SetFile("m/f", remotetest.File{Data: updated, ModTime: oldMod.Add(time.Hour)})
			// It is cut after one chunk: the rest must come from
			// another GET, which meets the new version.
			if ref.Meta.ETag != "" {
				w.Header().Set("ETag", ref.Meta.ETag)
			}
			http.ServeContent(&cutWriter{ResponseWriter: w, left: changedChunk}, r, "", oldMod, bytes.NewReader(old))
			return
		}
		if ignoreIfRange {
			r.Header.Del("If-Range")
		}
		serve(w, r)
	})
	return &served
}

// changedReadFailures says what is wrong after a read of old that got got
// and rerr while the file changed to updated: the read must fail with
// ErrChanged, having given only old's bytes, and no object may mix the
// versions or be the old one under ref.
func changedReadFailures(t *testing.T, s *StreamContent, ref cache.Ref, got []byte, rerr error, old, updated []byte) []string {
	t.Helper()
	var fails []string
	if rerr == nil && !bytes.Equal(got, old) {
		fails = append(fails, fmt.Sprintf("read succeeded with bytes of neither version alone (old %v, new %v)", bytes.Equal(got, old), bytes.Equal(got, updated)))
	}
	if len(got) > 0 && !bytes.Equal(got, old[:len(got)]) {
		fails = append(fails, "the reader got bytes of the new version in an old-version read")
	}
	if rerr != nil && !errors.Is(rerr, remote.ErrChanged) {
		fails = append(fails, fmt.Sprintf("read error %v, want ErrChanged", rerr))
	}
	if rerr == nil {
		fails = append(fails, "read of a file changed mid-download succeeded")
	}
	for p := range objects(t, s) {
		data, _ := os.ReadFile(p)
		if sha(data) != sha(old) && sha(data) != sha(updated) {
			fails = append(fails, fmt.Sprintf("committed a mix of two versions: %s", filepath.Base(p)))
		}
	}
	if committed(s, ref) {
		fails = append(fails, "the old version was committed though the server changed it")
	}
	return fails
}

// twoReadersSize and twoReadersChunk are TestStreamTwoReaders' file and
// chunk.
const twoReadersSize, twoReadersChunk = 1 << 20, 64 << 10

// TestStreamTwoReaders: a sequential reader, a random reader and a splice
// reader (Read + pread on the fd) of one file share one download: streams
// that each start at a chunk no other stream started at, never more GETs
// than chunks, and all get the right bytes.
func TestStreamTwoReaders(t *testing.T) {
	data := blob(41, twoReadersSize)
	srv, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: twoReadersChunk, Parallel: 4})
	srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
		// A slow link, so that the readers overlap the download.
		serve(&slowWriter{ResponseWriter: w, piece: 16 << 10, pause: 3 * time.Millisecond}, r)
	})
	ref := refFor(t, st, "m", "f")
	ctx := testutil.Ctx(t)

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	reader := func(name string, read func(ctx context.Context, h cache.Handle, data []byte) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := s.Open(ctx, ref)
			if err != nil {
				errs <- err
				return
			}
			defer h.Close()
			if err := read(ctx, h, data); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	reader("sequential", readSequentially)
	reader("random", readRandomly)
	reader("splice", readSpliced)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkOneDownload(t, s, srv, ref, data, twoReadersChunk, twoReadersSize/twoReadersChunk)
}

// bytesAt says whether buf is data's bytes at off.
func bytesAt(data, buf []byte, off int64) error {
	if !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
		return fmt.Errorf("wrong bytes at %d+%d", off, len(buf))
	}
	return nil
}

// readSequentially reads h (data) from start to end in 16 KiB pieces.
func readSequentially(ctx context.Context, h cache.Handle, data []byte) error {
	size := int64(len(data))
	buf := make([]byte, 16<<10)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := h.ReadAt(ctx, buf, off)
		if err != nil && err != io.EOF {
			return err
		}
		if err := bytesAt(data, buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// readRandomly reads h (data) in 200 pieces of random offset and length;
// none short but at the end.
func readRandomly(ctx context.Context, h cache.Handle, data []byte) error {
	size := int64(len(data))
	rnd := rand.New(rand.NewPCG(4, 1))
	for range 200 {
		off := rnd.Int64N(size)
		buf := make([]byte, 1+rnd.IntN(100<<10))
		n, err := h.ReadAt(ctx, buf, off)
		if err != nil && err != io.EOF {
			return err
		}
		if off+int64(len(buf)) <= size && n != len(buf) {
			return fmt.Errorf("short read at %d: %d of %d, %v", off, n, len(buf), err)
		}
		if err := bytesAt(data, buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// readSpliced reads h (data) a chunk at a time in random order, as the
// FUSE side does: one Read, then either the bytes or a pread of the cache
// file's descriptor (what a splice would send).
func readSpliced(ctx context.Context, h cache.Handle, data []byte) error {
	size := int64(len(data))
	for _, k := range rand.New(rand.NewPCG(5, 1)).Perm(int(size / twoReadersChunk)) {
		off := int64(k)*twoReadersChunk + 100
		buf := make([]byte, twoReadersChunk)
		r, err := h.Read(ctx, buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		// In place (Done set), the bytes are in the engine's buffer,
		// not in buf.
		n := copy(buf, r.Data)
		if r.Done != nil {
			r.Done()
		}
		if r.Fd >= 0 {
			if n, err = syscall.Pread(r.Fd, buf[:r.N], r.Off); err != nil {
				return err
			}
		}
		if off+int64(len(buf)) <= size && n != len(buf) {
			return fmt.Errorf("pread at %d: %d bytes", off, n)
		}
		if err := bytesAt(data, buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// checkOneDownload waits for ref's download to commit, then asserts the
// cache holds data alone and the store was read by one download of m/f
// (checkStreams).
func checkOneDownload(t *testing.T, s *StreamContent, srv *remotetest.Server, ref cache.Ref, data []byte, chunk, chunks int64) {
	t.Helper()
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	checkObjects(t, s, data)
	checkStreams(t, srv, "m/f", chunk, chunks)
}

// checkStreams asserts the GETs of path were ranged streams, each starting
// at a chunk boundary no other started at (nothing fetched twice), at most
// one per chunk.
func checkStreams(t *testing.T, srv *remotetest.Server, path string, chunk, chunks int64) {
	t.Helper()
	starts := map[int64]int{}
	gets := 0
	for _, r := range srv.Requests(path) {
		if r.Method != http.MethodGet {
			continue
		}
		gets++
		start, _, ok := parseRange(&http.Request{Header: http.Header{"Range": {r.Range}}})
		if !ok || start%chunk != 0 || r.Status != http.StatusPartialContent {
			t.Errorf("GET %q answered %d: want a 206 stream from a chunk boundary", r.Range, r.Status)
		}
		starts[start]++
	}
	for start, n := range starts {
		if n > 1 {
			t.Errorf("a stream from chunk %d was started %d times", start/chunk, n)
		}
	}
	if gets == 0 || int64(gets) > chunks {
		t.Errorf("%d GETs for %d chunks", gets, chunks)
	}
}

// chunkHolder holds the ranged GETs of a file the test has not let through
// (by chunk index), counting those it holds.
type chunkHolder struct {
	chunk   int64
	mu      sync.Mutex
	allowed map[int64]bool
	all     bool
	changed chan struct{}
	held    atomic.Int32
}

func newChunkHolder(chunk int64, allowed ...int64) *chunkHolder {
	c := &chunkHolder{chunk: chunk, allowed: map[int64]bool{}, changed: make(chan struct{})}
	for _, k := range allowed {
		c.allowed[k] = true
	}
	return c
}

func (c *chunkHolder) allow(k int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.allowed[k] = true
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *chunkHolder) allowAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.all {
		c.all = true
		close(c.changed)
	}
}

func (c *chunkHolder) intercept(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
	start, _, ok := parseRange(r)
	if ok {
		k := start / c.chunk
		c.held.Add(1)
		for {
			c.mu.Lock()
			pass, ch := c.all || c.allowed[k], c.changed
			c.mu.Unlock()
			if pass {
				break
			}
			select {
			case <-ch:
			case <-r.Context().Done():
				c.held.Add(-1)
				return
			}
		}
		c.held.Add(-1)
	}
	serve(w, r)
}

// storeWithTimeouts is a Store whose held requests do not time out during
// the test.
func storeWithTimeouts(t *testing.T, url string) *cache.Store {
	t.Helper()
	opt := storetest.FastRemote
	opt.HeaderTimeout = 20 * time.Second
	opt.StallTimeout = 20 * time.Second
	rs, err := remote.NewStore(url, opt)
	if err != nil {
		t.Fatal(err)
	}
	return &cache.Store{Name: "test", Remote: rs}
}

// farSize and farChunk are TestStreamReaderFarAhead's file and chunk;
// farLast is its last chunk.
const (
	farSize, farChunk = 1 << 20, 64 << 10
	farLast           = farSize/farChunk - 1
)

// TestStreamReaderFarAhead: a reader of the last chunk is answered while
// the chunks between the download's front and it are still being held by
// the server: its chunk is fetched first. (It stops one byte short of the
// end: the file's last byte waits for the whole file's hash, verify.go.)
func TestStreamReaderFarAhead(t *testing.T) {
	data := blob(51, farSize)
	t.Run("waiting before the workers claim", func(t *testing.T) { farAheadOfHeldChunks(t, data) })
	t.Run("every stream stalled", func(t *testing.T) { farAheadOfStalledStream(t, data) })
}

// readFarTail reads the 1000 bytes before data's last byte through h.
func readFarTail(ctx context.Context, h cache.Handle, data []byte) error {
	buf := make([]byte, 1000)
	n, err := h.ReadAt(ctx, buf, farSize-1001)
	if err != nil {
		return err
	}
	if n != 1000 || !bytes.Equal(buf, data[farSize-1001:farSize-1]) {
		return errors.New("wrong tail bytes")
	}
	return nil
}

// farAheadOfHeldChunks: the server holds every chunk but the last; a
// reader of the tail, waiting before the workers claim, is answered
// without the chunks between.
func farAheadOfHeldChunks(t *testing.T, data []byte) {
	srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
	hold := newChunkHolder(farChunk, farLast)
	t.Cleanup(hold.allowAll)
	// A slow link: once let through, the stream from chunk 0 goes on
	// into the chunks after it in the same GET, and must not reach the
	// tail's neighbours before the tail reader is answered.
	srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
		hold.intercept(&slowWriter{ResponseWriter: w, piece: 16 << 10, pause: 20 * time.Millisecond}, r, serve)
	})
	st := storeWithTimeouts(t, srv.URL)
	s := newStream(t, StreamConfig{ChunkSize: farChunk, Parallel: 4})
	ref := refFor(t, st, "m", "f")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	d := h.(*streamHandle).d
	done := make(chan error, 1)
	var answered atomic.Bool
	go func() {
		err := readFarTail(testutil.Ctx(t), h, data)
		answered.Store(true)
		done <- err
	}()
	testutil.WaitFor(t, "the reader to wait for the last chunk", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.t.c[farLast].waiting > 0 || answered.Load()
	})
	hold.allow(0) // the first GET shows that the server honours Range
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader far ahead was not answered while the chunks before it were held")
	}
	d.mu.Lock()
	between := d.t.rangeOnDisk(1, farLast-1)
	d.mu.Unlock()
	if between {
		t.Fatal("the chunks before the reader were downloaded: the test proves nothing")
	}
	hold.allowAll()
	if !bytes.Equal(storetest.ReadAll(t, h), data) {
		t.Fatal("full read differs")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	checkObjects(t, s, data)
}

// farAheadOfStalledStream: the first stream's body stops after its first
// chunk and waits; a reader of the tail must get a stream of its own.
func farAheadOfStalledStream(t *testing.T, data []byte) {
	srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	var stalled atomic.Int32
	srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
		if start, _, ok := parseRange(r); ok && start == 0 {
			serve(&stallWriter{ResponseWriter: w, left: farChunk, release: release, stalled: &stalled}, r)
			return
		}
		serve(w, r)
	})
	st := storeWithTimeouts(t, srv.URL)
	s := newStream(t, StreamConfig{ChunkSize: farChunk, Parallel: 2})
	ref := refFor(t, st, "m", "f")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.ReadAt(testutil.Ctx(t), make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the first stream to stall", func() bool { return stalled.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := readFarTail(ctx, h, data); err != nil {
		t.Fatalf("a reader far ahead of a stalled stream: %v", err)
	}
	once.Do(func() { close(release) })
	if !bytes.Equal(storetest.ReadAll(t, h), data) {
		t.Fatal("full read differs")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	checkObjects(t, s, data)
}

// stallWriter sends left body bytes, then waits for release.
type stallWriter struct {
	http.ResponseWriter
	left    int
	release chan struct{}
	stalled *atomic.Int32
}

func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *stallWriter) Write(p []byte) (int, error) {
	if w.left >= 0 && len(p) > w.left {
		n, _ := w.ResponseWriter.Write(p[:w.left])
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		w.left = -1
		w.stalled.Add(1)
		<-w.release
		m, err := w.ResponseWriter.Write(p[n:])
		return n + m, err
	}
	if w.left >= 0 {
		w.left -= len(p)
	}
	return w.ResponseWriter.Write(p)
}

// TestStreamRangelessServer: a server that ignores Range is read with one
// stream from offset 0, whatever offsets the readers ask first; a stream
// cut short is restarted from 0 and never places bytes elsewhere.
func TestStreamRangelessServer(t *testing.T) {
	const size, chunk = 1 << 20, 64 << 10
	data := blob(61, size)
	for _, cut := range []bool{false, true} {
		name := "one stream"
		if cut {
			name = "first stream cut short"
		}
		t.Run(name, func(t *testing.T) {
			srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{NoRange: true})
			var gets atomic.Int32
			srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
				if r.Method == http.MethodGet && gets.Add(1) == 1 && cut {
					w = &cutWriter{ResponseWriter: w, left: 300 << 10}
				}
				serve(&slowWriter{ResponseWriter: w, piece: 32 << 10, pause: 2 * time.Millisecond}, r)
			})
			st := newTestStore(t, srv.URL)
			s := newStream(t, StreamConfig{ChunkSize: chunk, Parallel: 4, RetryWindow: 5 * time.Second})
			ref := refFor(t, st, "m", "f")
			ctx := testutil.Ctx(t)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for _, off := range []int64{size - 1000, 900 << 10, 700 << 10, 1, size / 2, 0} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					h, err := s.Open(ctx, ref)
					if err != nil {
						errs <- err
						return
					}
					defer h.Close()
					buf := make([]byte, 1000)
					n, err := h.ReadAt(ctx, buf, off)
					if err != nil || n != 1000 || !bytes.Equal(buf, data[off:off+1000]) {
						errs <- fmt.Errorf("read at %d: %d bytes, %v (right bytes: %v)", off, n, err, bytes.Equal(buf[:n], data[off:off+int64(n)]))
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if !bytes.Equal(openRead(t, s, ref), data) {
				t.Fatal("full read differs")
			}
			testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
			checkObjects(t, s, data)
			want := 1
			if cut {
				want = 2
			}
			// Counted as they arrive: the server logs a request only when its
			// handler returns, which for the cut one can be later.
			if n := int(gets.Load()); n != want {
				t.Errorf("%d GETs of the file, want %d", n, want)
			}
			for _, r := range srv.Requests("m/f") {
				if r.Method == http.MethodGet && r.Status != http.StatusOK {
					t.Errorf("GET answered %d", r.Status)
				}
			}
			if st.Remote.RangeSupport() != remote.RangeNo {
				t.Errorf("RangeSupport %d, want RangeNo", st.Remote.RangeSupport())
			}
		})
	}
}

// TestStreamInterruptedReader: a reader whose context ends returns at
// once; the download goes on without it, is committed, and a reader that
// comes back joins it without another GET.
func TestStreamInterruptedReader(t *testing.T) {
	const size, chunk = 1 << 20, 64 << 10
	data := blob(71, size)
	srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
	hold := newChunkHolder(chunk)
	t.Cleanup(hold.allowAll)
	srv.Intercept("m/f", hold.intercept)
	st := storeWithTimeouts(t, srv.URL)
	s := newStream(t, StreamConfig{ChunkSize: chunk, Parallel: 4})
	ref := refFor(t, st, "m", "f")
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.ReadAt(ctx, make([]byte, 100<<10), 500<<10)
		errc <- err
	}()
	testutil.WaitFor(t, "the download to start", func() bool { return hold.held.Load() > 0 })
	cancel()
	start := time.Now()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("interrupted read: %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("interrupted read took %v to return", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("interrupted read did not return")
	}
	// Also Read, as the FUSE side waits.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if r, err := h.Read(ctx2, make([]byte, 1000), 900<<10); !errors.Is(err, context.DeadlineExceeded) || r.Fd >= 0 {
		t.Errorf("Read past its deadline: %+v, %v", r, err)
	}
	h.Close()
	if committed(s, ref) {
		t.Fatal("committed while the server holds every chunk")
	}
	hold.allowAll()
	// Back while it downloads, or after: one download in all.
	if !bytes.Equal(openRead(t, s, ref), data) {
		t.Fatal("reopened read differs")
	}
	// One download in all: no chunk fetched twice.
	checkOneDownload(t, s, srv, ref, data, chunk, size/chunk)
}

// fullDiskSize and fullDiskChunk are TestStreamFullDisk's files and chunk.
const fullDiskSize, fullDiskChunk = 300 << 10, 64 << 10

// TestStreamFullDisk: when the cache's filesystem has no room (statfs
// below the floor), Open still works and reads go straight to the store,
// with the right bytes; with room made by evicting unused files, the file
// is cached.
func TestStreamFullDisk(t *testing.T) {
	data := blob(81, fullDiskSize)
	for _, noRange := range []bool{false, true} {
		t.Run(fmt.Sprintf("no room, NoRange %v", noRange), func(t *testing.T) {
			_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{NoRange: noRange}, StreamConfig{ChunkSize: fullDiskChunk, MinFree: new(int64(1 << 20))})
			var calls atomic.Int32
			s.statfs = func(string) (int64, error) { calls.Add(1); return 1<<20 + fullDiskSize - 1, nil } // one byte short
			ref := refFor(t, st, "m", "f")
			h, err := s.Open(testutil.Ctx(t), ref)
			if err != nil {
				t.Fatal(err)
			}
			checkUncached(t, h, data)
			h.Close()
			if calls.Load() == 0 {
				t.Error("statfs hook never called")
			}
			if o, p := objects(t, s), partials(t, s); len(o)+len(p) != 0 {
				t.Errorf("stored with no room: %v %v", o, p)
			}
			if used := s.Stats().UsedBytes; used != 0 {
				t.Errorf("Usage %d", used)
			}
			// Room again: the next open caches.
			s.statfs = func(string) (int64, error) { return 1<<20 + fullDiskSize, nil }
			if !bytes.Equal(openRead(t, s, ref), data) {
				t.Fatal("cached read differs")
			}
			testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
			checkObjects(t, s, data)
		})
	}

	t.Run("statfs fails", func(t *testing.T) {
		_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: fullDiskChunk})
		s.statfs = func(string) (int64, error) { return 0, syscall.EIO }
		ref := refFor(t, st, "m", "f")
		if !bytes.Equal(openRead(t, s, ref), data) {
			t.Fatal("read differs")
		}
	})

	t.Run("evicts unused files for room, never open ones", func(t *testing.T) { fullDiskEviction(t, data) })
}

// checkUncached checks that h reads data straight from the store into
// memory, with no cache file, at any offset and over the end.
func checkUncached(t *testing.T, h cache.Handle, data []byte) {
	t.Helper()
	if !uncached(h) {
		t.Fatalf("handle %T, want a read from the store into memory, no cache file", h)
	}
	if h.Fd() >= 0 || h.Size() != fullDiskSize {
		t.Errorf("Fd %d Size %d", h.Fd(), h.Size())
	}
	if r, err := h.Read(testutil.Ctx(t), make([]byte, 10), 0); r.Fd >= 0 || err != nil {
		t.Errorf("Read: %+v, %v; want bytes, no descriptor", r, err)
	}
	for _, c := range []struct{ off, n int64 }{{fullDiskSize - 1000, 1000}, {0, 10}, {fullDiskChunk - 3, 100}, {5, fullDiskSize - 5}, {0, fullDiskSize}} {
		buf := make([]byte, c.n)
		n, err := h.ReadAt(testutil.Ctx(t), buf, c.off)
		if err != nil || int64(n) != c.n || !bytes.Equal(buf, data[c.off:c.off+c.n]) {
			t.Errorf("ReadAt(%d, %d): %d bytes, %v", c.off, c.n, n, err)
		}
	}
	buf := make([]byte, 100)
	n, err := h.ReadAt(testutil.Ctx(t), buf, fullDiskSize-10)
	if n != 10 || err != io.EOF || !bytes.Equal(buf[:10], data[fullDiskSize-10:]) {
		t.Errorf("read over the end: %d, %v", n, err)
	}
	if n, err := h.ReadAt(testutil.Ctx(t), buf, fullDiskSize); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
}

// fullDiskEviction: on a disk with room for one and a half files, a file
// read while another is open is read directly (the open one is not
// evicted); once it is closed, the next file evicts it and is cached. data
// is b's content.
func fullDiskEviction(t *testing.T, data []byte) {
	files := map[string][]byte{"m/a": blob(82, fullDiskSize), "m/b": data, "m/c": blob(83, fullDiskSize)}
	_, st, s := fixture(t, files, remotetest.Options{}, StreamConfig{ChunkSize: fullDiskChunk})
	// A disk with room for one and a half files.
	dir := filepath.Dir(s.objects)
	s.statfs = func(string) (int64, error) { return fullDiskSize*3/2 - duBytes(dir), nil }
	refA, refB, refC := refFor(t, st, "m", "a"), refFor(t, st, "m", "b"), refFor(t, st, "m", "c")
	if !bytes.Equal(openRead(t, s, refA), files["m/a"]) {
		t.Fatal("a differs")
	}
	testutil.WaitFor(t, "a committed", func() bool { return committed(s, refA) })

	// a is open: b cannot evict it and is read directly.
	hA, err := s.Open(testutil.Ctx(t), refA)
	if err != nil {
		t.Fatal(err)
	}
	hB, err := s.Open(testutil.Ctx(t), refB)
	if err != nil {
		t.Fatal(err)
	}
	checkUncached(t, hB, data)
	hB.Close()
	if !committed(s, refA) || !bytes.Equal(storetest.ReadAll(t, hA), files["m/a"]) {
		t.Fatal("the open file a was evicted for disk space")
	}
	hA.Close()

	// a is closed: c evicts it and is cached.
	if !bytes.Equal(openRead(t, s, refC), files["m/c"]) {
		t.Fatal("c differs")
	}
	testutil.WaitFor(t, "c committed", func() bool { return committed(s, refC) })
	if committed(s, refA) {
		t.Error("a was kept though c needed its room")
	}
	checkObjects(t, s, files["m/c"])
	if n := duBytes(dir); n > fullDiskSize*3/2 {
		t.Errorf("%d bytes on a disk of %d", n, fullDiskSize*3/2)
	}
}

// duBytes is the bytes of the regular files below dir (the fake disk's use).
func duBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, de os.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			if info, err := de.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// TestStreamLargerThanCache: a file larger than MaxBytes is read straight
// from the store in pieces, with Range or from a server without it.
func TestStreamLargerThanCache(t *testing.T) {
	const size = 300 << 10
	data := blob(91, size)
	for _, noRange := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoRange %v", noRange), func(t *testing.T) {
			_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{NoRange: noRange}, StreamConfig{ChunkSize: 64 << 10, MaxBytes: 100 << 10})
			ref := refFor(t, st, "m", "f")
			h, err := s.Open(testutil.Ctx(t), ref)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if !uncached(h) {
				t.Fatalf("handle %T, want one reading the store into memory", h)
			}
			// Backwards, in pieces that cross every boundary.
			buf := make([]byte, 48<<10+7)
			for off := int64(size) - int64(len(buf)); off > -int64(len(buf)); off -= int64(len(buf)) {
				o := max(off, 0)
				b := buf[:min(int64(len(buf)), off+int64(len(buf))-o)]
				n, err := h.ReadAt(testutil.Ctx(t), b, o)
				if err != nil || n != len(b) || !bytes.Equal(b, data[o:o+int64(n)]) {
					t.Fatalf("ReadAt(%d, %d): %d, %v", o, len(b), n, err)
				}
			}
			if o, p := objects(t, s), partials(t, s); len(o)+len(p) != 0 {
				t.Errorf("a file larger than the cache was stored: %v %v", o, p)
			}
		})
	}
}

// evictSize and evictMaxBytes are TestStreamEvictionKeepsOpenFiles' files
// and cache: room for one file.
const evictSize, evictMaxBytes = 600 << 10, 1 << 20

// TestStreamEvictionKeepsOpenFiles: under a small MaxBytes, files in use
// (open complete files, downloads in progress, handles kept across the
// commit) are never evicted: a file with no room is read directly instead.
func TestStreamEvictionKeepsOpenFiles(t *testing.T) {
	files := map[string][]byte{"m/a": blob(101, evictSize), "m/b": blob(102, evictSize), "m/c": blob(103, evictSize)}
	srv, st, s := fixture(t, files, remotetest.Options{}, StreamConfig{ChunkSize: 64 << 10, MaxBytes: evictMaxBytes})
	e := &evictionScenario{t: t, ctx: testutil.Ctx(t), s: s, files: files, ref: map[string]cache.Ref{}}
	for _, n := range []string{"a", "b", "c"} {
		e.ref[n] = refFor(t, st, "m", n)
	}

	// a complete and open; b has no room.
	hA := e.open("a")
	e.read("a", hA)
	testutil.WaitFor(t, "a committed", func() bool { return committed(s, e.ref["a"]) })
	hB := e.open("b")
	if !uncached(hB) {
		t.Fatalf("b: %T, want a direct read (a is open and fills the cache)", hB)
	}
	e.read("b", hB)
	hB.Close()
	if !committed(s, e.ref["a"]) {
		t.Fatal("the open a was evicted")
	}
	e.read("a", hA)
	e.bound("a open")
	hA.Close()

	hB = e.downloadInUse(srv)
	e.handleAfterCommit(hB)

	// Nothing open: c evicts b.
	hC := e.open("c")
	e.read("c", hC)
	hC.Close()
	testutil.WaitFor(t, "c committed", func() bool { return committed(s, e.ref["c"]) })
	if committed(s, e.ref["b"]) {
		t.Error("b kept though c needed its room")
	}
	e.bound("at the end")
	names := []string{}
	for p := range objects(t, s) {
		names = append(names, parseObjectName(filepath.Base(p)).key)
	}
	if !slices.Equal(names, []string{e.ref["c"].Key()}) {
		t.Errorf("objects %v, want only c", names)
	}
}

// evictionScenario is TestStreamEvictionKeepsOpenFiles' cache, its files
// m/a, m/b and m/c and their refs (by short name).
type evictionScenario struct {
	t     *testing.T
	ctx   context.Context
	s     *StreamContent
	files map[string][]byte
	ref   map[string]cache.Ref
}

// bound checks the cache within evictMaxBytes, in its accounting and on
// disk, and its objects whole.
func (e *evictionScenario) bound(when string) {
	e.t.Helper()
	if used := e.s.Stats().UsedBytes; used > evictMaxBytes {
		e.t.Errorf("%s: Usage %d > %d", when, used, evictMaxBytes)
	}
	if n := sumSizes(objects(e.t, e.s)) + sumSizes(partials(e.t, e.s)); n > evictMaxBytes {
		e.t.Errorf("%s: %d bytes on disk > %d", when, n, evictMaxBytes)
	}
	checkObjects(e.t, e.s, e.files["m/a"], e.files["m/b"], e.files["m/c"])
}

func (e *evictionScenario) open(name string) cache.Handle {
	e.t.Helper()
	h, err := e.s.Open(e.ctx, e.ref[name])
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// read reads h whole and checks it is name's file.
func (e *evictionScenario) read(name string, h cache.Handle) {
	e.t.Helper()
	if !bytes.Equal(storetest.ReadAll(e.t, h), e.files["m/"+name]) {
		e.t.Fatalf("%s: other bytes", name)
	}
}

// downloadInUse: a closed, b evicts it. b's download is held: it is in use
// too, and c gets no room. It returns b's handle, open, b committed.
func (e *evictionScenario) downloadInUse(srv *remotetest.Server) cache.Handle {
	t := e.t
	hold := newChunkHolder(64 << 10)
	t.Cleanup(hold.allowAll)
	srv.Intercept("m/b", hold.intercept)
	hB := e.open("b")
	if uncached(hB) {
		t.Fatal("b read directly though a is closed and could be evicted")
	}
	if committed(e.s, e.ref["a"]) {
		t.Fatal("a kept though b needed its room")
	}
	hC := e.open("c")
	if !uncached(hC) {
		t.Fatalf("c: %T, want direct while b downloads", hC)
	}
	e.read("c", hC)
	hC.Close()
	e.bound("b downloading")
	hold.allowAll()
	e.read("b", hB)
	testutil.WaitFor(t, "b committed", func() bool { return committed(e.s, e.ref["b"]) })
	return hB
}

// handleAfterCommit: b committed but its handle hB, opened during the
// download, is still open: c must not evict it. It closes hB.
func (e *evictionScenario) handleAfterCommit(hB cache.Handle) {
	t := e.t
	hC := e.open("c")
	if !uncached(hC) {
		t.Fatalf("c: %T, want direct while b's handle is open", hC)
	}
	e.read("c", hC)
	hC.Close()
	if !committed(e.s, e.ref["b"]) {
		t.Fatal("b evicted while its handle is open")
	}
	e.read("b", hB)
	if hB.Fd() < 0 {
		t.Error("b complete but its handle has no fd")
	}
	hB.Close()
	e.bound("b open after commit")
}

// TestStreamEvictsOnlyWhenItMakesRoom: a file that will be read directly
// anyway (it cannot fit even with every unused file gone) must not cost the
// cache its unused files.
func TestStreamEvictsOnlyWhenItMakesRoom(t *testing.T) {
	const size = 100 << 10
	files := map[string][]byte{"m/a": blob(111, 6*size), "m/b": blob(112, 3*size), "m/c": blob(113, 6*size), "m/big": blob(114, 30*size)}
	bug := func(t *testing.T, file, what string) {
		t.Helper()
		t.Errorf("%s evicted the least recently used unused files although evicting all of them could not make room: "+
			"the file is then read directly and the evicted ones (here %s) were lost for nothing; eviction must first check "+
			"that the evictable files add up to the room needed", what, file)
	}

	t.Run("MaxBytes, another file open", func(t *testing.T) {
		_, st, s := fixture(t, files, remotetest.Options{}, StreamConfig{ChunkSize: 64 << 10, MaxBytes: 10 * size})
		refA, refB, refC := refFor(t, st, "m", "a"), refFor(t, st, "m", "b"), refFor(t, st, "m", "c")
		openRead(t, s, refB)
		testutil.WaitFor(t, "b committed", func() bool { return committed(s, refB) })
		hA, err := s.Open(testutil.Ctx(t), refA)
		if err != nil {
			t.Fatal(err)
		}
		defer hA.Close()
		storetest.ReadAll(t, hA)
		testutil.WaitFor(t, "a committed", func() bool { return committed(s, refA) })
		// a (open, 6) + c (6) > 10 whatever is evicted: c is read directly.
		hC, err := s.Open(testutil.Ctx(t), refC)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(storetest.ReadAll(t, hC), files["m/c"]) {
			t.Fatal("c differs")
		}
		direct := uncached(hC)
		hC.Close()
		if !direct {
			t.Fatalf("c: %T, want direct", hC)
		}
		if !committed(s, refB) {
			bug(t, "b", "evictLocked (via startLocked)")
		}
	})

	t.Run("disk space", func(t *testing.T) {
		_, st, s := fixture(t, files, remotetest.Options{}, StreamConfig{ChunkSize: 64 << 10})
		dir := filepath.Dir(s.objects)
		s.statfs = func(string) (int64, error) { return 10*size - duBytes(dir), nil } // a 1 MB disk
		refA, refBig := refFor(t, st, "m", "a"), refFor(t, st, "m", "big")
		openRead(t, s, refA)
		testutil.WaitFor(t, "a committed", func() bool { return committed(s, refA) })
		h, err := s.Open(testutil.Ctx(t), refBig)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(storetest.ReadAll(t, h), files["m/big"]) {
			t.Fatal("big differs")
		}
		direct := uncached(h)
		h.Close()
		if !direct {
			t.Fatalf("big: %T, want direct", h)
		}
		if !committed(s, refA) {
			bug(t, "a", "evictBytesLocked (via startLocked)")
		}
	})
}

// uncached reports whether h reads the store into memory without a cache
// file (no room in the cache).
func uncached(h cache.Handle) bool {
	if _, ok := h.(*memHandle); ok {
		return true
	}
	sh, ok := h.(*streamHandle)
	return ok && sh.d.e == nil
}
