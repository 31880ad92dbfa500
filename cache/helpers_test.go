package cache

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// sampleDir is the bundled sample store: master.json, lenet (caffe),
// alexnet-torch (torch), broken (invalid info.json).
const sampleDir = "../integration/testdata/store"

// reserved are the names the fs package keeps for itself in a store folder.
var reserved = []string{".refresh", "models.tsv", "welcome.txt", "error.txt"}

// sampleFiles returns the sample store's files; withMaster false leaves out
// master.json (for generated master.json or HTML listings).
func sampleFiles(t *testing.T, withMaster bool) map[string][]byte {
	t.Helper()
	files, err := remotetest.LoadDir(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["lenet/info.json"]; !ok {
		t.Fatalf("sample store %s has no lenet/info.json", sampleDir)
	}
	if !withMaster {
		delete(files, "master.json")
	}
	return files
}

// sampleModels returns the sample store's model names (master.json
// "children"), sorted.
func sampleModels(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sampleDir, "master.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Children []string }
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	slices.Sort(m.Children)
	if !slices.Contains(m.Children, "lenet") || !slices.Contains(m.Children, "broken") {
		t.Fatalf("sample store lacks lenet or broken: %q", m.Children)
	}
	return m.Children
}

func newServer(t *testing.T, files map[string][]byte, opt remotetest.Options) *remotetest.Server {
	t.Helper()
	s := remotetest.New(files, opt)
	t.Cleanup(s.Close)
	return s
}

// fastRemote keeps failing tests fast: no retries, short timeouts.
var fastRemote = remote.Options{
	Retries:        -1,
	ConnectTimeout: time.Second,
	HeaderTimeout:  2 * time.Second,
	StallTimeout:   2 * time.Second,
}

func newTestStore(t *testing.T, url string) *Store {
	t.Helper()
	rs, err := remote.NewStore(url, fastRemote)
	if err != nil {
		t.Fatal(err)
	}
	return &Store{Name: "test", Remote: rs}
}

// env is one store, its catalog and an in-memory content cache.
type env struct {
	srv     *remotetest.Server
	st      *Store
	cat     *Catalog
	content *memContent
}

func newEnv(t *testing.T, srv *remotetest.Server, cfg Config) *env {
	t.Helper()
	content := newMemContent()
	st := newTestStore(t, srv.URL)
	if cfg.Reserved == nil {
		cfg.Reserved = reserved
	}
	cat := NewCatalog([]*Store{st}, content, cfg)
	e := &env{srv: srv, st: st, cat: cat, content: content}
	t.Cleanup(func() {
		cat.Close()
		content.Close()
	})
	return e
}

// resolveAll resolves every model of the store, sharing the fetches of the
// prefetch that follows a listing: when it returns, that prefetch sends no
// more requests (what it still asks for is cached).
func (e *env) resolveAll(t *testing.T) {
	t.Helper()
	if _, err := e.cat.Models(testutil.Ctx(t), e.st); err != nil {
		t.Fatal(err)
	}
}

// waitPrefetched waits until every named model is cached (the prefetch that
// follows a listing is done with them).
func (e *env) waitPrefetched(t *testing.T, names ...string) {
	t.Helper()
	testutil.WaitFor(t, "prefetch", func() bool {
		for _, n := range names {
			if _, ok := e.cat.CachedModel(e.st, n); !ok {
				return false
			}
		}
		return true
	})
}

func fileNames(m *Model) []string {
	out := make([]string, len(m.Files()))
	for i, f := range m.Files() {
		out[i] = f.Name
	}
	return out
}

// readAll reads a whole handle with one ReadAt (handles never read short).
func readAll(t *testing.T, h Handle) []byte {
	t.Helper()
	buf := make([]byte, h.Size())
	n, err := h.ReadAt(testutil.Ctx(t), buf, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("ReadAt: %v", err)
	}
	return buf[:n]
}
