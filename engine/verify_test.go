package engine

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// Every byte of a cached file hashed before its commit (verify.go).

func sha256Digest(data []byte) remote.Digest {
	sum := sha256.Sum256(data)
	return remote.Digest{Alg: remote.AlgSHA256, Sum: string(sum[:])}
}

// flipWriter flips one byte of a body at offset at (counted in the body).
type flipWriter struct {
	http.ResponseWriter
	at, seen int64
}

func (w *flipWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *flipWriter) Write(p []byte) (int, error) {
	if w.at >= w.seen && w.at < w.seen+int64(len(p)) {
		p = bytes.Clone(p)
		p[w.at-w.seen] ^= 0x5a
	}
	w.seen += int64(len(p))
	return w.ResponseWriter.Write(p)
}

// TestVerifyDigests: the digest the store states is checked before the
// file's end is handed out and before the commit; without one, SHA-256 is
// computed and kept with the cache entry, also across restarts.
func TestVerifyDigests(t *testing.T) {
	const size, chunk = 1<<20 + 333, 64 << 10
	data := blob(71, size)
	md := md5.Sum(data)
	for _, tc := range []struct {
		name     string
		digest   remote.Digest
		verified string
	}{
		{"none stated", remote.Digest{}, "computed"},
		{"sha-256 stated", sha256Digest(data), "store"},
		{"md5 stated", remote.Digest{Alg: remote.AlgMD5, Sum: string(md[:])}, "store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{Dir: dir, ChunkSize: chunk})
			ref := refFor(t, st, "m", "f")
			ref.Meta.Digest = tc.digest
			if !bytes.Equal(openRead(t, s, ref), data) {
				t.Fatal("content differs")
			}
			testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
			want := sha256.Sum256(data)
			if sha, v := s.Digest(ref); sha != hex.EncodeToString(want[:]) || v != tc.verified {
				t.Errorf("Digest: %s %s, want %x %s", sha, v, want, tc.verified)
			}
			s.Close()
			s2 := newStream(t, StreamConfig{Dir: dir, ChunkSize: chunk})
			if sha, v := s2.Digest(ref); sha != hex.EncodeToString(want[:]) || v != tc.verified {
				t.Errorf("after a restart: %s %s, want %x %s", sha, v, want, tc.verified)
			}
		})
	}
}

// TestVerifyMismatch: one byte flipped in one ranged answer of a
// multi-stream download. A reader of the head is not delayed; a reader of
// the end gets ErrDigestMismatch; nothing is committed; the next open,
// with an honest server, fetches afresh and gets the right bytes.
func TestVerifyMismatch(t *testing.T) {
	const size, chunk = 2 << 20, 64 << 10
	data := blob(72, size)
	srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
	var flipped atomic.Int32
	var honest atomic.Bool
	// The byte at 1.5 MiB is flipped in every answer that carries it,
	// whichever stream asked (a far reader below makes a second stream),
	// until the proxy turns honest.
	const at = 3 << 19
	srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
		start, end, ok := parseRange(r)
		if end < 0 {
			end = size - 1
		}
		if ok && start <= at && end >= at && !honest.Load() {
			flipped.Add(1)
			serve(&flipWriter{ResponseWriter: w, at: at - start}, r)
			return
		}
		serve(w, r)
	})
	s := newStream(t, StreamConfig{ChunkSize: chunk, Parallel: 4})
	ref := refFor(t, newTestStore(t, srv.URL), "m", "f")
	ref.Meta.Digest = sha256Digest(data)
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4096)
	if n, err := h.ReadAt(testutil.Ctx(t), head, 0); err != nil || !bytes.Equal(head[:n], data[:n]) {
		t.Fatalf("head: %d bytes, %v", n, err)
	}
	// A reader far ahead (short of the end) is not delayed either.
	if n, err := h.ReadAt(testutil.Ctx(t), head, size-5000); err != nil || !bytes.Equal(head[:n], data[size-5000:size-5000+n]) {
		t.Fatalf("far read: %d bytes, %v", n, err)
	}
	// Read in pieces from the start, as cp does; a chunk from the far
	// stream carries the flipped byte.
	buf := make([]byte, 128<<10)
	var readErr error
	for off := int64(0); off < size && readErr == nil; off += int64(len(buf)) {
		_, readErr = h.ReadAt(testutil.Ctx(t), buf, off)
		if errors.Is(readErr, io.EOF) {
			readErr = nil
		}
	}
	h.Close()
	if flipped.Load() == 0 {
		t.Fatal("no answer carried the byte to flip: the test proves nothing")
	}
	if !errors.Is(readErr, ErrDigestMismatch) {
		t.Fatalf("reading to the end: %v, want a digest mismatch", readErr)
	}
	testutil.WaitFor(t, "the failed download to end", func() bool { return s.Stats().InFlight == 0 })
	if committed(s, ref) || len(objects(t, s)) != 0 {
		t.Fatal("a file whose digest did not match was committed")
	}
	if s.Stats().DigestMismatches != 1 {
		t.Errorf("stats: %d digest mismatches, want 1", s.Stats().DigestMismatches)
	}
	// The proxy is honest now: fetched afresh, right.
	honest.Store(true)
	if !bytes.Equal(openRead(t, s, ref), data) {
		t.Fatal("reread differs")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	checkObjects(t, s, data)
}

