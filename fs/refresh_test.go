package fs

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/cache"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// refreshed reports whether st's listing was dropped (it is no longer
// cached) and LastRefresh moved past before.
func (e *env) refreshed(st *cache.Store, before time.Time) bool {
	_, cached := e.cat.CachedListing(st)
	return !cached && e.cat.LastRefresh(st).After(before)
}

// listed fetches st's listing, so that a refresh can be seen dropping it.
func (e *env) listed(t *testing.T, st *cache.Store) {
	t.Helper()
	if _, err := e.cat.Listing(testutil.Ctx(t), st); err != nil {
		t.Fatal(err)
	}
	e.resolveAll()
}

func TestRefreshReadOpenDoesNotRefresh(t *testing.T) {
	e := newEnv(t)
	sd := e.storeNode(t, "sample")
	rf := lookupNode[*refreshFile](t, sd, RefreshName)
	e.listed(t, e.st())
	e.srv().ResetCounts()
	before, beforeAll := e.cat.LastRefresh(e.st()), e.cat.LastRefresh(nil)

	for _, flags := range []uint32{syscall.O_RDONLY, syscall.O_RDONLY | syscall.O_NONBLOCK} {
		fh, fl := openFile(t, rf, flags)
		if fl&fuse.FOPEN_DIRECT_IO == 0 {
			t.Errorf("Open flags %#x: .refresh is served with direct I/O", fl)
		}
		got := string(readAllHandle(t, fh))
		want := "store sample: last refreshed " + before.Format(time.RFC3339) + "\n"
		if got != want {
			t.Errorf(".refresh reads %q, want %q", got, want)
		}
		if got := readHandle(t, fh, int64(len(want)), 100); len(got) != 0 {
			t.Errorf("read past the status line: %q", got)
		}
		if _, errno := fh.(fusefs.FileWriter).Write(testutil.Ctx(t), []byte("x"), 0); errno != syscall.EBADF {
			t.Errorf("Write on a read handle = %v, want EBADF", errno)
		}
		release(t, fh)
	}
	// Getattr does not refresh either.
	if a := getattr(t, rf); a.Mode != syscall.S_IFREG|0o644 || a.Size != uint64(len(rf.status())) {
		t.Errorf(".refresh Getattr mode %o size %d", a.Mode, a.Size)
	}

	if !e.cat.LastRefresh(e.st()).Equal(before) || !e.cat.LastRefresh(nil).Equal(beforeAll) {
		t.Errorf("a read-open refreshed: LastRefresh %v -> %v", before, e.cat.LastRefresh(e.st()))
	}
	if _, ok := e.cat.CachedListing(e.st()); !ok {
		t.Error("a read-open dropped the listing")
	}
	readdir(t, sd)
	if n := e.srv().Count("", "master.json"); n != 0 {
		t.Errorf("master.json requested %d times after a read-open, want 0", n)
	}
}

