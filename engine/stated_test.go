package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// reprDigest is the Repr-Digest header value of data.
func reprDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// TestVerifyStatedByAnswers: a file listed without a digest is checked
// against the one its GET answers state (Repr-Digest), cached or read
// into memory: the right digest verifies it ("store"), a wrong one fails
// the read of its end, and two answers stating two digests are two
// versions of the file.
func TestVerifyStatedByAnswers(t *testing.T) {
	const size, chunk = 1<<20 + 99, 64 << 10
	data := blob(75, size)
	other := reprDigest(data[1:])
	for _, tc := range []struct {
		name     string
		memory   bool
		header   func(n int32) string // for the n-th GET answer
		wantErr  error
		verified string
	}{
		{"right", false, func(int32) string { return reprDigest(data) }, nil, "store"},
		{"wrong", false, func(int32) string { return other }, ErrDigestMismatch, ""},
		{"two digests", false, func(n int32) string { return map[bool]string{true: reprDigest(data), false: other}[n == 1] }, remote.ErrChanged, ""},
		{"none", false, func(int32) string { return "" }, nil, "computed"},
		{"right in memory", true, func(int32) string { return reprDigest(data) }, nil, ""},
		{"wrong in memory", true, func(int32) string { return other }, ErrDigestMismatch, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
			var answers atomic.Int32
			srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
				if r.Method != http.MethodGet {
					serve(w, r)
					return
				}
				if v := tc.header(answers.Add(1)); v != "" {
					w.Header().Set("Repr-Digest", v)
				}
				serve(w, r)
			})
			cfg := StreamConfig{ChunkSize: chunk, Parallel: 4}
			if tc.memory {
				cfg.MaxBytes = 256 << 10
			}
			s := newStream(t, cfg)
			ref := refFor(t, newTestStore(t, srv.URL), "m", "f")
			if !ref.Meta.Digest.IsZero() {
				t.Fatalf("the HEAD stated a digest (%s): the test proves nothing", ref.Meta.Digest)
			}
			got, err := readToEnd(t, s, ref, tc.wantErr == remote.ErrChanged)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("read: %v, want %v", err, tc.wantErr)
			}
			if err == nil && !bytes.Equal(got, data) {
				t.Fatal("wrong bytes")
			}
			if tc.memory || err != nil {
				return
			}
			testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
			if sha, v := s.Digest(ref); v != tc.verified || sha == "" {
				t.Errorf("Digest: %q %q, want verified %q", sha, v, tc.verified)
			}
		})
	}
}

// readToEnd opens ref and reads it in order, as cp does; with far set,
// after a read near its end (so that two GETs carry it).
func readToEnd(t *testing.T, s *StreamContent, ref cache.Ref, far bool) ([]byte, error) {
	t.Helper()
	h, err := s.Open(testutil.Ctx(t), ref)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if far {
		if _, err := h.ReadAt(testutil.Ctx(t), make([]byte, 100), h.Size()-5000); err != nil {
			return nil, err
		}
	}
	var out []byte
	buf := make([]byte, 128<<10)
	for off := int64(0); ; {
		n, err := h.ReadAt(testutil.Ctx(t), buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if errors.Is(err, io.EOF) || (err == nil && off == h.Size()) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
