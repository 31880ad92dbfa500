package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// dataEntry is a file held in memory (welcome.txt, error.txt).
func (f *FS) dataEntry(data []byte, mtime time.Time, path ...string) entry {
	file := &cache.File{Name: path[len(path)-1], Kind: cache.KindData, Data: data, ModTime: mtime}
	return entry{
		name: file.Name, mode: fileMode, size: int64(len(data)), mtime: mtime,
		ino:  f.inodeNumber(fileVersion(file), path...),
		node: func() fusefs.InodeEmbedder { return &dataFile{folder: &folder{fsys: f}, file: file} },
	}
}

// readOnlyOpen refuses any open that could write.
func readOnlyOpen(flags uint32) syscall.Errno {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return syscall.EROFS
	}
	return 0
}

// dataFile serves bytes held in memory (or made when read: File.Bytes).
// Its inode number includes a hash of the bytes, so the kernel may keep
// its pages across opens.
type dataFile struct {
	readOnly
	// The model folder of a model's file (for its xattrs; of no model
	// for the tree's own files).
	*folder
	file *cache.File // a model's (its Remote set for info.json and aux.json), or of its own
}

// folder is a model folder's place, shared by the nodes of its files: a
// walk of a large store makes a node of each of its files (110,000 for
// 10,000 models), each kept while the kernel keeps its inode.
type folder struct {
	fsys *FS
	st   *cache.Store
	name string // the model's
}

func (n *dataFile) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.setAttr(&out.Attr, fileMode, n.file.Size(), n.file.ModTime)
	out.SetTimeout(versionedTimeout) // its inode number includes its bytes
	return 0
}

func (n *dataFile) Open(_ context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if errno := readOnlyOpen(flags); errno != 0 {
		return nil, 0, errno
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *dataFile) Read(_ context.Context, _ fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultData(sliceAt(n.file.Bytes(), off, len(dest))), 0
}

// sliceAt returns up to n bytes of data from off.
func sliceAt(data []byte, off int64, n int) []byte {
	if off >= int64(len(data)) || off < 0 {
		return nil
	}
	return data[off:min(off+int64(n), int64(len(data)))]
}

// remoteFile is a file of the store, read through the catalog's Content.
// Its inode number includes the version (validators and size), so pages
// kept across opens are never stale.
type remoteFile struct {
	readOnly
	*folder
	file *cache.File // in the model's files: remote name, version, mtime

	mu     sync.Mutex // protects the fields below
	opened *cache.Ref // once opened, the version it was opened as

	// The kernel fails an open with EIO, without a word to the daemon,
	// when it would mix passthrough and page-cache opens of one inode
	// (fs/fuse/iomode.c: "a server mistake"). So passthrough is chosen at
	// the node's first open (if the file is complete in the cache then),
	// and is not used while an open in page-cache mode is still open.
	decided     bool // passthrough is chosen
	passthrough bool
	cacheOpens  int // open handles in the kernel's page-cache mode
}

// openMode decides how an open is served: passthrough (the kernel reads
// the cache file itself), direct I/O (no page cache; no I/O mode for the
// kernel) or else the page cache, whose handle the node counts until
// cacheReleased.
func (n *remoteFile) openMode(complete, coldDirect bool) (passthrough, direct bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.decided {
		n.decided, n.passthrough = true, complete
	}
	switch {
	case complete && n.passthrough && n.cacheOpens == 0:
		return true, false
	case !complete && coldDirect:
		return false, true
	}
	n.cacheOpens++
	return false, false
}

// cacheReleased ends a page-cache open (the kernel has dropped it from the
// inode's I/O mode before it sends RELEASE).
func (n *remoteFile) cacheReleased() {
	n.mu.Lock()
	n.cacheOpens--
	n.mu.Unlock()
}

func (n *remoteFile) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.setAttr(&out.Attr, fileMode, n.version().Meta.Size, n.file.ModTime)
	out.SetTimeout(versionedTimeout) // its inode number includes its version
	return 0
}

// version is the file's version: as the model says, or once opened, as
// the store confirmed it.
func (n *remoteFile) version() cache.Ref {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.opened != nil {
		return *n.opened
	}
	return cache.Ref{Store: n.st, Model: n.name, Name: n.file.Remote, Meta: n.file.Meta}
}

