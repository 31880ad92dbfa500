package fs

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

func TestDataFileRead(t *testing.T) {
	e := newEnv(t)
	md := e.modelNode(t, "lenet")
	info := lookupNode[*dataFile](t, md, "info.json")
	want := storetest.SampleFiles(t)["lenet/info.json"]

	fh, flags := openFile(t, info, syscall.O_RDONLY)
	if fh != nil {
		t.Errorf("Open returned handle %T; reads go to the node", fh)
	}
	if flags&fuse.FOPEN_KEEP_CACHE == 0 {
		t.Errorf("Open flags %#x: in-memory data files keep the page cache", flags)
	}
	if a := getattr(t, info); a.Size != uint64(len(want)) {
		t.Errorf("Getattr size %d, want %d", a.Size, len(want))
	}

	n := int64(len(want))
	tests := []struct {
		name string
		off  int64
		size int
		want []byte
	}{
		{"whole", 0, len(want) + 100, want},
		{"exact", 0, len(want), want},
		{"head", 0, 10, want[:10]},
		{"middle", 17, 33, want[17:50]},
		{"tail", n - 5, 100, want[n-5:]},
		{"last byte", n - 1, 1, want[n-1:]},
		{"at EOF", n, 10, nil},
		{"past EOF", n + 1000, 10, nil},
		{"negative", -1, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := make([]byte, tt.size)
			rr, errno := info.Read(testutil.Ctx(t), nil, dest, tt.off)
			got := readResult(t, rr, errno, tt.size)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Read(%d, %d) = %q, want %q", tt.off, tt.size, got, tt.want)
			}
		})
	}
}

func TestRemoteFileRead(t *testing.T) {
	e := newEnv(t)
	md := e.modelNode(t, "lenet")
	rf := lookupNode[*remoteFile](t, md, lenetJobWeights)
	want := storetest.SampleFiles(t)["lenet/"+lenetWeights]
	n := int64(len(want))

	if a := getattr(t, rf); a.Size != uint64(n) || a.Mode != syscall.S_IFREG|0o444 || a.Blocks != uint64((n+511)/512) {
		t.Errorf("Getattr size %d mode %o blocks %d; want %d bytes", a.Size, a.Mode, a.Blocks, n)
	}
	fh, flags := openFile(t, rf, syscall.O_RDONLY)
	defer release(t, fh)
	if flags&fuse.FOPEN_KEEP_CACHE == 0 {
		t.Errorf("Open flags %#x: versioned remote files keep the page cache", flags)
	}
	if got := readAllHandle(t, fh); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, differ from the store's %d", len(got), len(want))
	}

	tests := []struct {
		name string
		off  int64
		size int
		want []byte
	}{
		{"head", 0, 100, want[:100]},
		{"unaligned", 12345, 7777, want[12345 : 12345+7777]},
		{"tail", n - 10, 4096, want[n-10:]},
		{"at EOF", n, 4096, nil},
		{"past EOF", n + 4096, 4096, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readHandle(t, fh, tt.off, tt.size); !bytes.Equal(got, tt.want) {
				t.Errorf("Read(%d, %d): %d bytes, want %d (equal: %v)", tt.off, tt.size, len(got), len(tt.want), bytes.Equal(got, tt.want))
			}
		})
	}
	if gets := e.srv().Count("GET", "lenet/"+lenetWeights); gets != 1 {
		t.Errorf("weights fetched with %d GETs, want 1 (one chunk)", gets)
	}

	// A second open reads from the complete cache file.
	fh2, _ := openFile(t, rf, syscall.O_RDONLY)
	defer release(t, fh2)
	if got := readHandle(t, fh2, 1000, 2000); !bytes.Equal(got, want[1000:3000]) {
		t.Errorf("second open read differs")
	}
	if gets := e.srv().Count("GET", "lenet/"+lenetWeights); gets != 1 {
		t.Errorf("weights fetched again for the second open: %d GETs", gets)
	}
	if served := e.fsys.Stats().BytesServed; served < n {
		t.Errorf("BytesServed %d, at least %d were read", served, n)
	}
}

