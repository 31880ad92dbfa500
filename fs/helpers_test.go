package fs

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/engine"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// sampleModels are the sample store's models, sorted.
var sampleModels = []string{"alexnet-torch", "broken", "inception-tf", "lenet"}

// lenetFiles is the lenet folder as the catalog resolves it: DIGITS job
// names, info.json, aux.json with its license and logo, status.pickle, and
// the weights' remote name as a symlink to model.caffemodel.
var lenetFiles = []string{
	"aux.json", "deploy.prototxt", "info.json", "labels.txt", "license.txt", "logo.png",
	"mean.binaryproto", "model.caffemodel", "original.prototxt",
	"snapshot_iter_28140.caffemodel", "status.pickle",
}

// lenetWeights is the remote name of lenet's weights (a symlink in the
// folder) and lenetJobWeights its DIGITS job name (a remote file).
const (
	lenetWeights    = "snapshot_iter_28140.caffemodel"
	lenetJobWeights = "model.caffemodel"
)

// storeSpec is one store of a test filesystem.
type storeSpec struct {
	name  string
	files map[string][]byte // nil: the sample store
	opt   remotetest.Options
}

// env is a filesystem over remotetest stores, its root attached to a
// go-fuse bridge without a kernel mount.
type env struct {
	t       *testing.T
	srvs    []*remotetest.Server // per store, in mount order
	stores  []*cache.Store
	cat     *cache.Catalog
	content *engine.StreamContent
	fsys    *FS
	root    *rootDir
	notes   *notifyRecorder
	logs    *observer.ObservedLogs
}

// newEnv builds an FS over one store per spec (default: one store "sample"
// holding the sample files).
func newEnv(t *testing.T, specs ...storeSpec) *env {
	t.Helper()
	if len(specs) == 0 {
		specs = []storeSpec{{name: "sample"}}
	}
	e := &env{t: t, notes: &notifyRecorder{}}
	for _, sp := range specs {
		files := sp.files
		if files == nil {
			files = storetest.SampleFiles(t)
		}
		srv := storetest.NewServer(t, files, sp.opt)
		e.srvs = append(e.srvs, srv)
		e.stores = append(e.stores, &cache.Store{Name: sp.name, Remote: storetest.Remote(t, srv.URL)})
	}
	content, err := engine.NewStreamContent(engine.StreamConfig{Dir: t.TempDir(), MinFree: new(int64(0)), RetryWindow: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.content = content
	e.cat = cache.NewCatalog(e.stores, content, cache.Config{Reserved: ReservedStoreNames, JobsDir: "/jobs"})
	core, logs := observer.New(zapcore.WarnLevel)
	e.logs = logs
	e.fsys = New(Options{Catalog: e.cat, Logger: zap.New(core), NotifyWait: time.Second})
	e.root = e.fsys.Root().(*rootDir)
	fusefs.NewNodeFS(e.root, &fusefs.Options{RootStableAttr: &fusefs.StableAttr{Ino: 1}, ServerCallbacks: e.notes})
	t.Cleanup(func() {
		e.fsys.Close()
		e.cat.Close()
		content.Close()
	})
	return e
}

// resolveAll resolves every listed model, sharing the fetches of the
// prefetch that follows a listing: when it returns, that prefetch sends no
// more requests (what it still asks for is cached), so request counts
// taken afterwards are the test's own.
func (e *env) resolveAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, st := range e.stores {
		if _, ok := e.cat.CachedListing(st); ok {
			_, _ = e.cat.Models(ctx, st)
		}
	}
}

// srv returns the sample store's server (the first store).
func (e *env) srv() *remotetest.Server { return e.srvs[0] }

// st returns the first store.
func (e *env) st() *cache.Store { return e.stores[0] }

// notifyRecorder stands in for the kernel: it records entry
// notifications, and the inodes whose content (a folder's listing) it
// was told to drop.
type notifyRecorder struct {
	mu      sync.Mutex
	entries []notified
	inodes  []uint64
}

// inodesSince returns the node IDs of the content notifications from the
// from-th on.
func (r *notifyRecorder) inodesSince(from int) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.inodes[from:])
}

func (r *notifyRecorder) inodeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inodes)
}

type notified struct {
	parent uint64
	name   string
}

func (r *notifyRecorder) EntryNotify(parent uint64, name string) fuse.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, notified{parent, name})
	return fuse.OK
}

// since returns the notifications from the from-th on: the parents' node
// IDs (the root's is 1; go-fuse allocates the others), and the names, sorted.
func (r *notifyRecorder) since(from int) (parents map[uint64]bool, names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	parents = map[uint64]bool{}
	for _, n := range r.entries[from:] {
		parents[n.parent] = true
		names = append(names, n.name)
	}
	slices.Sort(names)
	return parents, names
}

func (r *notifyRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

func (*notifyRecorder) DeleteNotify(uint64, uint64, string) fuse.Status { return fuse.OK }
func (r *notifyRecorder) InodeNotify(node uint64, _, _ int64) fuse.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inodes = append(r.inodes, node)
	return fuse.OK
}
func (*notifyRecorder) InodeRetrieveCache(uint64, int64, []byte) (int, fuse.Status) {
	return 0, fuse.ENOSYS
}
func (*notifyRecorder) InodeNotifyStoreCache(uint64, int64, []byte) fuse.Status { return fuse.OK }

// lookup calls Lookup on dir and fails the test unless it succeeds.
func lookup(t *testing.T, dir fusefs.NodeLookuper, name string) (*fusefs.Inode, fuse.EntryOut) {
	t.Helper()
	var out fuse.EntryOut
	ch, errno := dir.Lookup(testutil.Ctx(t), name, &out)
	if errno != 0 {
		t.Fatalf("Lookup(%q): %v", name, errno)
	}
	if ch == nil {
		t.Fatalf("Lookup(%q): nil inode", name)
	}
	return ch, out
}

