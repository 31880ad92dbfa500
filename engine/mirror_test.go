package engine

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// TestMirror: when a file's store fails for good (down, or the file is
// gone) and another store has a file of the same digest, the download
// goes on from that one; the bytes are still checked against the digest,
// and without a mirror the read fails.
func TestMirror(t *testing.T) {
	const size = 1<<20 + 5
	data := blob(76, size)
	for _, tc := range []struct {
		name       string
		fail       func(a *remotetest.Server)
		mirrorData []byte // nil: no mirror
		wantErr    bool
		memory     bool
	}{
		{"store down, mirror", func(a *remotetest.Server) { a.SetStatusAll(http.StatusServiceUnavailable) }, data, false, false},
		{"file gone, mirror", func(a *remotetest.Server) { a.SetStatus("m/f", http.StatusNotFound) }, data, false, false},
		{"store down, no mirror", func(a *remotetest.Server) { a.SetStatusAll(http.StatusServiceUnavailable) }, nil, true, false},
		{"store down, mirror with other bytes", func(a *remotetest.Server) { a.SetStatusAll(http.StatusServiceUnavailable) }, blob(77, size), true, false},
		{"in memory: store down, mirror", func(a *remotetest.Server) { a.SetStatusAll(http.StatusServiceUnavailable) }, data, false, true},
		{"in memory: store down, no mirror", func(a *remotetest.Server) { a.SetStatusAll(http.StatusServiceUnavailable) }, nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := storetest.NewServer(t, map[string][]byte{"m/f": data}, remotetest.Options{})
			ref := refFor(t, newTestStore(t, a.URL), "m", "f")
			ref.Meta.Digest = sha256Digest(data)
			cfg := StreamConfig{ChunkSize: 64 << 10, Parallel: 2}
			if tc.memory {
				cfg.MaxBytes = 256 << 10 // read into memory (memFile)
			}
			s := newStream(t, cfg)
			var b *remotetest.Server
			if tc.mirrorData != nil {
				b = storetest.NewServer(t, map[string][]byte{"other/g": tc.mirrorData}, remotetest.Options{})
				mirror := cache.Ref{Store: newTestStore(t, b.URL), Model: "other", Name: "g",
					Meta: remote.Meta{Size: size, Digest: ref.Meta.Digest}}
				s.UseMirrors(func(r cache.Ref) []cache.Ref {
					if r.Meta.Digest != ref.Meta.Digest {
						t.Errorf("mirrors asked for digest %s, want %s", r.Meta.Digest, ref.Meta.Digest)
					}
					return []cache.Ref{mirror}
				})
			}
			tc.fail(a)
			got, err := readToEnd(t, s, ref, false)
			if (err != nil) != tc.wantErr {
				t.Fatalf("read: %v, want error %v", err, tc.wantErr)
			}
			if tc.mirrorData != nil && b.Count("GET", "other/g") == 0 {
				t.Error("the mirror was not asked")
			}
			if err == nil && !bytes.Equal(got, data) {
				t.Fatal("wrong bytes")
			}
			if tc.wantErr && tc.mirrorData != nil && !errors.Is(err, ErrDigestMismatch) {
				t.Errorf("a mirror with other bytes: %v, want a digest mismatch", err)
			}
		})
	}
}
