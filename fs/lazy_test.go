package fs

import (
	"context"
	"net/http"
	"slices"
	"syscall"
	"testing"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// TestModelDirSizes: a folder whose listing names files without sizes
// (python's http.server) resolves without a HEAD; a LOOKUP of a file of
// unknown size asks the sizes of the folder at once, and shows the true
// one; opening a folder sizes it (its verdict is settled then), and the
// next folders of the listing in the background.
func TestModelDirSizes(t *testing.T) {
	e := newEnv(t, storeSpec{name: "sample", opt: remotetest.Options{Listing: true}})
	e.resolveAll()
	if n := e.srv().CountMethod(http.MethodHead); n != 0 {
		t.Fatalf("resolving the store sent %d HEADs", n)
	}
	md := e.modelNode(t, "lenet")
	data, _ := e.srv().Data("lenet/" + lenetWeights)
	_, out := lookup(t, md, lenetJobWeights)
	if out.Attr.Size != uint64(len(data)) {
		t.Errorf("%s: size %d, the store has %d", lenetJobWeights, out.Attr.Size, len(data))
	}
	heads := e.srv().CountMethod(http.MethodHead)
	lookup(t, md, "labels.txt")
	lookup(t, md, "status.pickle")
	if n := e.srv().CountMethod(http.MethodHead); heads == 0 || n != heads {
		t.Errorf("HEADs: %d for the first lookup, %d more after, want all at once", heads, n-heads)
	}

	// Opening alexnet-torch sizes it, READDIRPLUS asks nothing more, and
	// the folders after it are sized in the background.
	ad := e.modelNode(t, "alexnet-torch")
	ctx := testutil.Ctx(t)
	fh, flags, errno := ad.OpendirHandle(ctx, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if flags&fuse.FOPEN_CACHE_DIR == 0 || flags&fuse.FOPEN_KEEP_CACHE == 0 {
		t.Errorf("opendir flags %#x: the kernel may not keep the folder's listing", flags)
	}
	if m, _ := e.cat.CachedModel(e.st(), "alexnet-torch"); m == nil || !m.Sized() {
		t.Error("alexnet-torch not sized by opening it")
	}
	heads = e.srv().CountMethod(http.MethodHead)
	h := fh.(*dirHandle)
	for {
		de, errno := h.Readdirent(ctx)
		if errno != 0 {
			t.Fatal(errno)
		}
		if de == nil {
			break
		}
		var out fuse.EntryOut
		if _, errno := h.Lookup(ctx, de.Name, &out); errno != 0 {
			t.Errorf("READDIRPLUS lookup of %s: %v", de.Name, errno)
		}
	}
	if n := e.srv().CountMethod(http.MethodHead); n != heads {
		t.Errorf("READDIRPLUS of a sized folder sent %d HEADs", n-heads)
	}
	testutil.WaitFor(t, "inception-tf sized ahead", func() bool {
		m, ok := e.cat.CachedModel(e.st(), "inception-tf")
		return ok && m.Sized()
	})
}

// TestModelChangedForgotten: a file found changed on the store drops its
// model, and the kernel is told to drop what it keeps of the folder: its
// listing and its entries.
func TestModelChangedForgotten(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rootIno := e.root.EmbeddedInode()
	attach := func(parent *fusefs.Inode, name string) *fusefs.Inode {
		var out fuse.EntryOut
		ch, errno := parent.Operations().(fusefs.NodeLookuper).Lookup(ctx, name, &out)
		if errno != 0 {
			t.Fatalf("Lookup(%q): %v", name, errno)
		}
		parent.AddChild(name, ch, true)
		return ch
	}
	sample := attach(rootIno, "sample")
	lenet := attach(sample, "lenet")
	attach(lenet, "info.json")
	w := attach(lenet, lenetJobWeights)

	// The weights change on the store after the listing: the read fails,
	// the model is dropped.
	data, _ := e.srv().Data("lenet/" + lenetWeights)
	e.srv().Set("lenet/"+lenetWeights, append(data, 'x'))
	n, ni := e.notes.count(), e.notes.inodeCount()
	rf := w.Operations().(*remoteFile)
	if fh, _, errno := rf.Open(testutil.Ctx(t), syscall.O_RDONLY); errno == 0 {
		_, errno = fh.(fusefs.FileReader).Read(testutil.Ctx(t), make([]byte, 4096), 0)
		release(t, fh)
		if errno != syscall.EIO {
			t.Errorf("read of a file changed on the store: %v, want EIO", errno)
		}
	}
	testutil.WaitFor(t, "the folder's listing dropped", func() bool { return e.notes.inodeCount() > ni })
	if got := e.notes.inodesSince(ni); len(got) != 1 {
		t.Errorf("content notifications for nodes %v, want one: lenet's folder", got)
	}
	testutil.WaitFor(t, "the folder's entries dropped", func() bool { return e.notes.count() > n })
	if _, names := e.notes.since(n); !slices.Contains(names, "info.json") {
		t.Errorf("entries dropped %q, want lenet's", names)
	}
	if _, ok := e.cat.CachedModel(e.st(), "lenet"); ok {
		t.Error("lenet still cached after a file changed")
	}
}
