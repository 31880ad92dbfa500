package fs

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

func TestRootReaddir(t *testing.T) {
	e := newEnv(t, storeSpec{name: "sample"}, storeSpec{name: "b-other"})
	got := entryNames(readdir(t, e.root))
	want := []string{RefreshName, StatsName, "b-other", TableName, "sample"}
	if !slices.Equal(got, want) {
		t.Errorf("root entries %q, want %q", got, want)
	}
	if !slices.IsSorted(got) {
		t.Errorf("root entries not sorted: %q", got)
	}
	checkEntriesMatchLookup(t, e.root)
	// The root lists no store: nothing is fetched.
	for i, srv := range e.srvs {
		if n := srv.Total(); n != 0 {
			t.Errorf("store %d: %d requests for the root listing", i, n)
		}
	}
}

func TestRootLookup(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		mode  uint32
		errno syscall.Errno
		node  string // %T of the node
	}{
		{RefreshName, syscall.S_IFREG | 0o644, 0, "*fs.refreshFile"},
		{StatsName, syscall.S_IFREG | 0o444, 0, "*fs.statsFile"},
		{TableName, syscall.S_IFREG | 0o444, 0, "*fs.tableFile"},
		{"sample", syscall.S_IFDIR | 0o555, 0, "*fs.storeDir"},
		{"nope", 0, syscall.ENOENT, ""},
		{"lenet", 0, syscall.ENOENT, ""}, // models live in store dirs
		{WelcomeName, 0, syscall.ENOENT, ""},
		{"", 0, syscall.ENOENT, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out fuse.EntryOut
			ch, errno := e.root.Lookup(testutil.Ctx(t), tt.name, &out)
			if errno != tt.errno {
				t.Fatalf("Lookup(%q) = %v, want %v", tt.name, errno, tt.errno)
			}
			if tt.errno != 0 {
				if ch != nil {
					t.Errorf("Lookup(%q) failed but returned an inode", tt.name)
				}
				return
			}
			if out.Attr.Mode != tt.mode {
				t.Errorf("mode %o, want %o", out.Attr.Mode, tt.mode)
			}
			if got := fmt.Sprintf("%T", ch.Operations()); got != tt.node {
				t.Errorf("node %s, want %s", got, tt.node)
			}
			if out.Attr.Ino <= 1 || out.Attr.Ino != ch.StableAttr().Ino {
				t.Errorf("Ino %d, inode %d", out.Attr.Ino, ch.StableAttr().Ino)
			}
			if out.Attr.Uid != uint32(syscall.Getuid()) || out.Attr.Gid != uint32(syscall.Getgid()) {
				t.Errorf("owner %d:%d", out.Attr.Uid, out.Attr.Gid)
			}
			// A second lookup gives the same inode number.
			var out2 fuse.EntryOut
			if ch2, errno := e.root.Lookup(testutil.Ctx(t), tt.name, &out2); errno != 0 || ch2.StableAttr().Ino != ch.StableAttr().Ino {
				t.Errorf("second Lookup: %v, Ino %d vs %d", errno, out2.Attr.Ino, out.Attr.Ino)
			}
		})
	}
	if a := getattr(t, e.root); a.Mode != syscall.S_IFDIR|0o555 || a.Nlink != 2 {
		t.Errorf("root Getattr mode %o nlink %d", a.Mode, a.Nlink)
	}
}