func (n *remoteFile) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if errno := readOnlyOpen(flags); errno != 0 {
		return nil, 0, errno
	}
	h, ref, err := n.fsys.cat.Open(ctx, n.version())
	if err != nil {
		return nil, 0, n.fsys.toErrno(ctx, "open", err, zap.String("url", ref.URL()))
	}
	n.mu.Lock()
	n.opened = &ref // later opens skip the confirmation
	n.mu.Unlock()
	passthrough, direct := n.openMode(h.Fd() >= 0, n.fsys.coldDirect.Load())
	c := &contentHandle{fsys: n.fsys, h: h, ref: ref, passthrough: passthrough}
	switch {
	case passthrough:
		n.fsys.passthrough.Add(h.Size()) // the kernel reads it without us: assume all of it
	case direct:
		// A cold file: the bytes go from the cache file straight into the
		// reader's buffer, one copy instead of two (no page of the FUSE
		// file is filled). Direct I/O opens do not hold the inode's I/O
		// mode, so a later open, once the file is complete, may still be
		// kept in the page cache.
		return c, fuse.FOPEN_DIRECT_IO, 0
	default:
		c.node = n
	}
	return c, fuse.FOPEN_KEEP_CACHE, 0
}

// contentHandle reads an opened remote file.
type contentHandle struct {
	fsys        *FS
	h           cache.Handle
	ref         cache.Ref
	passthrough bool
	node        *remoteFile // set for a page-cache open, which it counts
}

// PassthroughFd lets the kernel read a file that is complete in the cache
// straight from the cache file (FUSE passthrough, Linux 6.9+, as root),
// bypassing this process entirely.
func (c *contentHandle) PassthroughFd() (int, bool) {
	if !c.passthrough {
		return -1, false
	}
	return c.h.Fd(), true
}

func (c *contentHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	defer c.fsys.observeRead(time.Now())
	c.fsys.reads.Add(1)
	r, err := c.h.Read(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		if r.Done != nil {
			r.Done()
		}
		return nil, c.fsys.toErrno(ctx, "read", err, zap.String("url", c.ref.URL()), zap.Int64("offset", off))
	}
	if r.Fd >= 0 {
		// The bytes are in the cache file: splice them, no copy through
		// this process. Short only at EOF.
		c.fsys.served.Add(int64(r.N))
		return &fdReply{c: c, fd: uintptr(r.Fd), off: r.Off, n: r.N}, 0
	}
	c.fsys.served.Add(int64(len(r.Data)))
	if r.Done != nil {
		return &bufferReply{data: r.Data, done: r.Done}, 0
	}
	return fuse.ReadResultData(r.Data), 0
}

// bufferReply is a reply that points into the engine's buffer: go-fuse
// writes it to the kernel straight from there (Slices: one writev, no
// attempt at a splice), then calls Done, which lets the engine reuse the
// buffer.
type bufferReply struct {
	data []byte
	done func()
}

func (r *bufferReply) Bytes([]byte) ([]byte, fuse.Status) { return r.data, fuse.OK }
func (r *bufferReply) Slices() ([][]byte, fuse.Status)    { return [][]byte{r.data}, fuse.OK }
func (r *bufferReply) Size() int                          { return len(r.data) }
func (r *bufferReply) Done()                              { r.done() }

// fdReply is a reply from a cache file, as fuse.ReadResultFd, except for
// its fallback: go-fuse splices it (Seekable) and, when the splice fails
// (which it logs), reads it (Bytes). A failed read there becomes the
// reply's errno with no word in the log; here it goes through toErrno,
// logged once with its cause, and is answered with EIO.
type fdReply struct {
	c   *contentHandle
	fd  uintptr
	off int64
	n   int
}

func (r *fdReply) Seekable() (uintptr, int64, int) { return r.fd, r.off, r.n }
func (r *fdReply) Size() int                       { return r.n }
func (r *fdReply) Done()                           {}

func (r *fdReply) Bytes(buf []byte) ([]byte, fuse.Status) {
	n, err := syscall.Pread(int(r.fd), buf[:min(len(buf), r.n)], r.off)
	if err != nil {
		errno := r.c.fsys.toErrno(context.Background(), "read", fmt.Errorf("reading the cache file for the reply (its splice failed): %w", err),
			zap.String("url", r.c.ref.URL()), zap.Int64("offset", r.off))
		return nil, fuse.Status(errno)
	}
	return buf[:max(n, 0)], fuse.OK
}

func (c *contentHandle) Release(ctx context.Context) syscall.Errno {
	if c.node != nil {
		c.node.cacheReleased()
		c.node = nil
	}
	if err := c.h.Close(); err != nil {
		return c.fsys.toErrno(ctx, "release", err, zap.String("url", c.ref.URL()))
	}
	return 0
}

// symlink keeps a remote file name visible, pointing at its job name.
type symlink struct {
	readOnly
	fsys *FS
	file *cache.File // its Target and ModTime
}

func (n *symlink) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.setAttr(&out.Attr, linkMode, int64(len(n.file.Target)), n.file.ModTime)
	out.SetTimeout(versionedTimeout) // its inode number includes its target
	return 0
}

func (n *symlink) Readlink(context.Context) ([]byte, syscall.Errno) {
	return []byte(n.file.Target), 0
}
