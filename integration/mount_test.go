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

	"github.com/moby/sys/mountinfo"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

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
	if got, want := itest.ListDir(t, root), []string{".refresh", "alexnet-torch", "broken", "inception-tf", "lenet", "models.tsv", "welcome.txt"}; !slices.Equal(got, want) {
		t.Fatalf("store dir = %q, want %q", got, want)
	}
	lenet := filepath.Join(root, "lenet")
	if got := itest.ListDir(t, lenet); !slices.Equal(got, wantLenet) {
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
		if out, err := itest.RunCmd(t, "cmp", filepath.Join(root, mounted), filepath.Join(src, remote)); err != nil {
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
	if got, want := itest.ListDir(t, broken), []string{"error.txt", "info.json"}; !slices.Equal(got, want) {
		t.Errorf("broken = %q, want %q (no status.pickle)", got, want)
	}
	if msg := itest.ReadFile(t, filepath.Join(broken, "error.txt")); !bytes.Contains(msg, []byte("not valid JSON")) {
		t.Errorf("broken/error.txt = %q", msg)
	}
	if pickle := itest.ReadFile(t, filepath.Join(lenet, "status.pickle")); !bytes.HasPrefix(pickle, []byte{0x80, 0x02}) || !bytes.Contains(pickle, []byte("PretrainedModelJob")) {
		t.Errorf("status.pickle does not look like a protocol 2 job pickle: %q", pickle[:min(len(pickle), 64)])
	}
	// The walk a cp -r or a backup tool does must be consistent.
	if err := itest.WithTimeout(t, 60*time.Second, "fstest", func() error {
		return fstest.TestFS(os.DirFS(root), "lenet/info.json", "lenet/model.caffemodel", "alexnet-torch/_Model.t7", "broken/error.txt")
	}); err != nil {
		t.Error(err)
	}
}

// TestPythonListing mounts a store without master.json served by python's
// http.server: discovery from its HTML listing.
func TestPythonListing(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	src := itest.CopyStore(t)
	if err := os.Remove(filepath.Join(src, "master.json")); err != nil {
		t.Fatal(err)
	}
	url := itest.StartPython(t, src)
	m := itest.StartMount(t, []string{url})
	root := filepath.Join(m.Dir, itest.StoreName(url))
	checkSampleStore(t, root, src)
	if got := itest.ReadFile(t, filepath.Join(root, "welcome.txt")); !bytes.HasPrefix(got, []byte("Thanks for visiting "+url)) {
		t.Errorf("welcome.txt = %q", got)
	}
}

// TestGoStoreMasterJSON mounts a store with master.json below a base path.
func TestGoStoreMasterJSON(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/team/")
	m := itest.StartMount(t, []string{s.Base})
	root := filepath.Join(m.Dir, itest.StoreName(s.Base))
	checkSampleStore(t, root, src)
	if got := string(itest.ReadFile(t, filepath.Join(root, "welcome.txt"))); got != "modelstorefs sample store\n" {
		t.Errorf("welcome.txt = %q", got)
	}
	// models.tsv at the root and in the store, for grep.
	for _, tsv := range []string{filepath.Join(m.Dir, "models.tsv"), filepath.Join(root, "models.tsv")} {
		out, err := itest.RunCmd(t, "grep", "-i", "mnist", tsv)
		if err != nil || !strings.Contains(out, "lenet\tLeNet (MNIST)\tcaffe\tMNIST\t3-clause BSD license\tluke") {
			t.Errorf("grep -i mnist %s: %v %q", tsv, err, out)
		}
	}
	// grep over all info.json files is served from memory after the listing.
	before := s.Count("GET /team/lenet/info.json")
	if out, err := itest.RunCmd(t, "sh", "-c", "grep -l torch "+m.Dir+"/*/*/info.json"); err != nil || !strings.Contains(out, "alexnet-torch/info.json") {
		t.Errorf("grep -l torch: %v %q", err, out)
	}
	if after := s.Count("GET /team/lenet/info.json"); after != before || after != 1 {
		t.Errorf("info.json fetched %d times (before grep %d), want once", after, before)
	}
	// A second read of a big file comes from the cache.
	itest.ReadFile(t, filepath.Join(root, "lenet", "model.caffemodel"))
	if n := s.Count("GET /team/lenet/snapshot_iter_28140.caffemodel"); n != 1 {
		t.Errorf("weights fetched %d times, want 1", n)
	}
}

// TestCopyIsImport: cp -r of a model folder gives a complete job folder.
func TestCopyIsImport(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base})
	jobs := t.TempDir()
	if out, err := itest.RunCmd(t, "cp", "-r", filepath.Join(m.Dir, itest.StoreName(s.Base), "lenet"), jobs); err != nil {
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
	if out, err := itest.RunCmd(t, "cmp", filepath.Join(job, "model.caffemodel"), filepath.Join(src, "lenet", "snapshot_iter_28140.caffemodel")); err != nil {
		t.Errorf("copied weights differ: %v %s", err, out)
	}
	if fi, err := os.Lstat(filepath.Join(job, "snapshot_iter_28140.caffemodel")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("remote name should be copied as a symlink: %v %v", fi, err)
	}
}

