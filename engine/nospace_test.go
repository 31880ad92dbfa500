package engine

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// smallDisk mounts a 1 MiB tmpfs on a temporary directory, unmounted when
// the test ends: a cache disk that fills. Without root (or where the mount
// is refused) the test is skipped, except under CI, where it fails.
func smallDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		testutil.SkipOrFail(t, "cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestStreamENOSPCAtReserve: the free-space check passes but the disk is
// full when the download reserves its blocks (another process filled it):
// unused files are evicted once, and when that is not enough the readers
// get their bytes straight from the store, never EIO.
func TestStreamENOSPCAtReserve(t *testing.T) {
	dir := smallDisk(t)
	data := blob(5, 3<<20) // three times the disk
	_, st, s := fixture(t, map[string][]byte{"m/big": data}, remotetest.Options{Master: true}, StreamConfig{Dir: dir, ChunkSize: 256 << 10})
	s.statfs = func(string) (int64, error) { return 1 << 40, nil } // the check is fooled
	ref := refFor(t, st, "m", "big")
	if got := openRead(t, s, ref); !bytes.Equal(got, data) {
		t.Fatal("wrong bytes from a full cache disk")
	}
	if committed(s, ref) {
		t.Error("a file that did not fit was committed")
	}
	// The download ends with its last reader.
	waitIdle(t, s)
	if used := s.Stats().UsedBytes; used != 0 {
		t.Errorf("reservation of the failed download kept: %d bytes", used)
	}
}

// TestStreamENOSPCMidFile: the cache disk fills in the middle of a file
// spliced straight into it (no blocks reserved ahead): the cache copy is
// given up and the reader gets every byte, through memory.
func TestStreamENOSPCMidFile(t *testing.T) {
	dir := smallDisk(t)
	data := blob(7, 3<<20)
	_, st, s := fixture(t, map[string][]byte{"m/big": data}, remotetest.Options{}, StreamConfig{Dir: dir, ChunkSize: 256 << 10})
	s.statfs = func(string) (int64, error) { return 1 << 40, nil } // the checks are fooled
	s.skipReserve = true
	s.disk.hook = func() bool { return false } // straight into the file
	ref := refFor(t, st, "m", "big")
	if got := openRead(t, s, ref); !bytes.Equal(got, data) {
		t.Fatal("wrong bytes from a cache disk that filled mid-file")
	}
	waitIdle(t, s)
	if committed(s, ref) {
		t.Error("a file that did not fit was committed")
	}
	if used := s.Stats().UsedBytes; used != 0 {
		t.Errorf("reservation of the given-up download kept: %d bytes", used)
	}
}