func TestRefreshWriteOpen(t *testing.T) {
	tests := []struct {
		name  string
		flags uint32
	}{
		{"O_WRONLY", syscall.O_WRONLY},
		{"O_RDWR", syscall.O_RDWR},
		{"O_WRONLY|O_CREAT|O_TRUNC", syscall.O_WRONLY | syscall.O_CREAT | syscall.O_TRUNC},
		{"O_RDONLY|O_TRUNC", syscall.O_RDONLY | syscall.O_TRUNC},
		{"O_WRONLY|O_APPEND", syscall.O_WRONLY | syscall.O_APPEND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			sd := e.storeNode(t, "sample")
			rf := lookupNode[*refreshFile](t, sd, RefreshName)
			readdir(t, sd)
			e.resolveAll()
			e.srv().ResetCounts()
			before := e.cat.LastRefresh(e.st())
			beforeAll := e.cat.LastRefresh(nil)
			time.Sleep(time.Millisecond)

			fh, fl := openFile(t, rf, tt.flags)
			if fl&fuse.FOPEN_DIRECT_IO == 0 {
				t.Errorf("Open flags %#x: .refresh is served with direct I/O", fl)
			}
			if !e.refreshed(e.st(), before) {
				t.Fatalf("write-open did not refresh: LastRefresh %v -> %v", before, e.cat.LastRefresh(e.st()))
			}
			if !e.cat.LastRefresh(nil).Equal(beforeAll) {
				t.Errorf("a store's .refresh moved the mount's LastRefresh")
			}
			w := fh.(fusefs.FileWriter)
			for _, data := range [][]byte{[]byte("\n"), []byte("refresh please"), make([]byte, 1<<16)} {
				if n, errno := w.Write(testutil.Ctx(t), data, 0); errno != 0 || n != uint32(len(data)) {
					t.Errorf("Write(%d bytes) = %d, %v", len(data), n, errno)
				}
			}
			if errno := fh.(fusefs.FileFlusher).Flush(testutil.Ctx(t)); errno != 0 {
				t.Errorf("Flush = %v", errno)
			}
			release(t, fh)

			readdir(t, sd)
			if n := e.srv().Count("GET", "master.json"); n != 1 {
				t.Errorf("master.json fetched %d times after the refresh, want 1", n)
			}
			// The status line tells the new time.
			if got, want := rf.status(), "store sample: last refreshed "+e.cat.LastRefresh(e.st()).Format(time.RFC3339)+"\n"; got != want {
				t.Errorf("status %q, want %q", got, want)
			}
		})
	}
}

// TestRefreshSetattr: touch and ": >" send a SETATTR after the write-open;
// it belongs to the same gesture. A SETATTR by path alone refreshes.
func TestRefreshSetattr(t *testing.T) {
	e := newEnv(t)
	sd := e.storeNode(t, "sample")
	rf := lookupNode[*refreshFile](t, sd, RefreshName)
	e.listed(t, e.st())

	before := e.cat.LastRefresh(e.st())
	time.Sleep(time.Millisecond)
	fh, _ := openFile(t, rf, syscall.O_WRONLY|syscall.O_CREAT)
	if !e.refreshed(e.st(), before) {
		t.Fatal("write-open did not refresh")
	}
	e.listed(t, e.st())
	afterOpen := e.cat.LastRefresh(e.st())

	tests := refreshSetattrCases()
	for _, tt := range tests {
		t.Run("with write handle/"+tt.name, func(t *testing.T) {
			var out fuse.AttrOut
			if errno := rf.Setattr(testutil.Ctx(t), fh, &tt.in, &out); errno != 0 {
				t.Fatalf("Setattr = %v", errno)
			}
			if !e.cat.LastRefresh(e.st()).Equal(afterOpen) {
				t.Errorf("Setattr during the write-open refreshed again")
			}
			if _, ok := e.cat.CachedListing(e.st()); !ok {
				t.Errorf("Setattr during the write-open dropped the listing")
			}
			if out.Attr.Mode != syscall.S_IFREG|0o644 {
				t.Errorf("Setattr out mode %o", out.Attr.Mode)
			}
		})
	}
	release(t, fh)

	for _, tt := range tests {
		t.Run("by path/"+tt.name, func(t *testing.T) {
			e.listed(t, e.st())
			before := e.cat.LastRefresh(e.st())
			time.Sleep(time.Millisecond)
			in := tt.in
			in.Valid &^= fuse.FATTR_FH
			var out fuse.AttrOut
			if errno := rf.Setattr(testutil.Ctx(t), nil, &in, &out); errno != 0 {
				t.Fatalf("Setattr = %v", errno)
			}
			if !e.refreshed(e.st(), before) {
				t.Errorf("Setattr by path did not refresh")
			}
			if got := time.Unix(int64(out.Attr.Mtime), int64(out.Attr.Mtimensec)); !got.Equal(e.cat.LastRefresh(e.st())) {
				t.Errorf("Setattr out mtime %v, LastRefresh %v", got, e.cat.LastRefresh(e.st()))
			}
		})
	}

	checkRefreshSetattrRefused(t, e, rf)
}

