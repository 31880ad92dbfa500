package fs

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/cache"
)

// refreshEntry is the .refresh file of a scope (nil: the whole mount).
func (f *FS) refreshEntry(st *cache.Store) entry {
	path := []string{RefreshName}
	if st != nil {
		path = []string{st.Name, RefreshName}
	}
	n := &refreshFile{fsys: f, st: st}
	return entry{
		name: RefreshName, mode: refreshMode, ino: f.inodeNumber("", path...),
		size: int64(len(n.status())), mtime: f.cat.LastRefresh(st),
		node: func() fusefs.InodeEmbedder { return n },
	}
}

// refreshFile is the "Update model list" gesture: opening it for writing,
// truncating it or setting its times drops the cached listings of its
// scope. Reading it never refreshes; it tells when the scope was last
// refreshed.
type refreshFile struct {
	readOnly
	fsys *FS
	st   *cache.Store // nil: every store
	// writers counts open write handles: the kernel follows a write-open
	// with a SETATTR (size 0 for ": >", times for touch) that belongs to
	// the same gesture and must not refresh again.
	writers atomic.Int32
}

func (n *refreshFile) status() string {
	scope := "all stores"
	if n.st != nil {
		scope = "store " + n.st.Name
	}
	return fmt.Sprintf("%s: last refreshed %s\n", scope, n.fsys.cat.LastRefresh(n.st).Format(time.RFC3339))
}

func (n *refreshFile) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.setAttr(&out.Attr, refreshMode, int64(len(n.status())), n.fsys.cat.LastRefresh(n.st))
	return 0
}

func (n *refreshFile) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY && flags&syscall.O_TRUNC == 0 {
		return &memHandle{data: []byte(n.status())}, fuse.FOPEN_DIRECT_IO, 0
	}
	n.refresh()
	n.writers.Add(1)
	return &memHandle{write: true, release: func() { n.writers.Add(-1) }}, fuse.FOPEN_DIRECT_IO, 0
}

// Setattr accepts what touch and ": >" do. While a handle is open for
// writing the refresh already happened at open; otherwise (utimes by path)
// it happens now.
func (n *refreshFile) Setattr(_ context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if in.Valid&^(fuse.FATTR_ATIME|fuse.FATTR_MTIME|fuse.FATTR_ATIME_NOW|fuse.FATTR_MTIME_NOW|fuse.FATTR_SIZE|fuse.FATTR_FH|fuse.FATTR_CTIME|fuse.FATTR_LOCKOWNER) != 0 {
		return syscall.EROFS
	}
	if in.Valid&fuse.FATTR_SIZE != 0 && in.Size != 0 {
		return syscall.EROFS // truncating to zero is the gesture; other sizes are writes
	}
	if n.writers.Load() == 0 {
		n.refresh()
	}
	n.fsys.setAttr(&out.Attr, refreshMode, int64(len(n.status())), n.fsys.cat.LastRefresh(n.st))
	return 0
}

func (n *refreshFile) refresh() { n.fsys.refresh(n.st, n.Root()) }

// Refresh is the root's .refresh gesture, every store, for a mount the
// kernel keeps read-only (MountOptions.ReadOnly), where touch .refresh
// cannot reach the daemon: the daemon calls it on SIGHUP.
func (f *FS) Refresh() {
	var root *fusefs.Inode
	if r := f.root.Load(); r != nil {
		root = r.EmbeddedInode()
	}
	f.refresh(nil, root)
}

// refresh drops the caches of the scope (st, nil for every store), then has
// the kernel forget the scope's entries below root (from the notifier
// goroutine, waiting a bounded time).
func (f *FS) refresh(st *cache.Store, root *fusefs.Inode) {
	f.cat.Refresh(st)
	dir := root
	if dir != nil && st != nil {
		dir = dir.GetChild(st.Name)
	}
	if dir != nil {
		f.inval.forgetChildren(dir)
	}
}

// memHandle is an open file whose bytes are built in memory at open:
// .refresh (a status line to read, or a sink that accepts and ignores
// writes: echo > .refresh), models.tsv and .stats.
type memHandle struct {
	write   bool
	data    []byte
	release func() // nil, or called once on release
}

func (h *memHandle) Release(context.Context) syscall.Errno {
	if h.release != nil {
		h.release()
		h.release = nil
	}
	return 0
}

func (h *memHandle) Read(_ context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultData(sliceAt(h.data, off, len(dest))), 0
}

func (h *memHandle) Write(_ context.Context, data []byte, _ int64) (uint32, syscall.Errno) {
	if !h.write {
		return 0, syscall.EBADF
	}
	return uint32(len(data)), 0
}

func (h *memHandle) Flush(context.Context) syscall.Errno { return 0 }
