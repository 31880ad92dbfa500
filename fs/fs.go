package fs

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// Names the tree uses itself, at the root and in every store directory.
const (
	RefreshName = ".refresh"
	TableName   = "models.tsv"
	WelcomeName = "welcome.txt"
	ErrorName   = "error.txt"
	StatsName   = ".stats"
)

// ReservedStoreNames are names a store directory uses for itself; the
// catalog refuses models called so.
var ReservedStoreNames = []string{RefreshName, TableName, WelcomeName, ErrorName, StatsName}

// Options configure the filesystem.
type Options struct {
	Catalog *cache.Catalog
	Logger  *zap.Logger
	// NotifyWait bounds how long a refresh waits for the kernel to drop
	// its cached entries before returning (default 2s).
	NotifyWait time.Duration
	// OnRead, when set, is told how long each read of a store file took
	// (metrics); it must be quick and safe for concurrent use.
	OnRead func(d time.Duration)
	// CacheDir and Version are shown in .stats, for modelstorefs status.
	CacheDir, Version string
	// UID and GID own every node; nil for the daemon's own.
	UID, GID *uint32
	// Umask clears permission bits of every node but symlinks (whose
	// mode Linux ignores); 0 keeps the tree's modes (see dirMode).
	Umask uint32
}

// FS is the mounted tree's shared state.
type FS struct {
	cat     *cache.Catalog
	log     *zap.Logger
	mounted time.Time
	inval   *invalidator
	uid     uint32
	gid     uint32
	umask   uint32
	daemon  Daemon // shown in .stats

	inoKey []byte // keys inode numbers (see inodeNumber)

	served atomic.Int64 // bytes returned to readers
	reads  atomic.Int64 // FUSE READ requests answered by the daemon
	errMu  sync.Mutex
	errs   map[string]int64 // errno name -> count, for .stats

	onRead      func(time.Duration)
	passthrough atomic.Int64 // estimated bytes the kernel read itself

	root atomic.Pointer[rootDir] // the last Root given out: the mounted one

	// coldDirect: opens of files not yet complete in the cache bypass the
	// kernel's page cache (FOPEN_DIRECT_IO). Set by Mount when the kernel
	// still allows mmap of such files (FUSE_DIRECT_IO_ALLOW_MMAP, 6.6+).
	coldDirect atomic.Bool
}

// New returns the filesystem; Root gives its root node. Close stops its
// goroutine.
func New(o Options) *FS {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.NotifyWait <= 0 {
		o.NotifyWait = 2 * time.Second
	}
	f := &FS{
		cat:     o.Catalog,
		log:     o.Logger,
		mounted: time.Now(),
		inval:   newInvalidator(o.Logger, o.NotifyWait),
		uid:     uint32(syscall.Getuid()),
		gid:     uint32(syscall.Getgid()),
		umask:   o.Umask & 0o777,
		daemon:  Daemon{PID: os.Getpid(), CacheDir: o.CacheDir, Version: o.Version},
		errs:    map[string]int64{},
		inoKey:  o.Catalog.InodeKey(),
		onRead:  o.OnRead,
	}
	if o.UID != nil {
		f.uid = *o.UID
	}
	if o.GID != nil {
		f.gid = *o.GID
	}
	return f
}

// Root returns the root directory node.
func (f *FS) Root() fusefs.InodeEmbedder {
	r := &rootDir{fsys: f}
	f.root.Store(r)
	return r
}

// Close stops the kernel notifier.
func (f *FS) Close() { f.inval.close() }

// setAttr fills the attributes every node shares.
func (f *FS) setAttr(a *fuse.Attr, mode uint32, size int64, mtime time.Time) {
	a.Mode = mode
	if mode&syscall.S_IFMT != syscall.S_IFLNK {
		a.Mode &^= f.umask
	}
	a.Size = uint64(max(size, 0))
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = 1 << 20
	a.Nlink = 1
	if mode&syscall.S_IFDIR != 0 {
		a.Nlink = 2
	}
	a.Owner = fuse.Owner{Uid: f.uid, Gid: f.gid}
	if mtime.IsZero() {
		mtime = f.mounted
	}
	// atime is the mtime too: nothing here tracks access, and 1970 would
	// puzzle find -atime and backup tools.
	a.SetTimes(&mtime, &mtime, &mtime)
}

// Modes of the tree: read-only, but for the .refresh gesture.
const (
	dirMode = syscall.S_IFDIR | 0o555
	// A model folder shows 0755 although it is read-only here: cp -r
	// copies the mode, and DIGITS must be able to rewrite status.pickle
	// (status.pickle.tmp, then rename) in the copied job folder.
	modelDirMode = syscall.S_IFDIR | 0o755
	fileMode     = syscall.S_IFREG | 0o444
	linkMode     = syscall.S_IFLNK | 0o777
	refreshMode  = syscall.S_IFREG | 0o644
)

// readOnly gives every node EROFS on all write paths. Nodes embed it
// instead of fusefs.Inode.
type readOnly struct{ fusefs.Inode }

func (*readOnly) Setattr(context.Context, fusefs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (*readOnly) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}
func (*readOnly) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }
func (*readOnly) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (*readOnly) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (*readOnly) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (*readOnly) Link(context.Context, fusefs.InodeEmbedder, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (*readOnly) Symlink(context.Context, string, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (*readOnly) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (*readOnly) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (*readOnly) Rename(context.Context, string, fusefs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}

// entry is one child of a directory, for Lookup and Readdir alike.
type entry struct {
	name  string
	mode  uint32
	ino   uint64
	size  int64
	mtime time.Time
	node  func() fusefs.InodeEmbedder
}

// lookupEntry answers a Lookup with e.
func (f *FS) lookupEntry(ctx context.Context, parent *fusefs.Inode, e entry, out *fuse.EntryOut) *fusefs.Inode {
	f.setAttr(&out.Attr, e.mode, e.size, e.mtime)
	out.Ino = e.ino
	return parent.NewInode(ctx, e.node(), fusefs.StableAttr{Mode: e.mode, Ino: e.ino})
}

// dirStream lists entries (already sorted) for Readdir.
func dirStream(entries []entry) fusefs.DirStream {
	list := make([]fuse.DirEntry, len(entries))
	for i, e := range entries {
		list[i] = fuse.DirEntry{Name: e.name, Mode: e.mode, Ino: e.ino}
	}
	return fusefs.NewListDirStream(list)
}

// findEntry returns the entry called name.
func findEntry(entries []entry, name string) (entry, bool) {
	for _, e := range entries {
		if e.name == name {
			return e, true
		}
	}
	return entry{}, false
}