// refreshSetattrCase is a SETATTR of the refresh gesture: touch, touch -d
// or ": >".
type refreshSetattrCase struct {
	name string
	in   fuse.SetAttrIn
}

func refreshSetattrCases() []refreshSetattrCase {
	return []refreshSetattrCase{
		{"touch (times now)", fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_ATIME | fuse.FATTR_MTIME | fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW | fuse.FATTR_FH}}},
		{"touch -d (times)", fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_ATIME | fuse.FATTR_MTIME, Atime: 1, Mtime: 1}}},
		{"truncate to 0", fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_SIZE | fuse.FATTR_FH}}},
	}
}

// checkRefreshSetattrRefused: chmod, chown and truncating to another size
// than 0 (a write, not the gesture) are refused and do not refresh.
func checkRefreshSetattrRefused(t *testing.T, e *env, rf *refreshFile) {
	t.Helper()
	for _, valid := range []uint32{fuse.FATTR_MODE, fuse.FATTR_UID, fuse.FATTR_GID, fuse.FATTR_MODE | fuse.FATTR_MTIME} {
		e.listed(t, e.st())
		before := e.cat.LastRefresh(e.st())
		in := fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: valid, Mode: 0o600}}
		if errno := rf.Setattr(testutil.Ctx(t), nil, &in, &fuse.AttrOut{}); errno != syscall.EROFS {
			t.Errorf("Setattr(valid %#x) = %v, want EROFS", valid, errno)
		}
		if !e.cat.LastRefresh(e.st()).Equal(before) {
			t.Errorf("Setattr(valid %#x) refreshed", valid)
		}
	}
	// Truncating to another size than 0 is a write, not the gesture.
	beforeTrunc := e.cat.LastRefresh(e.st())
	trunc := fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_SIZE, Size: 100}}
	if errno := rf.Setattr(testutil.Ctx(t), nil, &trunc, &fuse.AttrOut{}); errno != syscall.EROFS {
		t.Errorf("truncate -s 100 .refresh = %v, want EROFS", errno)
	}
	if !e.cat.LastRefresh(e.st()).Equal(beforeTrunc) {
		t.Error("truncate -s 100 refreshed")
	}
}

// TestRefreshScope: the root's .refresh drops every store; a store's only
// its own.
func TestRefreshScope(t *testing.T) {
	e := newEnv(t, storeSpec{name: "a"}, storeSpec{name: "b"})
	a, b := e.stores[0], e.stores[1]
	e.listed(t, a)
	e.listed(t, b)

	before := e.cat.LastRefresh(b)
	beforeAll := e.cat.LastRefresh(nil)
	time.Sleep(time.Millisecond)
	rfA := lookupNode[*refreshFile](t, e.storeNode(t, "a"), RefreshName)
	fh, _ := openFile(t, rfA, syscall.O_WRONLY)
	release(t, fh)
	if _, ok := e.cat.CachedListing(a); ok {
		t.Error("store a's .refresh kept a's listing")
	}
	if _, ok := e.cat.CachedListing(b); !ok || !e.cat.LastRefresh(b).Equal(before) {
		t.Error("store a's .refresh refreshed store b")
	}

	e.listed(t, a)
	root := lookupNode[*refreshFile](t, e.root, RefreshName)
	if got, want := root.status(), "all stores: last refreshed "+beforeAll.Format(time.RFC3339)+"\n"; got != want {
		t.Errorf("root status %q, want %q", got, want)
	}
	fh, _ = openFile(t, root, syscall.O_WRONLY)
	release(t, fh)
	for _, st := range []*cache.Store{a, b} {
		if !e.refreshed(st, before) {
			t.Errorf("root .refresh did not refresh store %s", st.Name)
		}
	}
	if !e.cat.LastRefresh(nil).After(beforeAll) {
		t.Error("root .refresh did not move the mount's LastRefresh")
	}
}