func TestStoreDir(t *testing.T) {
	e := newEnv(t)
	sd := e.storeNode(t, "sample")
	if a := getattr(t, sd); a.Mode != syscall.S_IFDIR|0o555 {
		t.Errorf("store dir mode %o, want dir 0555", a.Mode)
	}

	got := entryNames(readdir(t, sd))
	want := append([]string{RefreshName}, sampleModels...)
	want = append(want, TableName, WelcomeName)
	if !slices.Equal(got, want) {
		t.Errorf("store entries %q, want %q", got, want)
	}
	checkEntriesMatchLookup(t, sd)

	for _, m := range sampleModels {
		ch, out := lookup(t, sd, m)
		if _, ok := ch.Operations().(*modelDir); !ok {
			t.Errorf("%s: node %T", m, ch.Operations())
		}
		if out.Attr.Mode != syscall.S_IFDIR|0o755 {
			t.Errorf("%s: mode %o, want dir 0755", m, out.Attr.Mode)
		}
	}

	welcome := lookupNode[*dataFile](t, sd, WelcomeName)
	fh, _ := openFile(t, welcome, syscall.O_RDONLY)
	if got := readHandleOrNode(t, welcome, fh, 0, 4096); string(got) != "modelstorefs sample store\n" {
		t.Errorf("welcome.txt = %q", got)
	}
	if a := getattr(t, welcome); a.Size != uint64(len("modelstorefs sample store\n")) || a.Mode != syscall.S_IFREG|0o444 {
		t.Errorf("welcome.txt size %d mode %o", a.Size, a.Mode)
	}

	for _, name := range []string{"nope", "lenet/info.json", ErrorName, StatsName, "LENET"} {
		var out fuse.EntryOut
		if _, errno := sd.Lookup(testutil.Ctx(t), name, &out); errno != syscall.ENOENT {
			t.Errorf("Lookup(%q) = %v, want ENOENT", name, errno)
		}
	}
	// One listing answered all of this.
	if n := e.srv().Count("GET", "master.json"); n != 1 {
		t.Errorf("master.json fetched %d times, want 1", n)
	}
}

// readHandleOrNode reads through fh when it is a reader, else through the
// node (go-fuse calls NodeReader when Open returns no handle).
func readHandleOrNode(t *testing.T, n fusefs.NodeReader, fh fusefs.FileHandle, off int64, size int) []byte {
	t.Helper()
	if fh != nil {
		return readHandle(t, fh, off, size)
	}
	dest := make([]byte, size)
	rr, errno := n.Read(testutil.Ctx(t), nil, dest, off)
	return readResult(t, rr, errno, size)
}

func TestStoreDown(t *testing.T) {
	tests := []struct {
		name       string
		breakStore func(srv *remotetest.Server)
		mention    string
	}{
		{"503", func(srv *remotetest.Server) { srv.SetStatusAll(http.StatusServiceUnavailable) }, "503"},
		{"403", func(srv *remotetest.Server) { srv.SetStatusAll(http.StatusForbidden) }, "403"},
		{"unreachable", func(srv *remotetest.Server) { srv.Close() }, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, storeSpec{name: "up"}, storeSpec{name: "down"})
			tt.breakStore(e.srvs[1])
			sd := e.storeNode(t, "down")

			if got, want := entryNames(readdir(t, sd)), []string{RefreshName, ErrorName}; !slices.Equal(got, want) {
				t.Errorf("entries of a store that is down: %q, want %q", got, want)
			}
			checkEntriesMatchLookup(t, sd)
			ef := lookupNode[*dataFile](t, sd, ErrorName)
			msg := string(ef.file.Data)
			for _, want := range []string{"down", e.srvs[1].URL, "cannot be listed", tt.mention, RefreshName} {
				if !strings.Contains(msg, want) {
					t.Errorf("error.txt does not mention %q:\n%s", want, msg)
				}
			}
			if a := getattr(t, ef); a.Size != uint64(len(ef.file.Data)) {
				t.Errorf("error.txt size %d, has %d bytes", a.Size, len(ef.file.Data))
			}
			for _, name := range []string{"lenet", TableName, WelcomeName} {
				var out fuse.EntryOut
				if _, errno := sd.Lookup(testutil.Ctx(t), name, &out); errno != syscall.ENOENT {
					t.Errorf("Lookup(%q) in a store that is down = %v, want ENOENT", name, errno)
				}
			}
			lookupNode[*refreshFile](t, sd, RefreshName)

			// The other store is not affected.
			up := e.storeNode(t, "up")
			if got := entryNames(readdir(t, up)); !slices.Contains(got, "lenet") || slices.Contains(got, ErrorName) {
				t.Errorf("entries of the store that is up: %q", got)
			}
		})
	}
}