// TestRemoteFileOpenModes: with the kernel allowing mmap of direct-I/O
// files, a file not yet complete in the cache is opened for direct I/O
// (no FUSE page cache: one copy per byte fewer); once complete, a later
// open of the same node keeps the page cache (this node's first open was
// cold, so it is never passthrough).
func TestRemoteFileOpenModes(t *testing.T) {
	for _, coldDirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("coldDirect=%v", coldDirect), func(t *testing.T) {
			e := newEnv(t)
			e.fsys.coldDirect.Store(coldDirect)
			md := e.modelNode(t, "lenet")
			rf := lookupNode[*remoteFile](t, md, lenetJobWeights)
			want := storetest.SampleFiles(t)["lenet/"+lenetWeights]

			fh, flags := openFile(t, rf, syscall.O_RDONLY)
			wantCold := uint32(fuse.FOPEN_KEEP_CACHE)
			if coldDirect {
				wantCold = fuse.FOPEN_DIRECT_IO
			}
			if flags != wantCold {
				t.Errorf("cold open flags %#x, want %#x", flags, wantCold)
			}
			if got := readAllHandle(t, fh); !bytes.Equal(got, want) {
				t.Fatal("read differs")
			}
			release(t, fh)
			testutil.WaitFor(t, "the file complete in the cache", func() bool {
				h, err := e.content.Open(testutil.Ctx(t), rf.version())
				if err != nil {
					return false
				}
				defer h.Close()
				return h.Fd() >= 0
			})
			fh2, flags2 := openFile(t, rf, syscall.O_RDONLY)
			defer release(t, fh2)
			if flags2 != fuse.FOPEN_KEEP_CACHE {
				t.Errorf("open of the complete file: flags %#x, want FOPEN_KEEP_CACHE", flags2)
			}
			if fh2.(*contentHandle).passthrough {
				t.Error("passthrough on a node first opened cold (the kernel would refuse the open)")
			}
		})
	}
}

// TestRemoteFileReadErrors: failures of the store reach the reader as
// errnos, interruptions as EINTR.
func TestRemoteFileReadErrors(t *testing.T) {
	tests := []struct {
		name  string
		code  int
		errno syscall.Errno
	}{
		{"gone", http.StatusNotFound, syscall.ENOENT},
		{"forbidden", http.StatusForbidden, syscall.EACCES},
		{"server error", http.StatusInternalServerError, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			md := e.modelNode(t, "lenet")
			rf := lookupNode[*remoteFile](t, md, lenetJobWeights)
			e.srv().SetStatus("lenet/"+lenetWeights, tt.code)
			fh, _, errno := rf.Open(testutil.Ctx(t), syscall.O_RDONLY)
			if errno != 0 {
				t.Fatalf("Open = %v: opens do not wait for the download", errno)
			}
			defer release(t, fh)
			_, errno = fh.(fusefs.FileReader).Read(testutil.Ctx(t), make([]byte, 4096), 0)
			if errno != tt.errno {
				t.Errorf("Read = %v, want %v", errno, tt.errno)
			}
		})
	}
}

func TestRemoteFileReadInterrupted(t *testing.T) {
	e := newEnv(t)
	md := e.modelNode(t, "lenet")
	rf := lookupNode[*remoteFile](t, md, lenetJobWeights)
	e.resolveAll()
	gate := e.srv().Hold("lenet/" + lenetWeights)
	defer gate.Release()
	fh, _ := openFile(t, rf, syscall.O_RDONLY)
	defer release(t, fh)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-gate.Arrived()
		cancel()
	}()
	if _, errno := fh.(fusefs.FileReader).Read(ctx, make([]byte, 4096), 0); errno != syscall.EINTR {
		t.Errorf("interrupted Read = %v, want EINTR", errno)
	}
	if n := e.fsys.Stats().Errors["EINTR"]; n != 0 {
		t.Errorf("interruptions counted as errors: %d", n)
	}
	// The shared download goes on: a later read gets the bytes.
	gate.Release()
	want := storetest.SampleFiles(t)["lenet/"+lenetWeights]
	if got := readHandle(t, fh, 0, 100); !bytes.Equal(got, want[:100]) {
		t.Errorf("read after the interruption differs")
	}
}

