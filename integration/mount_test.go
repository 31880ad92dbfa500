package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// storeName is the directory a loopback store URL gets: 127.0.0.1_PORT[_path].
func storeName(url string) string {
	s := strings.TrimPrefix(url, "http://")
	s = strings.Trim(s, "/")
	return strings.NewReplacer(":", "_", "/", "_").Replace(s)
}

// wantLenet is the lenet folder as DIGITS needs it, plus the remote-name
// symlink and the store's extra files.
var wantLenet = []string{
	"aux.json", "deploy.prototxt", "info.json", "labels.txt", "license.txt", "logo.png",
	"mean.binaryproto", "model.caffemodel", "original.prototxt",
	"snapshot_iter_28140.caffemodel", "status.pickle",
}

// checkSampleStore asserts the tree of the bundled sample store mounted at
// root: names, byte-exact content, sizes, the symlink, error.txt.
func checkSampleStore(t *testing.T, root, src string) {
	t.Helper()
	if got, want := listDir(t, root), []string{".refresh", "alexnet-torch", "broken", "inception-tf", "lenet", "models.tsv", "welcome.txt"}; !slices.Equal(got, want) {
		t.Fatalf("store dir = %q, want %q", got, want)
	}
	lenet := filepath.Join(root, "lenet")
	if got := listDir(t, lenet); !slices.Equal(got, wantLenet) {
		t.Errorf("lenet = %q, want %q", got, wantLenet)
	}
	// Byte-exact, with cmp as a user would check it.
	for mounted, remote := range map[string]string{
		"lenet/model.caffemodel":     "lenet/snapshot_iter_28140.caffemodel",
		"lenet/original.prototxt":    "lenet/original.prototxt",
		"lenet/info.json":            "lenet/info.json",
		"lenet/labels.txt":           "lenet/labels.txt",
		"lenet/logo.png":             "lenet/logo.png",
		"alexnet-torch/_Model.t7":    "alexnet-torch/snapshot_30_Model.t7",
		"alexnet-torch/original.lua": "alexnet-torch/model.lua",
	} {
		if out, err := runCmd(t, "cmp", filepath.Join(root, mounted), filepath.Join(src, remote)); err != nil {
			t.Errorf("cmp %s: %v %s", mounted, err, out)
		}
		fi, err := os.Stat(filepath.Join(root, mounted))
		if err != nil {
			t.Fatal(err)
		}
		si, _ := os.Stat(filepath.Join(src, remote))
		if fi.Size() != si.Size() || fi.Mode() != 0o444 {
			t.Errorf("stat %s: size %d mode %v, want %d -r--r--r--", mounted, fi.Size(), fi.Mode(), si.Size())
		}
	}
	if target, err := os.Readlink(filepath.Join(lenet, "snapshot_iter_28140.caffemodel")); err != nil || target != "model.caffemodel" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	broken := filepath.Join(root, "broken")
	if got, want := listDir(t, broken), []string{"error.txt", "info.json"}; !slices.Equal(got, want) {
		t.Errorf("broken = %q, want %q (no status.pickle)", got, want)
	}
	if msg := readFile(t, filepath.Join(broken, "error.txt")); !bytes.Contains(msg, []byte("not valid JSON")) {
		t.Errorf("broken/error.txt = %q", msg)
	}
	if pickle := readFile(t, filepath.Join(lenet, "status.pickle")); !bytes.HasPrefix(pickle, []byte{0x80, 0x02}) || !bytes.Contains(pickle, []byte("PretrainedModelJob")) {
		t.Errorf("status.pickle does not look like a protocol 2 job pickle: %q", pickle[:min(len(pickle), 64)])
	}
	// The walk a cp -r or a backup tool does must be consistent.
	if err := withTimeout(t, 60*time.Second, "fstest", func() error {
		return fstest.TestFS(os.DirFS(root), "lenet/info.json", "lenet/model.caffemodel", "alexnet-torch/_Model.t7", "broken/error.txt")
	}); err != nil {
		t.Error(err)
	}
}