// lookupNode is lookup returning the child's node.
func lookupNode[T fusefs.InodeEmbedder](t *testing.T, dir fusefs.NodeLookuper, name string) T {
	t.Helper()
	ch, _ := lookup(t, dir, name)
	n, ok := ch.Operations().(T)
	if !ok {
		t.Fatalf("Lookup(%q): node %T", name, ch.Operations())
	}
	return n
}

// readdir lists dir completely.
func readdir(t *testing.T, dir fusefs.NodeReaddirer) []fuse.DirEntry {
	t.Helper()
	ds, errno := dir.Readdir(testutil.Ctx(t))
	if errno != 0 {
		t.Fatalf("Readdir: %v", errno)
	}
	defer ds.Close()
	var out []fuse.DirEntry
	for ds.HasNext() {
		de, errno := ds.Next()
		if errno != 0 {
			t.Fatalf("Readdir: Next: %v", errno)
		}
		out = append(out, de)
	}
	return out
}

func entryNames(des []fuse.DirEntry) []string {
	out := make([]string, len(des))
	for i, de := range des {
		out[i] = de.Name
	}
	return out
}

// checkEntriesMatchLookup checks that every Readdir entry of dir has the
// inode number and mode its Lookup returns.
func checkEntriesMatchLookup(t *testing.T, dir interface {
	fusefs.NodeLookuper
	fusefs.NodeReaddirer
}) {
	t.Helper()
	for _, de := range readdir(t, dir) {
		ch, out := lookup(t, dir, de.Name)
		if de.Ino != out.Attr.Ino || de.Ino != ch.StableAttr().Ino {
			t.Errorf("%s: Readdir Ino %d, Lookup out.Ino %d, inode %d", de.Name, de.Ino, out.Attr.Ino, ch.StableAttr().Ino)
		}
		if de.Mode != out.Attr.Mode {
			t.Errorf("%s: Readdir Mode %o, Lookup Mode %o", de.Name, de.Mode, out.Attr.Mode)
		}
		if ch.StableAttr().Mode != de.Mode&syscall.S_IFMT {
			t.Errorf("%s: inode type %o, Readdir Mode %o", de.Name, ch.StableAttr().Mode, de.Mode)
		}
	}
}

// readResult returns the bytes of a Read's result, failing the test on
// an error.
func readResult(t *testing.T, rr fuse.ReadResult, errno syscall.Errno, size int) []byte {
	t.Helper()
	if errno != 0 {
		t.Fatalf("Read: %v", errno)
	}
	b, st := rr.Bytes(make([]byte, size))
	if !st.Ok() {
		t.Fatalf("Read: ReadResult.Bytes: %v", st)
	}
	rr.Done()
	return slices.Clone(b)
}

// readHandle reads size bytes at off from an open file handle.
func readHandle(t *testing.T, fh fusefs.FileHandle, off int64, size int) []byte {
	t.Helper()
	r, ok := fh.(fusefs.FileReader)
	if !ok {
		t.Fatalf("handle %T is not a FileReader", fh)
	}
	dest := make([]byte, size)
	rr, errno := r.Read(testutil.Ctx(t), dest, off)
	return readResult(t, rr, errno, size)
}

// readAllHandle reads a handle from 0 in 4 KiB pieces until a short read.
func readAllHandle(t *testing.T, fh fusefs.FileHandle) []byte {
	t.Helper()
	var out []byte
	for {
		b := readHandle(t, fh, int64(len(out)), 4096)
		out = append(out, b...)
		if len(b) < 4096 {
			return out
		}
	}
}

// openFile opens a node read-only and fails the test on error.
func openFile(t *testing.T, n fusefs.NodeOpener, flags uint32) (fusefs.FileHandle, uint32) {
	t.Helper()
	fh, fl, errno := n.Open(testutil.Ctx(t), flags)
	if errno != 0 {
		t.Fatalf("Open(%#o): %v", flags, errno)
	}
	return fh, fl
}

// release releases a handle that has a Release method.
func release(t *testing.T, fh fusefs.FileHandle) {
	t.Helper()
	if r, ok := fh.(fusefs.FileReleaser); ok {
		if errno := r.Release(context.Background()); errno != 0 {
			t.Errorf("Release: %v", errno)
		}
	}
}

// getattr returns a node's attributes.
func getattr(t *testing.T, n fusefs.NodeGetattrer) fuse.Attr {
	t.Helper()
	var out fuse.AttrOut
	if errno := n.Getattr(testutil.Ctx(t), nil, &out); errno != 0 {
		t.Fatalf("Getattr: %v", errno)
	}
	return out.Attr
}

// storeNode looks up a store directory below the root.
func (e *env) storeNode(t *testing.T, name string) *storeDir {
	t.Helper()
	return lookupNode[*storeDir](t, e.root, name)
}

// modelNode looks up a model folder of the first store.
func (e *env) modelNode(t *testing.T, model string) *modelDir {
	t.Helper()
	return lookupNode[*modelDir](t, e.storeNode(t, e.st().Name), model)
}

// TestReservedShared: the reserved names the tests below fs configure
// their catalogs with (storetest.Reserved) are the filesystem's own.
func TestReservedShared(t *testing.T) {
	if !slices.Equal(storetest.Reserved, ReservedStoreNames) {
		t.Errorf("storetest.Reserved %q, fs.ReservedStoreNames %q", storetest.Reserved, ReservedStoreNames)
	}
}