func TestReadOnlyNodes(t *testing.T) {
	e := newEnv(t)
	sd := e.storeNode(t, "sample")
	md := lookupNode[*modelDir](t, sd, "lenet")
	nodes := map[string]fusefs.InodeEmbedder{
		"root":         e.root,
		"store":        sd,
		"model":        md,
		"data file":    lookupNode[*dataFile](t, md, "info.json"),
		"remote file":  lookupNode[*remoteFile](t, md, lenetJobWeights),
		"symlink":      lookupNode[*symlink](t, md, lenetWeights),
		"welcome.txt":  lookupNode[*dataFile](t, sd, WelcomeName),
		"models.tsv":   lookupNode[*tableFile](t, sd, TableName),
		".stats":       lookupNode[*statsFile](t, e.root, StatsName),
		"root .refres": lookupNode[*refreshFile](t, e.root, RefreshName),
	}
	ctx := testutil.Ctx(t)
	for name, n := range nodes {
		t.Run(name, func(t *testing.T) {
			var out fuse.EntryOut
			if _, isRefresh := n.(*refreshFile); !isRefresh {
				s := n.(fusefs.NodeSetattrer)
				in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_MODE, Mode: 0o777}}
				if errno := s.Setattr(ctx, nil, in, &fuse.AttrOut{}); errno != syscall.EROFS {
					t.Errorf("Setattr(mode) = %v, want EROFS", errno)
				}
				in = &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_MTIME, Mtime: 1}}
				if errno := s.Setattr(ctx, nil, in, &fuse.AttrOut{}); errno != syscall.EROFS {
					t.Errorf("Setattr(mtime) = %v, want EROFS", errno)
				}
			}
			if _, _, _, errno := n.(fusefs.NodeCreater).Create(ctx, "x", syscall.O_WRONLY, 0o644, &out); errno != syscall.EROFS {
				t.Errorf("Create = %v, want EROFS", errno)
			}
			if _, errno := n.(fusefs.NodeMkdirer).Mkdir(ctx, "x", 0o755, &out); errno != syscall.EROFS {
				t.Errorf("Mkdir = %v, want EROFS", errno)
			}
			if _, errno := n.(fusefs.NodeMknoder).Mknod(ctx, "x", syscall.S_IFIFO|0o644, 0, &out); errno != syscall.EROFS {
				t.Errorf("Mknod = %v, want EROFS", errno)
			}
			if _, errno := n.(fusefs.NodeSymlinker).Symlink(ctx, "t", "x", &out); errno != syscall.EROFS {
				t.Errorf("Symlink = %v, want EROFS", errno)
			}
			if _, errno := n.(fusefs.NodeLinker).Link(ctx, n, "x", &out); errno != syscall.EROFS {
				t.Errorf("Link = %v, want EROFS", errno)
			}
			if errno := n.(fusefs.NodeUnlinker).Unlink(ctx, "info.json"); errno != syscall.EROFS {
				t.Errorf("Unlink = %v, want EROFS", errno)
			}
			if errno := n.(fusefs.NodeRmdirer).Rmdir(ctx, "lenet"); errno != syscall.EROFS {
				t.Errorf("Rmdir = %v, want EROFS", errno)
			}
			if errno := n.(fusefs.NodeRenamer).Rename(ctx, "a", n, "b", 0); errno != syscall.EROFS {
				t.Errorf("Rename = %v, want EROFS", errno)
			}
			if errno := n.(fusefs.NodeSetxattrer).Setxattr(ctx, "user.x", []byte("v"), 0); errno != syscall.EROFS {
				t.Errorf("Setxattr = %v, want EROFS", errno)
			}
			if errno := n.(fusefs.NodeRemovexattrer).Removexattr(ctx, "user.x"); errno != syscall.EROFS {
				t.Errorf("Removexattr = %v, want EROFS", errno)
			}
		})
	}
	// Nothing changed in the catalog: the model is still there.
	if got := entryNames(readdir(t, md)); len(got) != len(lenetFiles) {
		t.Errorf("lenet entries after the write attempts: %q", got)
	}
}

