package fs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"os"
	"sort"
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

	inoKey    []byte    // keys inode numbers (see inodeNumber)
	inoHashes sync.Pool // HMACs keyed with inoKey

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
	f.inoHashes.New = func() any { return hmac.New(sha256.New, f.inoKey) }
	o.Catalog.OnModelChanged(f.modelChanged)
	return f
}

// Root returns the root directory node.
func (f *FS) Root() fusefs.InodeEmbedder {
	r := &rootDir{fsys: f}
	f.root.Store(r)
	return r
}

// modelChanged has the kernel forget the listing and entries of a model
// folder that may show other names (see Catalog.OnModelChanged): it keeps
// them for versionedTimeout otherwise, and the listing until told.
func (f *FS) modelChanged(st *cache.Store, model string) {
	r := f.root.Load()
	if r == nil {
		return
	}
	sd := r.EmbeddedInode().GetChild(st.Name)
	if sd == nil {
		return
	}
	if md := sd.GetChild(model); md != nil {
		f.inval.forgetChildrenLater(md)
	}
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
	// versioned: a model folder, or one of its entries, whose inode
	// number changes with its content (versionedTimeout).
	versioned bool
}

// versionedTimeout is how long the kernel keeps the entries and
// attributes of model folders and of what they hold. Their inode numbers
// include the content's version, so an entry never shows another
// version's attributes: it may only outlive a change of the folder. A
// refresh has the kernel drop them at once, and so does a model that
// changed (FS.modelChanged); otherwise a change of the store
// shows after the listing's TTL, plus this. The kernel then answers a warm
// ls -lR itself, as it does for a local disk.
const versionedTimeout = 10 * time.Minute

// lookupEntry answers a Lookup with e.
func (f *FS) lookupEntry(ctx context.Context, parent *fusefs.Inode, e entry, out *fuse.EntryOut) *fusefs.Inode {
	f.setAttr(&out.Attr, e.mode, e.size, e.mtime)
	out.Ino = e.ino
	if e.versioned {
		out.SetEntryTimeout(versionedTimeout)
		out.SetAttrTimeout(versionedTimeout)
	}
	child := parent.NewInode(ctx, e.node(), fusefs.StableAttr{Mode: e.mode, Ino: e.ino})
	if sd, ok := child.Operations().(*storeDir); ok { // its mtime says which listing the kernel keeps
		f.setAttr(&out.Attr, e.mode, e.size, sd.mtime())
	}
	return child
}

// dirStream lists entries (already sorted) for Readdir.
func dirStream(entries []entry) fusefs.DirStream {
	list := make([]fuse.DirEntry, len(entries))
	for i, e := range entries {
		list[i] = fuse.DirEntry{Name: e.name, Mode: e.mode, Ino: e.ino}
	}
	return fusefs.NewListDirStream(list)
}

// dirHandle is an open directory: its entries, read in order (and from an
// offset after a seek), and the lookups READDIRPLUS makes of them.
type dirHandle struct {
	ds     fusefs.DirStream // as dirStream builds it: it seeks
	lookup func(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno)
}

func (h *dirHandle) Readdirent(context.Context) (*fuse.DirEntry, syscall.Errno) {
	if !h.ds.HasNext() {
		return nil, 0
	}
	de, errno := h.ds.Next()
	return &de, errno
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return h.ds.(fusefs.FileSeekdirer).Seekdir(ctx, off)
}

func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return h.lookup(ctx, name, out)
}

func (h *dirHandle) Releasedir(context.Context, uint32) { h.ds.Close() }

// sortEntries sorts entries by name, for dirStream and searchEntry.
func sortEntries(es []entry) []entry {
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return es
}

// searchEntry finds the entry called name in entries sorted by name.
func searchEntry(es []entry, name string) (entry, bool) {
	i := sort.Search(len(es), func(i int) bool { return es[i].name >= name })
	if i < len(es) && es[i].name == name {
		return es[i], true
	}
	return entry{}, false
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