// TestRefresh: touch .refresh shows models added, changed and removed on
// the server; reading .refresh does not refresh.
func TestRefresh(t *testing.T) {
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base})
	root := filepath.Join(m.Dir, itest.StoreName(s.Base))
	if got := itest.ListDir(t, root); slices.Contains(got, "newnet") {
		t.Fatalf("newnet before it exists: %q", got)
	}
	lists := s.Count("GET /master.json")

	// Reading .refresh (as cp -r, grep -r, rsync do) must not refresh.
	for _, p := range []string{filepath.Join(m.Dir, ".refresh"), filepath.Join(root, ".refresh")} {
		if got := itest.ReadFile(t, p); !bytes.Contains(got, []byte("last refreshed")) {
			t.Errorf("%s = %q", p, got)
		}
	}
	itest.ListDir(t, root)
	if n := s.Count("GET /master.json"); n != lists {
		t.Errorf("reading .refresh refetched master.json (%d -> %d)", lists, n)
	}

	// Add a model, change one, remove one.
	if err := os.CopyFS(filepath.Join(src, "newnet"), os.DirFS(filepath.Join(src, "alexnet-torch"))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "master.json"), `{"msg": "v2", "children": ["lenet", "alexnet-torch", "newnet"]}`)
	changed := strings.Replace(string(itest.ReadFile(t, filepath.Join(src, "lenet", "info.json"))), "LeNet (MNIST)", "LeNet v2", 1)
	// Same length would keep size and mtime granularity could hide it; a
	// different length makes sure the test sees the real content.
	writeFile(t, filepath.Join(src, "lenet", "info.json"), changed)
	older := time.Now().Add(time.Hour)
	_ = os.Chtimes(filepath.Join(src, "lenet", "info.json"), older, older)

	cases := []struct{ gesture, scope []string }{
		{[]string{"touch"}, []string{m.Dir, ".refresh"}},
		{[]string{"sh", "-c", ": > \"$0\""}, []string{root, ".refresh"}},
	}
	for _, c := range cases {
		args := append(c.gesture[1:], filepath.Join(c.scope...))
		if out, err := itest.RunCmd(t, c.gesture[0], args...); err != nil {
			t.Fatalf("%v: %v %s", c.gesture, err, out)
		}
		got := itest.ListDir(t, root)
		if want := []string{".refresh", "alexnet-torch", "lenet", "models.tsv", "newnet", "welcome.txt"}; !slices.Equal(got, want) {
			t.Errorf("after %v: %q, want %q", c.gesture, got, want)
		}
		if got := string(itest.ReadFile(t, filepath.Join(root, "lenet", "info.json"))); got != changed {
			t.Errorf("after %v: info.json not the new version: %q", c.gesture, got[:min(80, len(got))])
		}
		if got := string(itest.ReadFile(t, filepath.Join(root, "welcome.txt"))); got != "v2\n" {
			t.Errorf("welcome.txt = %q", got)
		}
	}
	// Unchanged weights are revalidated, not downloaded again.
	itest.ReadFile(t, filepath.Join(root, "lenet", "model.caffemodel"))
	if n := s.Count("GET /lenet/snapshot_iter_28140.caffemodel"); n != 1 {
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
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	up := itest.StartGoStore(t, src, "/")
	down := "http://127.0.0.1:" + itoa(itest.FreePort(t)) + "/team"
	m := itest.StartMount(t, []string{down, up.Base})
	want := []string{".refresh", ".stats", itest.StoreName(up.Base), itest.StoreName(down), "models.tsv"}
	slices.Sort(want)
	if got := itest.ListDir(t, m.Dir); !slices.Equal(got, want) {
		t.Errorf("root = %q, want %q", got, want)
	}
	if got := itest.ListDir(t, filepath.Join(m.Dir, itest.StoreName(up.Base), "lenet")); !slices.Equal(got, wantLenet) {
		t.Errorf("live store's lenet = %q", got)
	}
	deadDir := filepath.Join(m.Dir, itest.StoreName(down))
	if got, want := itest.ListDir(t, deadDir), []string{".refresh", "error.txt"}; !slices.Equal(got, want) {
		t.Errorf("dead store = %q, want %q", got, want)
	}
	if msg := itest.ReadFile(t, filepath.Join(deadDir, "error.txt")); !bytes.Contains(msg, []byte("connection refused")) {
		t.Errorf("error.txt = %q", msg)
	}
	out, err := itest.RunCmd(t, "cat", filepath.Join(m.Dir, "models.tsv"))
	if err != nil || !strings.Contains(out, "lenet") {
		t.Errorf("models.tsv with a dead store: %v %q", err, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestReadOnly: every write path gives EROFS, in both modes (issue 17,
// item 12). By default the daemon refuses writes and the kernel shows the
// mount rw, so that touch .refresh reaches the daemon; with -o ro
// (--read-only) the kernel shows and enforces ro, touch .refresh gets
// EROFS, and SIGHUP is the refresh.
func TestReadOnly(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	for _, mode := range readOnlyModes() {
		t.Run(mode.name, func(t *testing.T) {
			checkReadOnlyMode(t, mode)
		})
	}
}

// readOnlyMode is one way of mounting read-only, and how a refresh is
// asked for under it.
type readOnlyMode struct {
	name      string
	flags     []string
	wantOpts  string // first of the mount's options in mountinfo
	touchErr  error  // of touch .refresh
	refreshBy func(t *testing.T, m *itest.Mount, root string)
}

// readOnlyModes is the table of TestReadOnly: the daemon refusing writes
// (the default), and the kernel refusing them (-o ro).
func readOnlyModes() []readOnlyMode {
	return []readOnlyMode{
		{"daemon-enforced (default)", nil, "rw", nil, func(t *testing.T, m *itest.Mount, root string) {
			if out, err := itest.RunCmd(t, "touch", filepath.Join(root, ".refresh")); err != nil {
				t.Fatalf("touch .refresh: %v %s", err, out)
			}
		}},
		{"-o ro", []string{"-o", "ro"}, "ro", syscall.EROFS, func(t *testing.T, m *itest.Mount, root string) {
			if err := m.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, "the SIGHUP refresh", func() bool {
				return strings.Contains(m.Logs.String(), "SIGHUP: refreshing every store")
			}, 10*time.Second)
			// The daemon logs that line as it starts the refresh (and
			// the kernel's entries are dropped after it): wait for the
			// new model, not for the line alone.
			testutil.WaitFor(t, "newnet after the SIGHUP refresh", func() bool {
				return slices.Contains(itest.ListDir(t, root), "newnet")
			}, 10*time.Second)
		}},
	}
}

// checkReadOnlyMode mounts a copy of the store as mode says and checks
// the mount options, that every write fails with EROFS, and that the
// refresh gesture works as mode says.
func checkReadOnlyMode(t *testing.T, mode readOnlyMode) {
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base}, mode.flags...)
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(m.Dir))
	if err != nil || len(infos) != 1 {
		t.Fatalf("mountinfo of %s: %v %v", m.Dir, infos, err)
	}
	// Options: the mount's own (findmnt's VFS-OPTIONS);
	// VFSOptions: the superblock's (FS-OPTIONS).
	mi := infos[0]
	if first, _, _ := strings.Cut(mi.Options, ","); first != mode.wantOpts ||
		!slices.Contains(strings.Split(mi.VFSOptions, ","), mode.wantOpts) {
		t.Errorf("mountinfo: mount options %q, superblock options %q; want %s in both", mi.Options, mi.VFSOptions, mode.wantOpts)
	}

	root := filepath.Join(m.Dir, itest.StoreName(s.Base))
	lenet := filepath.Join(root, "lenet")
	info := filepath.Join(lenet, "info.json")
	itest.ListDir(t, lenet)
	for name, fn := range readOnlyWrites(m.Dir, lenet, info) {
		err := itest.WithTimeout(t, 10*time.Second, name, fn)
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	if got := itest.ReadFile(t, info); !bytes.Equal(got, itest.ReadFile(t, filepath.Join(src, "lenet", "info.json"))) {
		t.Error("info.json changed")
	}

	// The refresh gesture: touch .refresh reaches the daemon only
	// where the kernel lets writes through.
	touchErr := itest.WithTimeout(t, 10*time.Second, "touch .refresh", func() error {
		now := time.Now()
		return os.Chtimes(filepath.Join(root, ".refresh"), now, now)
	})
	if !errors.Is(touchErr, mode.touchErr) || (mode.touchErr == nil) != (touchErr == nil) {
		t.Errorf("touch .refresh: %v, want %v", touchErr, mode.touchErr)
	}
	if err := os.CopyFS(filepath.Join(src, "newnet"), os.DirFS(filepath.Join(src, "alexnet-torch"))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "master.json"), `{"msg": "v2", "children": ["lenet", "newnet"]}`)
	mode.refreshBy(t, m, root)
	if got, want := itest.ListDir(t, root), []string{".refresh", "lenet", "models.tsv", "newnet", "welcome.txt"}; !slices.Equal(got, want) {
		t.Errorf("after the refresh: %q, want %q", got, want)
	}
}