func TestReadOnlyOpen(t *testing.T) {
	e := newEnv(t)
	sd := e.storeNode(t, "sample")
	md := lookupNode[*modelDir](t, sd, "lenet")
	nodes := map[string]fusefs.NodeOpener{
		"data file":        lookupNode[*dataFile](t, md, "info.json"),
		"remote file":      lookupNode[*remoteFile](t, md, lenetJobWeights),
		"welcome.txt":      lookupNode[*dataFile](t, sd, WelcomeName),
		"store models.tsv": lookupNode[*tableFile](t, sd, TableName),
		"root models.tsv":  lookupNode[*tableFile](t, e.root, TableName),
		".stats":           lookupNode[*statsFile](t, e.root, StatsName),
	}
	flags := []struct {
		name  string
		flags uint32
		errno syscall.Errno
	}{
		{"O_RDONLY", syscall.O_RDONLY, 0},
		{"O_RDONLY|O_NONBLOCK", syscall.O_RDONLY | syscall.O_NONBLOCK, 0},
		{"O_WRONLY", syscall.O_WRONLY, syscall.EROFS},
		{"O_RDWR", syscall.O_RDWR, syscall.EROFS},
		{"O_RDONLY|O_TRUNC", syscall.O_RDONLY | syscall.O_TRUNC, syscall.EROFS},
		{"O_WRONLY|O_APPEND", syscall.O_WRONLY | syscall.O_APPEND, syscall.EROFS},
		{"O_WRONLY|O_CREAT|O_TRUNC", syscall.O_WRONLY | syscall.O_CREAT | syscall.O_TRUNC, syscall.EROFS},
	}
	for name, n := range nodes {
		for _, fl := range flags {
			t.Run(name+"/"+fl.name, func(t *testing.T) {
				fh, _, errno := n.Open(testutil.Ctx(t), fl.flags)
				if errno != fl.errno {
					t.Errorf("Open(%s) = %v, want %v", fl.name, errno, fl.errno)
				}
				if errno != 0 && fh != nil {
					t.Errorf("Open(%s) failed but returned a handle", fl.name)
				}
				if fh != nil {
					if w, ok := fh.(fusefs.FileWriter); ok {
						if _, errno := w.Write(testutil.Ctx(t), []byte("x"), 0); errno == 0 {
							t.Errorf("Write on a read-only handle succeeded")
						}
					}
					release(t, fh)
				}
			})
		}
	}
}