// TestVerifyUnsized: a file whose size the store does not tell is checked
// against its digest too.
func TestVerifyUnsized(t *testing.T) {
	data := blob(73, 100<<10)
	_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{Chunked: true, NoRange: true}, StreamConfig{})
	ref := cache.Ref{Store: st, Model: "m", Name: "f", Meta: refFor(t, st, "m", "f").Meta}
	ref.Meta.Digest = sha256Digest(append([]byte("other"), data...))
	if _, err := s.Open(testutil.Ctx(t), ref); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Open: %v, want a digest mismatch", err)
	}
	ref.Meta.Digest = sha256Digest(data)
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !bytes.Equal(storetest.ReadAll(t, h), data) {
		t.Fatal("content differs")
	}
	if sha, v := s.Digest(cache.Ref{Store: st, Model: "m", Name: "f", Meta: remote.Meta{Size: int64(len(data)), ETag: ref.Meta.ETag, LastModified: ref.Meta.LastModified}}); sha == "" || v != "store" {
		t.Errorf("Digest: %q %q, want the verified SHA-256", sha, v)
	}
}

// TestVerifyInMemory: a file larger than the cache, read in order, is
// verified too: its end fails on a mismatch. A reader that jumps to the
// end of a file it did not read gets its bytes (unverifiable).
func TestVerifyInMemory(t *testing.T) {
	const size = 3<<20 + 77
	data := blob(74, size)
	srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
	st := newTestStore(t, srv.URL)
	readInOrder := func(h cache.Handle) error {
		buf := make([]byte, 128<<10)
		for off := int64(0); off < size; off += int64(len(buf)) {
			n, err := h.ReadAt(testutil.Ctx(t), buf, off)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				return errors.New("wrong bytes")
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name   string
		digest remote.Digest
		want   error
	}{
		{"right", sha256Digest(data), nil},
		{"wrong", sha256Digest(data[1:]), ErrDigestMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream(t, StreamConfig{MaxBytes: 1 << 20})
			ref := refFor(t, st, "m", "f")
			ref.Meta.Digest = tc.digest
			h, err := s.Open(testutil.Ctx(t), ref)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if !uncached(h) {
				t.Fatalf("%T: want a file read into memory", h)
			}
			if err := readInOrder(h); !errors.Is(err, tc.want) && err != tc.want {
				t.Fatalf("read in order: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("end first", func(t *testing.T) {
		s := newStream(t, StreamConfig{MaxBytes: 1 << 20})
		ref := refFor(t, st, "m", "f")
		ref.Meta.Digest = sha256Digest(data[1:])
		h, err := s.Open(testutil.Ctx(t), ref)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		buf := make([]byte, 1000)
		if n, err := h.ReadAt(testutil.Ctx(t), buf, size-1000); (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(buf[:n], data[size-1000:]) {
			t.Fatalf("the end of an unread file: %d bytes, %v", n, err)
		}
	})
}

// TestVerifyCache: a cache file damaged on disk after its commit is found
// by the cache check, dropped, and fetched again by the next open; a file
// cached without a digest gets one recorded.
func TestVerifyCache(t *testing.T) {
	a, b := blob(75, 300<<10), blob(76, 200<<10)
	srv, st, s := fixture(t, map[string][]byte{"m/a": a, "m/b": b}, remotetest.Options{}, StreamConfig{ChunkSize: 64 << 10})
	refA, refB := refFor(t, st, "m", "a"), refFor(t, st, "m", "b")
	for _, ref := range []cache.Ref{refA, refB} {
		openRead(t, s, ref)
		testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	}
	// b as a file of an older version, without a recorded digest.
	s.mu.Lock()
	eb := s.entries[refB.Key()]
	s.mu.Unlock()
	plain := filepath.Join(filepath.Dir(eb.path), eb.key)
	if err := os.Rename(eb.path, plain); err != nil {
		t.Fatal(err)
	}
	eb.path, eb.sha256, eb.verified = plain, "", ""
	// a damaged on disk.
	s.mu.Lock()
	pathA := s.entries[refA.Key()].path
	s.mu.Unlock()
	f, err := os.OpenFile(pathA, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{^a[1234]}, 1234)
	f.Close()
	rep, err := s.VerifyCache(testutil.Ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 2 || len(rep.Damaged) != 1 || rep.Dropped != 1 || rep.Recorded != 1 {
		t.Fatalf("report %+v: want 2 checked, 1 damaged and dropped, 1 recorded", rep)
	}
	if committed(s, refA) {
		t.Fatal("the damaged file is still in the cache")
	}
	if sha, v := s.Digest(refB); sha == "" || v != "computed" {
		t.Errorf("b's digest after the check: %q %q", sha, v)
	}
	before := srv.Count(http.MethodGet, "m/a")
	if !bytes.Equal(openRead(t, s, refA), a) {
		t.Fatal("a after the check differs")
	}
	if srv.Count(http.MethodGet, "m/a") == before {
		t.Error("the damaged file was not fetched again")
	}
	if !bytes.Equal(openRead(t, s, refB), b) {
		t.Fatal("b after the check differs")
	}
}

// TestNoVerify: with NoVerify nothing is hashed: no digest recorded, a
// wrong stated digest goes unnoticed, the end is not held back.
func TestNoVerify(t *testing.T) {
	data := blob(77, 300<<10)
	_, st, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: 64 << 10, NoVerify: true})
	ref := refFor(t, st, "m", "f")
	ref.Meta.Digest = sha256Digest(data[1:])
	if !bytes.Equal(openRead(t, s, ref), data) {
		t.Fatal("content differs")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	if sha, v := s.Digest(ref); sha != "" || v != "" {
		t.Errorf("Digest %q %q with NoVerify", sha, v)
	}
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Fd() < 0 {
		t.Error("a complete file without a hash has no descriptor")
	}
}

// TestOneCopyPerContent: the same bytes in two stores (a mirror) or under
// two names, stated with the same SHA-256, are downloaded and kept once.
func TestOneCopyPerContent(t *testing.T) {
	data := blob(78, 300<<10)
	_, stA, s := fixture(t, map[string][]byte{"m/f": data}, remotetest.Options{}, StreamConfig{ChunkSize: 64 << 10})
	srvB := storetest.NewServer(t, map[string][]byte{"mirror/g": data}, remotetest.Options{})
	stB := newTestStore(t, srvB.URL)
	refA, refB := refFor(t, stA, "m", "f"), refFor(t, stB, "mirror", "g")
	refA.Meta.Digest, refB.Meta.Digest = sha256Digest(data), sha256Digest(data)
	if !bytes.Equal(openRead(t, s, refA), data) {
		t.Fatal("content differs")
	}
	testutil.WaitFor(t, "commit", func() bool { return committed(s, refA) })
	if !bytes.Equal(openRead(t, s, refB), data) {
		t.Fatal("mirror content differs")
	}
	if n := srvB.Count(http.MethodGet, "mirror/g"); n != 0 {
		t.Errorf("the mirror was asked %d GETs for bytes already cached", n)
	}
	if n := len(objects(t, s)); n != 1 {
		t.Errorf("%d cache objects for one content, want 1", n)
	}
	if st := s.Stats(); st.SharedHits != 1 {
		t.Errorf("shared hits %d, want 1", st.SharedHits)
	}
	// Without a stated digest nothing is assumed: the other store is asked.
	refC := refFor(t, stB, "mirror", "g")
	if !bytes.Equal(openRead(t, s, refC), data) {
		t.Fatal("content differs")
	}
	if n := srvB.Count(http.MethodGet, "mirror/g"); n == 0 {
		t.Error("a file without a stated digest was taken from another name's copy")
	}
}
