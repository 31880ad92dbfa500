package integration

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// runBinary runs modelstorefs with args, bounded in time.
func runBinary(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, itest.Binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestImportCommand: `modelstorefs import` writes a DIGITS job named like
// DIGITS names jobs, whose status.pickle carries that id, for every
// framework; a model that cannot be imported fails with exit 1.
func TestImportCommand(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	jobs, cacheDir := t.TempDir(), t.TempDir()
	env := []string{"DIGITS_MODEL_STORE_URL=" + s.Base, "DIGITS_JOBS_DIR=" + jobs}
	idPattern := regexp.MustCompile(`^\d{8}-\d{6}-[0-9a-f]{4}$`)
	for _, model := range []string{"lenet", "alexnet-torch", "inception-tf"} {
		out, err := runBinary(t, env, "import", "--cache-dir", cacheDir, itest.StoreName(s.Base)+"/"+model)
		if err != nil || !strings.Contains(out, "Restart DIGITS") {
			t.Fatalf("import %s: %v\n%s", model, err, out)
		}
	}
	entries, err := os.ReadDir(jobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("jobs dir holds %d entries, want 3 jobs: %v", len(entries), entries)
	}
	for _, e := range entries {
		if !idPattern.MatchString(e.Name()) || !e.IsDir() {
			t.Errorf("job directory %q is not named like a DIGITS job", e.Name())
		}
	}
	for _, py := range pythons(t) {
		out := runLoader(t, py, jobs)
		if n := strings.Count(out, "OK "); n != 3 {
			t.Errorf("%s: %d jobs loaded OK, want 3:\n%s", py, n, out)
		}
	}
	// --name renames the job; the broken model is refused.
	out, err := runBinary(t, env, "import", "--cache-dir", cacheDir, "--name", "My LeNet", itest.StoreName(s.Base)+"/lenet")
	if err != nil {
		t.Fatalf("import --name: %v\n%s", err, out)
	}
	out, err = runBinary(t, env, "import", "--cache-dir", cacheDir, itest.StoreName(s.Base)+"/broken")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, "cannot be imported") {
		t.Errorf("import of broken: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(jobs); len(entries) != 4 {
		t.Errorf("jobs dir holds %d entries after the refused import, want 4", len(entries))
	}
}

// TestImportInterrupted: SIGINT during an import leaves nothing in the
// jobs directory.
func TestImportInterrupted(t *testing.T) {
	src := itest.CopyStore(t)
	big := make([]byte, 32<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(src, "lenet", "snapshot_iter_28140.caffemodel"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	// A slow store: 1 MiB every 50 ms.
	files := http.FileServer(http.Dir(src))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(&throttled{ResponseWriter: w}, r)
	}))
	t.Cleanup(s.Close)
	base := s.URL + "/"
	jobs := t.TempDir()
	cmd := exec.Command(itest.Binary, "import", "--cache-dir", t.TempDir(), "--jobs-dir", jobs, itest.StoreName(base)+"/lenet")
	cmd.Env = append(os.Environ(), "DIGITS_MODEL_STORE_URL="+base)
	output := &itest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Interrupt once the import has started writing.
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, _ := os.ReadDir(jobs)
		if len(entries) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("import never started writing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		// One line saying what happened, not "context canceled".
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(output.String(), "modelstorefs: import: interrupted, nothing written\n") ||
			strings.Contains(output.String(), "context canceled") {
			t.Errorf("interrupted import: %v\n%s", err, output)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("import did not stop after SIGINT")
	}
	if entries, _ := os.ReadDir(jobs); len(entries) != 0 {
		t.Errorf("interrupted import left %v in the jobs dir", entries)
	}
}

// throttled slows a response body down to about 20 MiB/s.
type throttled struct{ http.ResponseWriter }

func (w *throttled) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 1<<20)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
		time.Sleep(50 * time.Millisecond)
	}
	return n, nil
}

// TestLsCommand: ls prints the store page as a table or JSON, filters
// case-insensitively, and answers a second time from the cache dir without
// asking the store.
func TestLsCommand(t *testing.T) {
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/team/")
	cacheDir := t.TempDir()
	env := []string{"DIGITS_MODEL_STORE_URL=" + s.Base}
	out, err := runBinary(t, env, "ls", "--cache-dir", cacheDir)
	if err != nil {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	for _, want := range []string{"STORE", "lenet", "LeNet (MNIST)", "alexnet-torch", "inception-tf", "broken"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls output lacks %q:\n%s", want, out)
		}
	}
	lists := s.Count("GET /team/master.json")
	out, err = runBinary(t, env, "ls", "--cache-dir", cacheDir, "--filter", "mnist", "--json")
	if err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	var rows []struct{ Model, Framework, Dataset string }
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Model != "lenet" || rows[0].Dataset != "MNIST" {
		t.Errorf("ls --filter mnist --json = %v (%v)\n%s", rows, err, out)
	}
	if n := s.Count("GET /team/master.json"); n != lists {
		t.Errorf("a warm ls asked the store again (%d -> %d master.json GETs)", lists, n)
	}
	if _, err := runBinary(t, env, "ls", "--cache-dir", cacheDir, "--refresh"); err != nil {
		t.Fatal(err)
	}
	if n := s.Count("GET /team/master.json"); n != lists+1 {
		t.Errorf("ls --refresh did not fetch the list again (%d -> %d)", lists, n)
	}
}

// TestMountHelper: invoked as mount(8) runs an fstab entry (directly, and as
// mount.fuse.modelstorefs), the binary returns once the mount is up and
// leaves the daemon running; modelstorefs unmount stops it.
func TestMountHelper(t *testing.T) {
	t.Parallel() // its own store and mountpoints
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	link := filepath.Join(t.TempDir(), "mount.fuse.modelstorefs")
	if err := os.Symlink(itest.Binary, link); err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{itest.Binary, link} {
		mnt, cacheDir := t.TempDir(), t.TempDir()
		t.Cleanup(func() {
			if itest.IsMounted(mnt) {
				_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, prog, s.Base, mnt, "-o",
			"ro,allow_other,cache_dir="+cacheDir+",ttl=1h,dev,suid,noatime").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s as mount helper: %v\n%s", filepath.Base(prog), err, out)
		}
		if !itest.IsMounted(mnt) {
			t.Fatalf("%s returned but %s is not mounted", filepath.Base(prog), mnt)
		}
		if got := itest.ListDir(t, filepath.Join(mnt, itest.StoreName(s.Base))); !slices.Contains(got, "lenet") {
			t.Errorf("helper mount shows %q", got)
		}
		if logs, err := os.ReadFile(filepath.Join(cacheDir, "modelstorefs.log")); err != nil || !strings.Contains(string(logs), "mounted") {
			t.Errorf("daemon log in the cache dir: %v\n%s", err, logs)
		}
		if out, err := runBinary(t, nil, "unmount", mnt); err != nil {
			t.Fatalf("unmount: %v\n%s", err, out)
		}
		deadline := time.Now().Add(15 * time.Second)
		for daemonRunning(mnt) {
			if time.Now().After(deadline) {
				t.Fatalf("daemon for %s still running after unmount", mnt)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// daemonRunning reports whether a process has mnt on its command line.
func daemonRunning(mnt string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) > 1 && strings.HasSuffix(args[0], "modelstorefs") && slices.Contains(args, mnt) && slices.Contains(args, "mount") {
			return true
		}
	}
	return false
}