// TestOpenModesNeverMix drives a node through sequences of opens and
// releases against a model of the kernel's rule (fs/fuse/iomode.c): an
// inode with a page-cache open refuses a passthrough open, and one with a
// passthrough open a page-cache open, both with EIO and no word to the
// daemon. Direct I/O opens take no mode. go-fuse itself gives every open
// passthrough while a passthrough handle of the node is open, so the model
// does too.
func TestOpenModesNeverMix(t *testing.T) {
	type step struct {
		open     bool // else release the oldest open handle
		complete bool // the file is complete in the cache at the open
	}
	open := func(complete bool) step { return step{open: true, complete: complete} }
	release := step{}
	cases := []struct {
		name       string
		coldDirect bool
		steps      []step
		wantPT     []bool // passthrough of each open, in order
	}{
		{"first open complete: passthrough", true, []step{open(true), open(true)}, []bool{true, true}},
		{"first open cold: never passthrough", true, []step{open(false), release, open(true)}, []bool{false, false}},
		// The file was evicted and is being fetched again while direct
		// I/O is off: its page-cache open must hold off passthrough.
		{"page-cache open holds off passthrough", false,
			[]step{open(true), release, open(false), open(true), release, release, open(true)}, []bool{true, false, false, true}},
		{"direct I/O opens take no mode", true,
			[]step{open(true), release, open(false), open(true)}, []bool{true, false, true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := &remoteFile{}
			type handle struct{ pt, cached bool }
			var handles []handle
			var gotPT []bool
			ptOpen := 0
			for i, st := range c.steps {
				if !st.open {
					h := handles[0]
					handles = handles[1:]
					if h.pt {
						ptOpen--
					}
					if h.cached { // the node counted it, whatever go-fuse made of it
						n.cacheReleased()
					}
					continue
				}
				pt, direct := n.openMode(st.complete, c.coldDirect)
				cached := !pt && !direct
				if ptOpen > 0 {
					pt = true // go-fuse reuses the live backing file
				}
				cacheOpen := 0
				for _, h := range handles {
					if h.cached && !h.pt {
						cacheOpen++
					}
				}
				if pt && cacheOpen > 0 || !pt && cached && ptOpen > 0 {
					t.Fatalf("step %d: the kernel would refuse this open (passthrough %v, page-cache opens %d, passthrough opens %d)",
						i, pt, cacheOpen, ptOpen)
				}
				if pt {
					ptOpen++
				}
				handles = append(handles, handle{pt: pt, cached: cached})
				gotPT = append(gotPT, pt)
			}
			if fmt.Sprint(gotPT) != fmt.Sprint(c.wantPT) {
				t.Errorf("passthrough per open %v, want %v", gotPT, c.wantPT)
			}
		})
	}
}

// TestFdReplyReadFailureLogged: when go-fuse falls back to reading a cache
// file for a reply and the read fails, the reader gets EIO and the log
// has one line with the cause (it used to be an errno without a word).
func TestFdReplyReadFailureLogged(t *testing.T) {
	e := newEnv(t)
	md := e.modelNode(t, "lenet")
	rf := lookupNode[*remoteFile](t, md, lenetJobWeights)
	dir, err := os.Open(t.TempDir()) // pread of a directory fails: EISDIR
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	r := &fdReply{c: &contentHandle{fsys: e.fsys, ref: rf.version()}, fd: dir.Fd(), off: 4096, n: 512}
	data, status := r.Bytes(make([]byte, 512))
	if status != fuse.EIO || len(data) != 0 {
		t.Errorf("Bytes = %d bytes, %v; want none, EIO", len(data), status)
	}
	logs := e.logs.FilterMessage("read failed").All()
	if len(logs) != 1 {
		t.Fatalf("%d 'read failed' log lines, want 1", len(logs))
	}
	ctx := logs[0].ContextMap()
	if ctx["errno"] != syscall.EIO.Error() || !strings.Contains(fmt.Sprint(ctx["error"]), "is a directory") || ctx["url"] != rf.version().URL() {
		t.Errorf("log line %v: want errno EIO, the cause and the URL", ctx)
	}
	if got := e.fsys.Stats().Errors["EIO"]; got != 1 {
		t.Errorf(".stats counts %d EIO, want 1", got)
	}

	// A read that works returns the bytes.
	f, err := os.CreateTemp(t.TempDir(), "cache")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("0123456789"), 0); err != nil {
		t.Fatal(err)
	}
	r = &fdReply{c: r.c, fd: f.Fd(), off: 2, n: 100}
	if data, status := r.Bytes(make([]byte, 100)); status != fuse.OK || string(data) != "23456789" {
		t.Errorf("Bytes = %q %v, want the file from offset 2", data, status)
	}
}