// TestStoreStale: a store that fails after a good listing keeps showing it,
// with error.txt saying so.
func TestStoreStale(t *testing.T) {
	e := newEnv(t)
	sd := e.storeNode(t, "sample")
	before := entryNames(readdir(t, sd))
	e.resolveAll()
	e.cat.Refresh(e.st())
	e.srv().SetStatus("master.json", http.StatusInternalServerError)
	e.srv().SetStatus("", http.StatusInternalServerError)

	got := entryNames(readdir(t, sd))
	want := slices.Clone(before)
	want = append(want, ErrorName)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("entries of a failing store %q, want %q", got, want)
	}
	ef := lookupNode[*dataFile](t, sd, ErrorName)
	if !strings.Contains(string(ef.file.Data), "is failing") || !strings.Contains(string(ef.file.Data), "500") {
		t.Errorf("error.txt:\n%s", ef.file.Data)
	}
	lookupNode[*modelDir](t, sd, "lenet")
}

func TestModelDirLenet(t *testing.T) {
	e := newEnv(t)
	md := e.modelNode(t, "lenet")
	if a := getattr(t, md); a.Mode != syscall.S_IFDIR|0o755 {
		t.Errorf("model dir mode %o, want dir 0755", a.Mode)
	}
	m, err := e.cat.Model(testutil.Ctx(t), e.st(), "lenet")
	if err != nil {
		t.Fatal(err)
	}

	des := readdir(t, md)
	if got := entryNames(des); !slices.Equal(got, lenetFiles) {
		t.Errorf("lenet entries %q\nwant %q", got, lenetFiles)
	}
	checkEntriesMatchLookup(t, md)

	files := storetest.SampleFiles(t)
	for _, de := range des {
		f, ok := m.File(de.Name)
		if !ok {
			t.Errorf("%s: listed but not in the model", de.Name)
			continue
		}
		ch, out := lookup(t, md, de.Name)
		if out.Attr.Size != uint64(f.Size()) {
			t.Errorf("%s: Lookup size %d, catalog %d", de.Name, out.Attr.Size, f.Size())
		}
		switch n := ch.Operations().(type) {
		case *symlink:
			if de.Mode != syscall.S_IFLNK|0o777 {
				t.Errorf("%s: symlink mode %o", de.Name, de.Mode)
			}
			target, errno := n.Readlink(testutil.Ctx(t))
			if errno != 0 || string(target) != f.Target {
				t.Errorf("%s: Readlink = %q, %v; want %q", de.Name, target, errno, f.Target)
			}
			if a := getattr(t, n); a.Size != uint64(len(target)) || a.Mode != syscall.S_IFLNK|0o777 {
				t.Errorf("%s: symlink Getattr size %d mode %o", de.Name, a.Size, a.Mode)
			}
		case *remoteFile:
			want, ok := files["lenet/"+f.Remote]
			if !ok {
				t.Errorf("%s: remote %s not on the store", de.Name, f.Remote)
			}
			if a := getattr(t, n); a.Size != uint64(len(want)) || a.Mode != syscall.S_IFREG|0o444 {
				t.Errorf("%s: Getattr size %d mode %o, the store has %d bytes", de.Name, a.Size, a.Mode, len(want))
			}
		case *dataFile:
			if a := getattr(t, n); a.Size != uint64(len(f.Bytes())) || a.Mode != syscall.S_IFREG|0o444 {
				t.Errorf("%s: Getattr size %d mode %o, data has %d bytes", de.Name, a.Size, a.Mode, len(f.Bytes()))
			}
		default:
			t.Errorf("%s: node %T", de.Name, n)
		}
	}

	link := lookupNode[*symlink](t, md, lenetWeights)
	if target, _ := link.Readlink(testutil.Ctx(t)); string(target) != lenetJobWeights {
		t.Errorf("%s -> %q, want %s", lenetWeights, target, lenetJobWeights)
	}
	lookupNode[*remoteFile](t, md, lenetJobWeights)
	if info := lookupNode[*dataFile](t, md, "info.json"); !bytes.Equal(info.file.Data, files["lenet/info.json"]) {
		t.Errorf("info.json node data differs from the store's")
	}

	for _, name := range []string{"nope", "solver.prototxt", ErrorName, RefreshName, "snapshot.caffemodel"} {
		var out fuse.EntryOut
		if _, errno := md.Lookup(testutil.Ctx(t), name, &out); errno != syscall.ENOENT {
			t.Errorf("Lookup(%q) = %v, want ENOENT", name, errno)
		}
	}
}

