package cache

import (
	"testing"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

func newTestStore(t *testing.T, url string) *Store {
	t.Helper()
	return &Store{Name: "test", Remote: storetest.Remote(t, url)}
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
		cfg.Reserved = storetest.Reserved
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
