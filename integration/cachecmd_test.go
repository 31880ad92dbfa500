package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// TestCacheDuAndClear: beside a running mount of two stores, cache du
// attributes the cached files to their stores, and cache clear STORE
// removes that store's files but the one a reader has open (said so), then
// it too once closed; the mount serves the removed files again.
func TestCacheDuAndClear(t *testing.T) {
	t.Parallel() // its own stores and cache dir (du counts the processes using that dir only)
	srcA, srcB := itest.CopyStore(t), itest.CopyStore(t)
	a, b := itest.StartGoStore(t, srcA, "/"), itest.StartGoStore(t, srcB, "/")
	mnt, cacheDir := t.TempDir(), t.TempDir()
	itest.MountWith(t, itest.Binary, mnt, cacheDir, []string{"a=" + a.Base, "b=" + b.Base})
	weights := func(store string) string { return filepath.Join(mnt, store, "lenet", "model.caffemodel") }
	torch := filepath.Join(mnt, "b", "alexnet-torch", "_Model.t7")
	for _, f := range []string{weights("a"), weights("b"), torch} {
		itest.ReadFile(t, f)
		testutil.WaitFor(t, "the cache copy of "+f, func() bool {
			_, err := syscall.Getxattr(f, "user.modelstore.sha256", make([]byte, 128))
			return err == nil
		})
	}
	size := func(f string) int64 {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	stores := []string{"--cache-dir", cacheDir, "--store", "a=" + a.Base + ",b=" + b.Base}

	use := cacheDu(t, stores...)
	if got := use.Stores; len(got) != 2 || got[0].Files != 1 || got[0].Bytes != size(weights("a")) ||
		got[1].Files != 2 || got[1].Bytes != size(weights("b"))+size(torch) || !got[0].Listed || !got[1].Listed {
		t.Errorf("du stores %+v", got)
	}
	if use.Unattributed.Files != 0 || use.Total.Files != 3 || use.Processes != 1 {
		t.Errorf("du: unattributed %+v total %+v processes %d", use.Unattributed, use.Total, use.Processes)
	}
	if only := cacheDu(t, "--cache-dir", cacheDir, "--store", "a="+a.Base); only.Unattributed.Files != 2 {
		t.Errorf("du of a alone: unattributed %+v, want b's 2 files", only.Unattributed)
	}
	text, code := runExit(t, nil, append([]string{"cache", "du"}, stores...)...)
	if code != 0 || !regexp.MustCompile(`(?m)^\s*a\s+1\s+421 KiB\s*$`).MatchString(text) || !strings.Contains(text, "(--cache-size) in "+cacheDir) {
		t.Errorf("cache du: exit %d\n%s", code, text)
	}

	// A reader holds a's file open: clear a keeps it and says so.
	f, err := os.Open(weights("a"))
	if err != nil {
		t.Fatal(err)
	}
	out, code := runExit(t, nil, append([]string{"cache", "clear", "a"}, stores...)...)
	if code != 0 || !strings.Contains(out, "store a: removed 0 files (0 B); kept 1 files in use") {
		t.Errorf("cache clear a with its file open: exit %d: %s", code, out)
	}
	f.Close()
	testutil.WaitFor(t, "clear a once the file is closed", func() bool {
		out, code = runExit(t, nil, append([]string{"cache", "clear", "a"}, stores...)...)
		return code == 0 && strings.Contains(out, "store a: removed 1 files")
	})
	if use := cacheDu(t, stores...); use.Stores[0].Files != 0 || use.Stores[1].Files != 2 {
		t.Errorf("after clear a: %+v", use.Stores)
	}
	out, code = runExit(t, nil, "cache", "clear", "--cache-dir", cacheDir) // no store needed
	if code != 0 || !strings.Contains(out, "the cache: removed 2 files") {
		t.Errorf("cache clear: exit %d: %s", code, out)
	}
	for f, src := range map[string]string{weights("a"): filepath.Join(srcA, "lenet", "snapshot_iter_28140.caffemodel"),
		torch: filepath.Join(srcB, "alexnet-torch", "snapshot_30_Model.t7")} {
		if out, err := itest.RunCmd(t, "cmp", f, src); err != nil {
			t.Errorf("after clear, cmp %s: %v %s", f, err, out)
		}
	}
	if out, code := runExit(t, nil, "cache", "clear", "nosuch", "--cache-dir", cacheDir, "--store", "a="+a.Base); code != 1 ||
		!strings.Contains(out, `no store named "nosuch" (stores: a)`) {
		t.Errorf("cache clear nosuch: exit %d: %s", code, out)
	}
}

// cacheUse is what cache du --json says.
type cacheUse struct {
	Stores []struct {
		Name   string
		Files  int
		Bytes  int64
		Listed bool
	}
	Unattributed, Total struct{ Files int }
	Processes           int
}

func cacheDu(t *testing.T, args ...string) cacheUse {
	t.Helper()
	out, code := runExit(t, nil, append([]string{"cache", "du", "--json"}, args...)...)
	var use cacheUse
	if err := json.Unmarshal([]byte(out), &use); code != 0 || err != nil {
		t.Fatalf("cache du --json: exit %d, %v\n%s", code, err, out)
	}
	return use
}
