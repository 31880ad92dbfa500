package integration

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// TestPrefetch: prefetch puts a model's files into the cache (a second run
// fetches nothing), a mount started on that cache serves them without
// asking the store, a prefetch beside that running mount goes through it
// (so the mount knows the files; it need not hash them), and a file the store will not serve
// makes the exit status 1 while the model's other files are cached.
func TestPrefetch(t *testing.T) {
	t.Parallel() // its own store; the counts are of that store alone
	src := itest.CopyStore(t)
	var mu sync.Mutex
	gets := map[string]int{}
	var refuse atomic.Bool
	files := http.FileServer(http.Dir(src))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			gets[r.URL.Path]++
			mu.Unlock()
			if refuse.Load() && r.URL.Path == "/alexnet-torch/snapshot_30_Model.t7" {
				http.Error(w, "refused for the test", http.StatusForbidden)
				return
			}
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return gets[path]
	}
	cacheDir := t.TempDir()
	args := func(more ...string) []string {
		return append([]string{"prefetch", "--cache-dir", cacheDir, "--store", "a=" + srv.URL, "--retry-window", "1s"}, more...)
	}
	const weights = "/lenet/snapshot_iter_28140.caffemodel"

	out, code := runExit(t, nil, args("a/lenet")...)
	if code != 0 || !strings.Contains(out, "a/lenet: 7 files") || !strings.Contains(out, "7 fetched, 0 already cached") || count(weights) != 1 {
		t.Fatalf("prefetch a/lenet: exit %d, %d GETs of the weights\n%s", code, count(weights), out)
	}
	out, code = runExit(t, nil, args("a/lenet")...)
	if code != 0 || !strings.Contains(out, "0 fetched, 7 already cached") || count(weights) != 1 {
		t.Errorf("prefetch a/lenet again: exit %d, %d GETs of the weights\n%s", code, count(weights), out)
	}
	out, code = runExit(t, nil, args("a/nosuch")...)
	if code != 1 || !strings.Contains(out, "a/nosuch: ") || !strings.Contains(out, "modelstorefs ls") {
		t.Errorf("prefetch a/nosuch: exit %d\n%s", code, out)
	}

	// A mount on the warm cache reads the weights without the store.
	m := itest.MountWith(t, itest.Binary, t.TempDir(), cacheDir, []string{"a=" + srv.URL}, "--retry-window", "1s",
		"--verify=false") // its cache files then carry no digest in their names
	lenet := filepath.Join(m.Dir, "a", "lenet")
	if out, err := itest.RunCmd(t, "cmp", filepath.Join(lenet, "model.caffemodel"), filepath.Join(src, weights)); err != nil || count(weights) != 1 {
		t.Errorf("the mount on the prefetched cache: cmp %v %s; %d GETs of the weights, want 1", err, out, count(weights))
	}

	// Beside the running mount: through it. One file refused.
	refuse.Store(true)
	out, code = runExit(t, nil, args("a/alexnet-torch")...)
	if code != 1 || !strings.Contains(out, "through the mount at "+m.Dir) || !strings.Contains(out, "a/alexnet-torch/_Model.t7: ") ||
		!strings.Contains(out, "1 failed") || !strings.Contains(out, "files could not be cached") {
		t.Errorf("prefetch with a refused file: exit %d\n%s", code, out)
	}
	const def = "/alexnet-torch/model.lua"
	before := count(def)
	if out, err := itest.RunCmd(t, "cmp", filepath.Join(m.Dir, "a", "alexnet-torch", "original.lua"), filepath.Join(src, def)); err != nil || count(def) != before {
		t.Errorf("a file prefetched through the mount: cmp %v %s; GETs %d -> %d, want none more", err, out, before, count(def))
	}
}