func TestModelDirBroken(t *testing.T) {
	e := newEnv(t)
	md := e.modelNode(t, "broken")
	got := entryNames(readdir(t, md))
	if want := []string{ErrorName, "info.json"}; !slices.Equal(got, want) {
		t.Fatalf("broken entries %q, want %q", got, want)
	}
	ef := lookupNode[*dataFile](t, md, ErrorName)
	if !strings.Contains(string(ef.file.Data), "broken cannot be imported") {
		t.Errorf("error.txt:\n%s", ef.file.Data)
	}
}

// TestModelDirGone: a model folder whose model left the listing shows
// nothing, and its names are ENOENT.
func TestModelDirGone(t *testing.T) {
	e := newEnv(t)
	md := &modelDir{folder: folder{fsys: e.fsys, st: e.st(), name: "not-a-model"}}
	sd := e.storeNode(t, "sample")
	sd.EmbeddedInode().NewInode(context.Background(), md, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: 12345})
	var out fuse.EntryOut
	if _, errno := sd.Lookup(testutil.Ctx(t), "not-a-model", &out); errno != syscall.ENOENT {
		t.Errorf("store Lookup of a model not in the listing = %v, want ENOENT", errno)
	}
	if _, errno := md.Lookup(testutil.Ctx(t), "info.json", &out); errno != syscall.ENOENT {
		t.Errorf("Lookup in a model not in the listing = %v, want ENOENT", errno)
	}
	if got := readdir(t, md); len(got) != 0 {
		t.Errorf("Readdir of a model not in the listing: %q", entryNames(got))
	}
}

// TestModelDirMetadataFails: a model whose info.json cannot be fetched
// shows error.txt only.
func TestModelDirMetadataFails(t *testing.T) {
	e := newEnv(t)
	e.srv().SetStatus("lenet/info.json", http.StatusInternalServerError)
	md := e.modelNode(t, "lenet")
	if got := entryNames(readdir(t, md)); !slices.Equal(got, []string{ErrorName}) {
		t.Fatalf("entries %q, want only error.txt", got)
	}
	checkEntriesMatchLookup(t, md)
	ef := lookupNode[*dataFile](t, md, ErrorName)
	if s := string(ef.file.Data); !strings.Contains(s, "lenet") || !strings.Contains(s, "500") {
		t.Errorf("error.txt:\n%s", s)
	}
	var out fuse.EntryOut
	if _, errno := md.Lookup(testutil.Ctx(t), "info.json", &out); errno != syscall.ENOENT {
		t.Errorf("Lookup(info.json) = %v, want ENOENT", errno)
	}
}

// TestLookupInterrupted: a lookup whose request is interrupted while the
// listing is being fetched answers EINTR.
func TestLookupInterrupted(t *testing.T) {
	e := newEnv(t)
	gate := e.srv().Hold("master.json")
	defer gate.Release()
	sd := &storeDir{fsys: e.fsys, st: e.st()}
	e.root.EmbeddedInode().NewInode(context.Background(), sd, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: 777})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-gate.Arrived()
		cancel()
	}()
	var out fuse.EntryOut
	if _, errno := sd.Lookup(ctx, "lenet", &out); errno != syscall.EINTR {
		t.Errorf("interrupted Lookup = %v, want EINTR", errno)
	}
	if _, errno := sd.Readdir(ctx); errno != syscall.EINTR {
		t.Errorf("interrupted Readdir = %v, want EINTR", errno)
	}
	// .refresh needs no listing.
	if _, errno := sd.Lookup(ctx, RefreshName, &out); errno != 0 {
		t.Errorf("Lookup(.refresh) with a held listing = %v", errno)
	}
	gate.Release()
	if got := entryNames(readdir(t, sd)); !slices.Contains(got, "lenet") {
		t.Errorf("after the listing was let through: %q", got)
	}
}
