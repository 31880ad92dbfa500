package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// TestFSWalkFreshMounts: the walk a backup tool or cp -r does, with
// fstest.TestFS (which reads some files 1-3 bytes at a time), over fresh
// mounts again and again: a file opened right after its last byte
// arrived must not stay in direct I/O (one READ per 2 bytes). Runs:
// $MODELSTOREFS_WALKS (default 2; 20 of 20 passed with -race beside other work),
// at the same time, each on its own mount.
func TestFSWalkFreshMounts(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	walks := 2
	if n, err := strconv.Atoi(os.Getenv("MODELSTOREFS_WALKS")); err == nil && n > 0 {
		walks = n
	}
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/team/")
	for i := range walks {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel() // each walk on a fresh mount of its own
			m := itest.StartMount(t, []string{s.Base})
			root := filepath.Join(m.Dir, itest.StoreName(s.Base))
			start := time.Now()
			if err := itest.WithTimeout(t, 60*time.Second, "fstest", func() error {
				return fstest.TestFS(os.DirFS(root), "lenet/info.json", "lenet/model.caffemodel", "alexnet-torch/_Model.t7", "broken/error.txt")
			}); err != nil {
				t.Error(err)
			}
			t.Logf("walk %d: %s", i, time.Since(start).Round(time.Millisecond))
			m.Stop(t)
		})
	}
}
