package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// TestCacheVerify: a cache file damaged on disk after its commit is found
// by modelstorefs cache verify (exit 1), removed, and fetched again right
// by the next mount.
func TestCacheVerify(t *testing.T) {
	t.Parallel() // its own store and cache dir
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	cacheDir := t.TempDir()
	want, err := os.ReadFile(filepath.Join(src, "lenet", "snapshot_iter_28140.caffemodel"))
	if err != nil {
		t.Fatal(err)
	}
	read := func() []byte {
		m := itest.StartMount(t, []string{s.Base}, "--cache-dir", cacheDir)
		data := itest.ReadFile(t, filepath.Join(m.Dir, itest.StoreName(s.Base), "lenet", "model.caffemodel"))
		m.Stop(t)
		return data
	}
	read()
	objs, _ := filepath.Glob(filepath.Join(cacheDir, "v2", "objects", "*"))
	var damaged string
	for _, o := range objs {
		if fi, err := os.Stat(o); err == nil && fi.Size() == int64(len(want)) {
			damaged = o
		}
	}
	if damaged == "" {
		t.Fatalf("no cache object of the weights' size among %v", objs)
	}
	f, err := os.OpenFile(damaged, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^want[10]}, 10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(itest.Binary, "cache", "verify", "--cache-dir", cacheDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "damaged: "+damaged) || !strings.Contains(string(out), "1 damaged (1 removed") {
		t.Fatalf("cache verify over a damaged file: %v\n%s", err, out)
	}
	if out, err := exec.Command(itest.Binary, "cache", "verify", "--cache-dir", cacheDir).CombinedOutput(); err != nil || !strings.Contains(string(out), "0 damaged") {
		t.Fatalf("cache verify again: %v\n%s", err, out)
	}
	before := s.Count("GET /lenet/snapshot_iter_28140.caffemodel")
	if got := read(); string(got) != string(want) {
		t.Fatal("the weights read after the check differ")
	}
	if s.Count("GET /lenet/snapshot_iter_28140.caffemodel") == before {
		t.Error("the removed file was not fetched again")
	}
}
