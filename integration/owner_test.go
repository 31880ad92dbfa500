package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// TestOwnerAndUmask mounts with -o uid=,gid=,umask=,allow_other and
// checks what stat shows, then what the kernel lets users do with it
// (default_permissions): the owner reads, another user is refused.
func TestOwnerAndUmask(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	if os.Geteuid() != 0 {
		t.Skip("reading as other users needs root")
	}
	const owner, group, stranger = 65534, 65534, 4321
	// The mountpoint's parents must let other users through.
	parent, err := os.MkdirTemp("", "modelstorefs-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	mnt := filepath.Join(parent, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	m := itest.MountWith(t, itest.Binary, mnt, t.TempDir(), []string{s.Base}, "-o", "uid=65534,gid=65534,umask=077,allow_other")
	store := filepath.Join(m.Dir, itest.StoreName(s.Base))
	file := filepath.Join(store, "lenet", "info.json")
	tests := []struct {
		path string
		mode os.FileMode
	}{
		{m.Dir, os.ModeDir | 0o500},
		{store, os.ModeDir | 0o500},
		{filepath.Join(store, "lenet"), os.ModeDir | 0o700},
		{file, 0o400},
		{filepath.Join(store, "lenet", "model.caffemodel"), 0o400},
		{filepath.Join(store, ".refresh"), 0o600},
		{filepath.Join(store, "lenet", "snapshot_iter_28140.caffemodel"), os.ModeSymlink | 0o777},
	}
	for _, tt := range tests {
		fi, err := os.Lstat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != owner || st.Gid != group || fi.Mode() != tt.mode {
			t.Errorf("%s: uid %d gid %d mode %v, want %d %d %v", tt.path, st.Uid, st.Gid, fi.Mode(), owner, group, tt.mode)
		}
	}
	// The kernel enforces the modes for other users (default_permissions).
	for _, c := range []struct {
		uid    uint32
		readOK bool
	}{{owner, true}, {stranger, false}} {
		cat := exec.Command("cat", file)
		cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.uid}}
		out, err := cat.CombinedOutput()
		if (err == nil) != c.readOK {
			t.Errorf("cat %s as uid %d: %v %q, want readable %v", file, c.uid, err, out, c.readOK)
		}
	}
}