// readOnlyWrites returns, by name, every kind of write to the mount at
// dir: in the model folder lenet, to its info.json file info, and at the
// mount's root.
func readOnlyWrites(dir, lenet, info string) map[string]func() error {
	return map[string]func() error{
		"create":     func() error { _, err := os.Create(filepath.Join(lenet, "new")); return err },
		"open rw":    func() error { _, err := os.OpenFile(info, os.O_RDWR, 0); return err },
		"open trunc": func() error { _, err := os.OpenFile(info, os.O_WRONLY|os.O_TRUNC, 0); return err },
		"mkdir":      func() error { return os.Mkdir(filepath.Join(lenet, "d"), 0o755) },
		"mkdir root": func() error { return os.Mkdir(filepath.Join(dir, "d"), 0o755) },
		"unlink":     func() error { return os.Remove(info) },
		"rmdir":      func() error { return syscall.Rmdir(lenet) },
		"rename":     func() error { return os.Rename(info, filepath.Join(lenet, "x.json")) },
		"symlink":    func() error { return os.Symlink("info.json", filepath.Join(lenet, "l")) },
		"link":       func() error { return os.Link(info, filepath.Join(lenet, "h")) },
		"chmod":      func() error { return os.Chmod(info, 0o666) },
		"truncate":   func() error { return os.Truncate(info, 0) },
		"utimes":     func() error { return os.Chtimes(info, time.Now(), time.Now()) },
		"setxattr":   func() error { return syscall.Setxattr(info, "user.x", []byte("1"), 0) },
		"mknod":      func() error { return syscall.Mknod(filepath.Join(lenet, "fifo"), syscall.S_IFIFO|0o644, 0) },
	}
}

// TestSignalUnmount: SIGTERM unmounts cleanly and exits 0, also with a
// file open (lazy unmount).
func TestSignalUnmount(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	for _, withOpenFile := range []bool{false, true} {
		m := itest.StartMount(t, []string{s.Base})
		var f *os.File
		if withOpenFile {
			var err error
			f, err = os.Open(filepath.Join(m.Dir, itest.StoreName(s.Base), "lenet", "info.json"))
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
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
		case <-m.Done:
		case <-time.After(15 * time.Second):
			t.Fatal("no exit within 15s of SIGTERM")
		}
		if f != nil {
			f.Close()
		}
		var ee *exec.ExitError
		if errors.As(m.Err, &ee) || m.Err != nil {
			t.Errorf("open file %v: exit status %v, want 0\n%s", withOpenFile, m.Err, m.Logs)
		}
		if itest.IsMounted(m.Dir) {
			t.Errorf("open file %v: still mounted after exit", withOpenFile)
		}
		if !strings.Contains(m.Logs.String(), "unmounted") {
			t.Errorf("no unmount log line:\n%s", m.Logs)
		}
	}
}