// TestPythonListing mounts a store without master.json served by python's
// http.server: discovery from its HTML listing.
func TestPythonListing(t *testing.T) {
	src := copyStore(t)
	if err := os.Remove(filepath.Join(src, "master.json")); err != nil {
		t.Fatal(err)
	}
	url := startPython(t, src)
	m := startMount(t, []string{url})
	root := filepath.Join(m.dir, storeName(url))
	checkSampleStore(t, root, src)
	if got := readFile(t, filepath.Join(root, "welcome.txt")); !bytes.HasPrefix(got, []byte("Thanks for visiting "+url)) {
		t.Errorf("welcome.txt = %q", got)
	}
}

// TestGoStoreMasterJSON mounts a store with master.json below a base path.
func TestGoStoreMasterJSON(t *testing.T) {
	src := copyStore(t)
	s := startGoStore(t, src, "/team/")
	m := startMount(t, []string{s.base})
	root := filepath.Join(m.dir, storeName(s.base))
	checkSampleStore(t, root, src)
	if got := string(readFile(t, filepath.Join(root, "welcome.txt"))); got != "modelstorefs sample store\n" {
		t.Errorf("welcome.txt = %q", got)
	}
	// models.tsv at the root and in the store, for grep.
	for _, tsv := range []string{filepath.Join(m.dir, "models.tsv"), filepath.Join(root, "models.tsv")} {
		out, err := runCmd(t, "grep", "-i", "mnist", tsv)
		if err != nil || !strings.Contains(out, "lenet\tLeNet (MNIST)\tcaffe\tMNIST\t3-clause BSD license\tluke") {
			t.Errorf("grep -i mnist %s: %v %q", tsv, err, out)
		}
	}
	// grep over all info.json files is served from memory after the listing.
	before := s.count("GET /team/lenet/info.json")
	if out, err := runCmd(t, "sh", "-c", "grep -l torch "+m.dir+"/*/*/info.json"); err != nil || !strings.Contains(out, "alexnet-torch/info.json") {
		t.Errorf("grep -l torch: %v %q", err, out)
	}
	if after := s.count("GET /team/lenet/info.json"); after != before || after != 1 {
		t.Errorf("info.json fetched %d times (before grep %d), want once", after, before)
	}
	// A second read of a big file comes from the cache.
	readFile(t, filepath.Join(root, "lenet", "model.caffemodel"))
	if n := s.count("GET /team/lenet/snapshot_iter_28140.caffemodel"); n != 1 {
		t.Errorf("weights fetched %d times, want 1", n)
	}
}

// TestCopyIsImport: cp -r of a model folder gives a complete job folder.
func TestCopyIsImport(t *testing.T) {
	src := copyStore(t)
	s := startGoStore(t, src, "/")
	m := startMount(t, []string{s.base})
	jobs := t.TempDir()
	if out, err := runCmd(t, "cp", "-r", filepath.Join(m.dir, storeName(s.base), "lenet"), jobs); err != nil {
		t.Fatalf("cp -r: %v %s", err, out)
	}
	job := filepath.Join(jobs, "lenet")
	// DIGITS rewrites status.pickle (tmp file + rename) when it loads the job.
	if fi, err := os.Stat(job); err != nil || fi.Mode().Perm()&0o200 == 0 {
		t.Errorf("copied job folder must be writable by its owner: %v %v", fi.Mode(), err)
	}
	for _, name := range []string{"model.caffemodel", "original.prototxt", "labels.txt", "status.pickle"} {
		if _, err := os.Stat(filepath.Join(job, name)); err != nil {
			t.Errorf("job folder lacks %s: %v", name, err)
		}
	}
	if out, err := runCmd(t, "cmp", filepath.Join(job, "model.caffemodel"), filepath.Join(src, "lenet", "snapshot_iter_28140.caffemodel")); err != nil {
		t.Errorf("copied weights differ: %v %s", err, out)
	}
	if fi, err := os.Lstat(filepath.Join(job, "snapshot_iter_28140.caffemodel")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("remote name should be copied as a symlink: %v %v", fi, err)
	}
}

