package engine

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// The engine under the catalog: files whose size the store does not tell.

// newCatalog opens a catalog of the one store at srv over a content cache
// with cfg (MinFree off); both are closed when the test ends.
func newCatalog(t *testing.T, srv *remotetest.Server, cfg StreamConfig, ccfg cache.Config) (*cache.Catalog, *cache.Store, *StreamContent) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.MinFree = new(int64(0))
	content, err := NewStreamContent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := newTestStore(t, srv.URL)
	ccfg.Reserved = storetest.Reserved
	cat := cache.NewCatalog([]*cache.Store{st}, content, ccfg)
	t.Cleanup(func() {
		cat.Close()
		content.Close()
	})
	return cat, st, content
}

// TestChunkedSizeThenRead: a store that sends no Content-Length. With
// Range support the size is learned from a one-byte ranged GET (no
// download while listing); without it the catalog downloads the file,
// within the cache's bounds, and reading it afterwards is served from the
// content cache, not downloaded a second time.
func TestChunkedSizeThenRead(t *testing.T) {
	for _, tc := range []struct {
		name           string
		opt            remotetest.Options
		wantFullBefore int // GETs without a honoured Range before the read
	}{
		{"range", remotetest.Options{Chunked: true}, 0},
		// The one-byte probe (answered whole, aborted after the headers),
		// then the download that learns the size.
		{"no range", remotetest.Options{Chunked: true, NoRange: true}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := storetest.NewServer(t, storetest.SampleFiles(t), tc.opt)
			cat, st, content := newCatalog(t, srv, StreamConfig{}, cache.Config{})
			ctx := testutil.Ctx(t)
			m, err := cat.Model(ctx, st, "lenet")
			if err != nil {
				t.Fatal(err)
			}
			w, _ := m.File("model.caffemodel")
			path := "lenet/" + w.Remote
			want, _ := srv.Data(path)
			if w.Size() != int64(len(want)) {
				t.Fatalf("size %d, want %d", w.Size(), len(want))
			}
			full := func() int {
				n := 0
				for _, r := range srv.Requests(path) {
					if r.Method == "GET" && (r.Range == "" || tc.opt.NoRange) {
						n++
					}
				}
				return n
			}
			if n := full(); n != tc.wantFullBefore {
				t.Errorf("%d whole-file GETs while resolving, want %d", n, tc.wantFullBefore)
			}
			before := srv.Count("GET", path)
			// As the fs package opens a file: the resolved Meta.
			h, err := content.Open(ctx, cache.Ref{Store: st, Model: "lenet", Name: w.Remote, Meta: w.Meta})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if got := storetest.ReadAll(t, h); !bytes.Equal(got, want) {
				t.Fatal("content differs")
			}
			if n := srv.Count("GET", path); tc.opt.NoRange && n != before {
				t.Errorf("the file downloaded to learn its size was downloaded again (%d GETs before the read, %d after)", before, n)
			}
		})
	}
}

// TestUnsizedWithinBounds: a file without length or Range support that is
// larger than the cache is never written past the cache's bound: its
// model lists it as a problem, nothing is left in the cache.
func TestUnsizedWithinBounds(t *testing.T) {
	files := storetest.SampleFiles(t)
	srv := storetest.NewServer(t, files, remotetest.Options{Chunked: true, NoRange: true})
	cat, st, content := newCatalog(t, srv, StreamConfig{MaxBytes: 4 << 10}, cache.Config{Prefetch: 1})
	m, err := cat.Model(testutil.Ctx(t), st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	if m.Importable {
		t.Error("model importable without its weights")
	}
	if !slices.ContainsFunc(m.Problems, func(p string) bool { return strings.Contains(p, "no size") }) {
		t.Errorf("problems %q: want one saying the store gives no size", m.Problems)
	}
	if used := content.Stats().UsedBytes; used > 4<<10 {
		t.Errorf("cache holds %d bytes, bound 4 KiB", used)
	}
}
