package fs

import (
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/cache"
)

// TestOwnerAndUmask: --uid, --gid and --umask reach every node's
// attributes; without them the tree is the daemon's, with its usual modes.
// A symlink keeps 0777 (Linux ignores its mode).
func TestOwnerAndUmask(t *testing.T) {
	uid, gid := uint32(1234), uint32(5678)
	self := Options{}
	tests := []struct {
		name     string
		opt      Options
		uid, gid uint32
		modes    map[uint32]uint32 // node mode -> shown permission bits
	}{
		{"default", self, uint32(syscall.Getuid()), uint32(syscall.Getgid()),
			map[uint32]uint32{dirMode: 0o555, modelDirMode: 0o755, fileMode: 0o444, linkMode: 0o777, refreshMode: 0o644}},
		{"uid and gid", Options{UID: &uid, GID: &gid}, uid, gid,
			map[uint32]uint32{dirMode: 0o555, modelDirMode: 0o755, fileMode: 0o444, refreshMode: 0o644}},
		{"umask 022", Options{Umask: 0o022}, uint32(syscall.Getuid()), uint32(syscall.Getgid()),
			map[uint32]uint32{dirMode: 0o555, modelDirMode: 0o755, fileMode: 0o444, linkMode: 0o777, refreshMode: 0o644}},
		{"umask 027, root", Options{Umask: 0o027, UID: new(uint32(0)), GID: new(uint32(0))}, 0, 0,
			map[uint32]uint32{dirMode: 0o550, modelDirMode: 0o750, fileMode: 0o440, linkMode: 0o777, refreshMode: 0o640}},
		{"umask 077", Options{Umask: 0o077}, uint32(syscall.Getuid()), uint32(syscall.Getgid()),
			map[uint32]uint32{dirMode: 0o500, modelDirMode: 0o700, fileMode: 0o400, linkMode: 0o777, refreshMode: 0o600}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.Catalog = cache.NewCatalog(nil, nil, cache.Config{})
			defer tt.opt.Catalog.Close()
			f := New(tt.opt)
			defer f.Close()
			for mode, perm := range tt.modes {
				var a fuse.Attr
				f.setAttr(&a, mode, 1, time.Time{})
				if a.Uid != tt.uid || a.Gid != tt.gid || a.Mode != mode&syscall.S_IFMT|perm {
					t.Errorf("mode %o: uid %d gid %d mode %o, want %d %d %o", mode, a.Uid, a.Gid, a.Mode, tt.uid, tt.gid, mode&syscall.S_IFMT|perm)
				}
			}
		})
	}
}