// TestRefresh: touch .refresh shows models added, changed and removed on
// the server; reading .refresh does not refresh.
func TestRefresh(t *testing.T) {
	src := copyStore(t)
	s := startGoStore(t, src, "/")
	m := startMount(t, []string{s.base})
	root := filepath.Join(m.dir, storeName(s.base))
	if got := listDir(t, root); slices.Contains(got, "newnet") {
		t.Fatalf("newnet before it exists: %q", got)
	}
	lists := s.count("GET /master.json")

	// Reading .refresh (as cp -r, grep -r, rsync do) must not refresh.
	for _, p := range []string{filepath.Join(m.dir, ".refresh"), filepath.Join(root, ".refresh")} {
		if got := readFile(t, p); !bytes.Contains(got, []byte("last refreshed")) {
			t.Errorf("%s = %q", p, got)
		}
	}
	listDir(t, root)
	if n := s.count("GET /master.json"); n != lists {
		t.Errorf("reading .refresh refetched master.json (%d -> %d)", lists, n)
	}

	// Add a model, change one, remove one.
	if err := os.CopyFS(filepath.Join(src, "newnet"), os.DirFS(filepath.Join(src, "alexnet-torch"))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "master.json"), `{"msg": "v2", "children": ["lenet", "alexnet-torch", "newnet"]}`)
	changed := strings.Replace(string(readFile(t, filepath.Join(src, "lenet", "info.json"))), "LeNet (MNIST)", "LeNet v2", 1)
	// Same length would keep size and mtime granularity could hide it; a
	// different length makes sure the test sees the real content.
	writeFile(t, filepath.Join(src, "lenet", "info.json"), changed)
	older := time.Now().Add(time.Hour)
	_ = os.Chtimes(filepath.Join(src, "lenet", "info.json"), older, older)

	cases := []struct{ gesture, scope []string }{
		{[]string{"touch"}, []string{m.dir, ".refresh"}},
		{[]string{"sh", "-c", ": > \"$0\""}, []string{root, ".refresh"}},
	}
	for _, c := range cases {
		args := append(c.gesture[1:], filepath.Join(c.scope...))
		if out, err := runCmd(t, c.gesture[0], args...); err != nil {
			t.Fatalf("%v: %v %s", c.gesture, err, out)
		}
		got := listDir(t, root)
		if want := []string{".refresh", "alexnet-torch", "lenet", "models.tsv", "newnet", "welcome.txt"}; !slices.Equal(got, want) {
			t.Errorf("after %v: %q, want %q", c.gesture, got, want)
		}
		if got := string(readFile(t, filepath.Join(root, "lenet", "info.json"))); got != changed {
			t.Errorf("after %v: info.json not the new version: %q", c.gesture, got[:min(80, len(got))])
		}
		if got := string(readFile(t, filepath.Join(root, "welcome.txt"))); got != "v2\n" {
			t.Errorf("welcome.txt = %q", got)
		}
	}
	// Unchanged weights are revalidated, not downloaded again.
	readFile(t, filepath.Join(root, "lenet", "model.caffemodel"))
	if n := s.count("GET /lenet/snapshot_iter_28140.caffemodel"); n != 1 {
		t.Errorf("unchanged weights downloaded %d times", n)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStoreDown: one store is down; the other works, the dead one shows
// only error.txt (and .refresh), and the root lists both.
func TestStoreDown(t *testing.T) {
	src := copyStore(t)
	up := startGoStore(t, src, "/")
	down := "http://127.0.0.1:" + itoa(freePort(t)) + "/team"
	m := startMount(t, []string{down, up.base})
	want := []string{".refresh", ".stats", storeName(up.base), storeName(down), "models.tsv"}
	slices.Sort(want)
	if got := listDir(t, m.dir); !slices.Equal(got, want) {
		t.Errorf("root = %q, want %q", got, want)
	}
	if got := listDir(t, filepath.Join(m.dir, storeName(up.base), "lenet")); !slices.Equal(got, wantLenet) {
		t.Errorf("live store's lenet = %q", got)
	}
	deadDir := filepath.Join(m.dir, storeName(down))
	if got, want := listDir(t, deadDir), []string{".refresh", "error.txt"}; !slices.Equal(got, want) {
		t.Errorf("dead store = %q, want %q", got, want)
	}
	if msg := readFile(t, filepath.Join(deadDir, "error.txt")); !bytes.Contains(msg, []byte("connection refused")) {
		t.Errorf("error.txt = %q", msg)
	}
	out, err := runCmd(t, "cat", filepath.Join(m.dir, "models.tsv"))
	if err != nil || !strings.Contains(out, "lenet") {
		t.Errorf("models.tsv with a dead store: %v %q", err, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestReadOnly: every write path gives EROFS.
func TestReadOnly(t *testing.T) {
	src := copyStore(t)
	s := startGoStore(t, src, "/")
	m := startMount(t, []string{s.base})
	lenet := filepath.Join(m.dir, storeName(s.base), "lenet")
	info := filepath.Join(lenet, "info.json")
	listDir(t, lenet)
	cases := map[string]func() error{
		"create":     func() error { _, err := os.Create(filepath.Join(lenet, "new")); return err },
		"open rw":    func() error { _, err := os.OpenFile(info, os.O_RDWR, 0); return err },
		"open trunc": func() error { _, err := os.OpenFile(info, os.O_WRONLY|os.O_TRUNC, 0); return err },
		"mkdir":      func() error { return os.Mkdir(filepath.Join(lenet, "d"), 0o755) },
		"mkdir root": func() error { return os.Mkdir(filepath.Join(m.dir, "d"), 0o755) },
		"unlink":     func() error { return os.Remove(info) },
		"rmdir":      func() error { return syscall.Rmdir(lenet) },
		"rename":     func() error { return os.Rename(info, filepath.Join(lenet, "x.json")) },
		"symlink":    func() error { return os.Symlink("info.json", filepath.Join(lenet, "l")) },
		"link":       func() error { return os.Link(info, filepath.Join(lenet, "h")) },
		"chmod":      func() error { return os.Chmod(info, 0o666) },
		"truncate":   func() error { return os.Truncate(info, 0) },
		"utimes":     func() error { return os.Chtimes(info, time.Now(), time.Now()) },
		"setxattr":   func() error { return syscall.Setxattr(info, "user.x", []byte("1"), 0) },
	}
	for name, fn := range cases {
		err := withTimeout(t, 10*time.Second, name, fn)
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	if got := readFile(t, info); !bytes.Equal(got, readFile(t, filepath.Join(src, "lenet", "info.json"))) {
		t.Error("info.json changed")
	}
}

// TestSignalUnmount: SIGTERM unmounts cleanly and exits 0, also with a
// file open (lazy unmount).
func TestSignalUnmount(t *testing.T) {
	src := copyStore(t)
	s := startGoStore(t, src, "/")
	for _, withOpenFile := range []bool{false, true} {
		m := startMount(t, []string{s.base})
		var f *os.File
		if withOpenFile {
			var err error
			f, err = os.Open(filepath.Join(m.dir, storeName(s.base), "lenet", "info.json"))
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if f != nil {
			// The lazily detached file keeps working until it is closed.
			time.Sleep(300 * time.Millisecond)
			buf := make([]byte, 16)
			if _, err := f.Read(buf); err != nil || !bytes.HasPrefix(buf, []byte("{")) {
				t.Errorf("read from a file open across SIGTERM: %v %q", err, buf)
			}
			f.Close()
			f = nil
		}
		select {
		case <-m.done:
		case <-time.After(15 * time.Second):
			t.Fatal("no exit within 15s of SIGTERM")
		}
		if f != nil {
			f.Close()
		}
		var ee *exec.ExitError
		if errors.As(m.err, &ee) || m.err != nil {
			t.Errorf("open file %v: exit status %v, want 0\n%s", withOpenFile, m.err, m.logs)
		}
		if isMounted(m.dir) {
			t.Errorf("open file %v: still mounted after exit", withOpenFile)
		}
		if !strings.Contains(m.logs.String(), "unmounted") {
			t.Errorf("no unmount log line:\n%s", m.logs)
		}
	}
}