// TestRefreshNotifiesKernel: a refresh has the kernel forget the entries
// it knows below the scope's directory (and only those).
func TestRefreshNotifiesKernel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Attach what the kernel would have looked up: /sample, /sample/lenet,
	// /sample/.refresh, /sample/lenet/info.json.
	attach := func(parent *fusefs.Inode, name string) *fusefs.Inode {
		var out fuse.EntryOut
		ch, errno := parent.Operations().(fusefs.NodeLookuper).Lookup(ctx, name, &out)
		if errno != 0 {
			t.Fatalf("Lookup(%q): %v", name, errno)
		}
		parent.AddChild(name, ch, true)
		return ch
	}
	rootIno := e.root.EmbeddedInode()
	sample := attach(rootIno, "sample")
	attach(rootIno, TableName)
	lenet := attach(sample, "lenet")
	attach(sample, "alexnet-torch")
	rfIno := attach(sample, RefreshName)
	attach(lenet, "info.json")

	fh, _ := openFile(t, rfIno.Operations().(*refreshFile), syscall.O_WRONLY)
	release(t, fh)
	// forgetChildren waits for the notifier before the open returns.
	parents, names := e.notes.since(0)
	if want := []string{RefreshName, "alexnet-torch", "lenet"}; !slices.Equal(names, want) {
		t.Errorf("entries invalidated by the store's refresh %q, want the store dir's %q", names, want)
	}
	if len(parents) != 1 || parents[1] {
		t.Errorf("notified parents %v, want only the store dir (not the root, node 1)", parents)
	}

	n := e.notes.count()
	rootRf := attach(rootIno, RefreshName)
	var out fuse.AttrOut
	in := fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_MTIME_NOW | fuse.FATTR_MTIME}}
	if errno := rootRf.Operations().(*refreshFile).Setattr(ctx, nil, &in, &out); errno != 0 {
		t.Fatal(errno)
	}
	parents, names = e.notes.since(n)
	if want := []string{RefreshName, TableName, "sample"}; !slices.Equal(names, want) {
		t.Errorf("entries invalidated by the root's refresh %q, want the root's %q", names, want)
	}
	if len(parents) != 1 || !parents[1] {
		t.Errorf("notified parents %v, want only the root (node 1)", parents)
	}
}

// TestFSRefresh: FS.Refresh (SIGHUP, for a mount the kernel keeps
// read-only) is the root's .refresh: every store's listing dropped, the
// kernel told to forget the root's entries.
func TestFSRefresh(t *testing.T) {
	e := newEnv(t, storeSpec{name: "a"}, storeSpec{name: "b"})
	rootIno := e.root.EmbeddedInode()
	for _, name := range []string{"a", "b"} {
		var out fuse.EntryOut
		ch, errno := e.root.Lookup(context.Background(), name, &out)
		if errno != 0 {
			t.Fatalf("Lookup(%q): %v", name, errno)
		}
		rootIno.AddChild(name, ch, true)
	}
	before := time.Now()
	for _, st := range e.stores {
		e.listed(t, st)
	}
	e.fsys.Refresh()
	for _, st := range e.stores {
		if !e.refreshed(st, before) {
			t.Errorf("store %s not refreshed", st.Name)
		}
	}
	if !e.cat.LastRefresh(nil).After(before) {
		t.Error("LastRefresh(nil) did not move: not the root's refresh")
	}
	parents, names := e.notes.since(0)
	if want := []string{"a", "b"}; !slices.Equal(names, want) || len(parents) != 1 || !parents[1] {
		t.Errorf("invalidated %q below %v, want %q below the root (node 1)", names, parents, want)
	}
}

// TestRefreshAfterClose: a refresh after Close neither blocks nor panics.
func TestRefreshAfterClose(t *testing.T) {
	e := newEnv(t)
	rf := lookupNode[*refreshFile](t, e.root, RefreshName)
	e.fsys.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fh, _, errno := rf.Open(context.Background(), syscall.O_WRONLY)
		if errno != 0 {
			t.Errorf("Open after Close = %v", errno)
			return
		}
		release(t, fh)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("refresh after Close blocked")
	}
}
