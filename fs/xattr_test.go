package fs

import (
	"bytes"
	"strconv"
	"strings"
	"syscall"
	"testing"

	fusefs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

func getxattr(t *testing.T, n *remoteFile, name string) (string, syscall.Errno) {
	t.Helper()
	size, errno := n.Getxattr(testutil.Ctx(t), name, nil)
	if errno != 0 {
		return "", errno
	}
	buf := make([]byte, size)
	got, errno := n.Getxattr(testutil.Ctx(t), name, buf)
	if errno != 0 {
		t.Fatalf("Getxattr(%q) with a %d-byte buffer: %v", name, size, errno)
	}
	if got != size {
		t.Errorf("Getxattr(%q): size query %d, value %d bytes", name, size, got)
	}
	return string(buf[:got]), 0
}

func TestXattrs(t *testing.T) {
	e := newEnv(t)
	rf := lookupNode[*remoteFile](t, e.modelNode(t, "lenet"), lenetJobWeights)
	path := "lenet/" + lenetWeights
	size := len(sampleFiles(t)[path])

	// Listxattr: size query, then the sorted names.
	n, errno := rf.Listxattr(testutil.Ctx(t), nil)
	if errno != 0 || n == 0 {
		t.Fatalf("Listxattr size query = %d, %v", n, errno)
	}
	buf := make([]byte, n)
	if got, errno := rf.Listxattr(testutil.Ctx(t), buf); errno != 0 || got != n {
		t.Fatalf("Listxattr = %d, %v; size query said %d", got, errno, n)
	}
	names := strings.Split(strings.TrimSuffix(string(buf), "\x00"), "\x00")
	want := []string{"cached", "etag", "last_modified", "store", "url"}
	if len(names) != len(want) || !bytes.HasSuffix(buf, []byte{0}) {
		t.Fatalf("Listxattr names %q, want %q (NUL-terminated)", names, want)
	}
	for i := range want {
		if names[i] != xattrPrefix+want[i] {
			t.Errorf("name %d = %q, want %q", i, names[i], xattrPrefix+want[i])
		}
	}
	if _, errno := rf.Listxattr(testutil.Ctx(t), make([]byte, n-1)); errno != syscall.ERANGE {
		t.Errorf("Listxattr with a short buffer = %v, want ERANGE", errno)
	}

	values := []struct {
		name, want string
	}{
		{"url", e.srv().URL + path},
		{"store", "sample"},
		{"etag", e.srv().ETag(path)},
		{"cached", "0"},
	}
	for _, v := range values {
		if got, errno := getxattr(t, rf, xattrPrefix+v.name); errno != 0 || got != v.want {
			t.Errorf("%s = %q, %v; want %q", v.name, got, errno, v.want)
		}
	}
	if lm, errno := getxattr(t, rf, xattrPrefix+"last_modified"); errno != 0 || !strings.HasSuffix(lm, " GMT") {
		t.Errorf("last_modified = %q, %v", lm, errno)
	}

	// ERANGE for a buffer too small for the value; the size is returned.
	url := e.srv().URL + path
	if got, errno := rf.Getxattr(testutil.Ctx(t), xattrPrefix+"url", make([]byte, 3)); errno != syscall.ERANGE || got != uint32(len(url)) {
		t.Errorf("Getxattr(url, 3 bytes) = %d, %v; want %d, ERANGE", got, errno, len(url))
	}

	// Unknown names in "user." are ENODATA; other namespaces are not
	// supported at all (EOPNOTSUPP, so that ls -l stops asking; never ENOSYS).
	absent := []struct {
		name  string
		errno syscall.Errno
	}{
		{xattrPrefix + "nope", syscall.ENODATA},
		{xattrPrefix, syscall.ENODATA},
		{"user.modelstore", syscall.ENODATA},
		{"user.other", syscall.ENODATA},
		{"user.modelstore.URL", syscall.ENODATA},
		{"security.selinux", syscall.EOPNOTSUPP},
		{"system.posix_acl_access", syscall.EOPNOTSUPP},
		{"trusted.x", syscall.EOPNOTSUPP},
		{"USER.modelstore.url", syscall.EOPNOTSUPP},
		{"", syscall.EOPNOTSUPP},
	}
	for _, a := range absent {
		if _, errno := rf.Getxattr(testutil.Ctx(t), a.name, make([]byte, 256)); errno != a.errno {
			t.Errorf("Getxattr(%q) = %v, want %v", a.name, errno, a.errno)
		}
		if _, errno := rf.Getxattr(testutil.Ctx(t), a.name, nil); errno != a.errno {
			t.Errorf("Getxattr(%q) size query = %v, want %v", a.name, errno, a.errno)
		}
	}

	// After a complete read, cached is the file's size.
	fh, _ := openFile(t, rf, syscall.O_RDONLY)
	readAllHandle(t, fh)
	release(t, fh)
	// Cached reads a download's entry without the cache lock (a race with
	// the download's end, see the report): ask only once it has ended.
	testutil.WaitFor(t, "download end", func() bool {
		st := e.content.Stats()
		return st.InFlight == 0 && st.Files == 1
	})
	if got, _ := getxattr(t, rf, xattrPrefix+"cached"); got != strconv.Itoa(size) {
		t.Errorf("cached after a full read = %q, want %d", got, size)
	}
}

// TestXattrsOtherNodes: nodes without attributes of their own (here a
// model directory) answer like files: EOPNOTSUPP outside "user.", ENODATA in it.
func TestXattrsOtherNodes(t *testing.T) {
	e := newEnv(t)
	var dir fusefs.NodeGetxattrer = e.modelNode(t, "lenet")
	for name, want := range map[string]syscall.Errno{
		"security.selinux":        syscall.EOPNOTSUPP,
		"system.posix_acl_access": syscall.EOPNOTSUPP,
		xattrPrefix + "url":       syscall.ENODATA,
	} {
		if _, errno := dir.Getxattr(testutil.Ctx(t), name, nil); errno != want {
			t.Errorf("directory Getxattr(%q) = %v, want %v", name, errno, want)
		}
	}
}

// TestXattrsWithoutValidators: etag and last_modified are left out when
// the store sends none.
func TestXattrsWithoutValidators(t *testing.T) {
	e := newEnv(t, storeSpec{name: "sample", opt: remotetest.Options{NoETag: true, NoLastModified: true}})
	rf := lookupNode[*remoteFile](t, e.modelNode(t, "lenet"), lenetJobWeights)
	n, _ := rf.Listxattr(testutil.Ctx(t), nil)
	buf := make([]byte, n)
	rf.Listxattr(testutil.Ctx(t), buf)
	if got, want := string(buf), xattrPrefix+"cached\x00"+xattrPrefix+"store\x00"+xattrPrefix+"url\x00"; got != want {
		t.Errorf("Listxattr = %q, want %q", got, want)
	}
	if _, errno := rf.Getxattr(testutil.Ctx(t), xattrPrefix+"etag", nil); errno != syscall.ENODATA {
		t.Errorf("etag without an ETag = %v, want ENODATA", errno)
	}
}

func TestXattrReply(t *testing.T) {
	v := []byte("value")
	tests := []struct {
		name  string
		dest  []byte
		n     uint32
		errno syscall.Errno
	}{
		{"size query nil", nil, 5, 0},
		{"size query empty", []byte{}, 5, 0},
		{"too small", make([]byte, 4), 5, syscall.ERANGE},
		{"exact", make([]byte, 5), 5, 0},
		{"larger", make([]byte, 64), 5, 0},
	}
	for _, tt := range tests {
		n, errno := xattrReply(v, tt.dest)
		if n != tt.n || errno != tt.errno {
			t.Errorf("%s: xattrReply = %d, %v; want %d, %v", tt.name, n, errno, tt.n, tt.errno)
		}
		if errno == 0 && len(tt.dest) > 0 && string(tt.dest[:n]) != "value" {
			t.Errorf("%s: dest %q", tt.name, tt.dest[:n])
		}
	}
	if n, errno := xattrReply(nil, nil); n != 0 || errno != 0 {
		t.Errorf("empty value: %d, %v", n, errno)
	}
}

// TestXattrsSmallFiles: info.json and aux.json, fetched whole and held in
// memory, carry the same attributes as every other fetched file; error.txt
// and status.pickle, made here, carry none.
func TestXattrsSmallFiles(t *testing.T) {
	e := newEnv(t)
	model := e.modelNode(t, "lenet")
	for _, name := range []string{"info.json", "aux.json"} {
		n := lookupNode[*dataFile](t, model, name)
		size, errno := n.Getxattr(testutil.Ctx(t), xattrPrefix+"url", nil)
		if errno != 0 {
			t.Fatalf("%s: Getxattr url: %v", name, errno)
		}
		buf := make([]byte, size)
		got, _ := n.Getxattr(testutil.Ctx(t), xattrPrefix+"url", buf)
		if url := string(buf[:got]); !strings.HasSuffix(url, "/lenet/"+name) {
			t.Errorf("%s: url %q", name, url)
		}
		got, _ = n.Getxattr(testutil.Ctx(t), xattrPrefix+"cached", buf[:cap(buf)])
		if want := strconv.Itoa(len(sampleFiles(t)["lenet/"+name])); string(buf[:got]) != want {
			t.Errorf("%s: cached %q, want %s (held whole)", name, buf[:got], want)
		}
		if l, errno := n.Listxattr(testutil.Ctx(t), nil); errno != 0 || l == 0 {
			t.Errorf("%s: Listxattr = %d, %v", name, l, errno)
		}
	}
	pickle := lookupNode[*dataFile](t, model, "status.pickle")
	if _, errno := pickle.Getxattr(testutil.Ctx(t), xattrPrefix+"url", nil); errno != syscall.ENODATA {
		t.Errorf("status.pickle has a url xattr: %v", errno)
	}
}
