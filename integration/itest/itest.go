// Package itest is what the integration test packages share: the
// modelstorefs Binary built once per test Binary (Main), real mounts of it
// (StartMount), stores on 127.0.0.1 (a Go httptest server, python3's
// http.server) and bounded file system calls.
package itest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// Binary is the modelstorefs built for this test run (by Main).
var Binary string

// SkipFuseEnv, set to 1 on a machine without usable FUSE, lets the
// integration packages pass without mounting anything, and Main says so.
// Without it (and always under CI) no FUSE is a failure: a suite that
// mounted nothing must not look like one that passed.
const SkipFuseEnv = "MODELSTOREFS_SKIP_FUSE"

// Main is the TestMain of an integration package: without FUSE it fails
// (or skips everything, loudly, with SkipFuseEnv=1 outside CI), else it
// builds the Binary with -race and runs the tests.
func Main(m *testing.M) int {
	if err := FuseAvailable(); err != nil {
		code, msg := withoutFUSE(err, testutil.UnderCI(), os.Getenv(SkipFuseEnv) == "1")
		fmt.Fprintln(os.Stderr, msg)
		return code
	}
	dir, err := os.MkdirTemp("", "modelstorefs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	Binary = filepath.Join(dir, "modelstorefs")
	build := exec.Command("go", "build", "-race", "-o", Binary, "github.com/modelstorefs/modelstorefs/cmd/modelstorefs")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: building modelstorefs:", err)
		return 1
	}
	return m.Run()
}

// withoutFUSE is Main's verdict when FUSE is not usable (err): its exit
// status and what it says.
func withoutFUSE(err error, ci, skip bool) (int, string) {
	switch {
	case ci:
		return 1, fmt.Sprintf("integration: FUSE is required in CI: %v", err)
	case skip:
		return 0, fmt.Sprintf("integration: NOTHING TESTED: FUSE not usable (%v) and %s=1: every test of this package is skipped", err, SkipFuseEnv)
	}
	return 1, fmt.Sprintf("integration: FUSE not usable: %v\n"+
		"(mounts need /dev/fuse and root or fusermount3; %s=1 skips these tests on purpose)", err, SkipFuseEnv)
}

// FuseAvailable checks for /dev/fuse and the right to mount (root, or a
// fusermount helper).
func FuseAvailable() error {
	if runtime.GOOS != "linux" {
		return errors.New("not Linux")
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	f.Close()
	if os.Geteuid() == 0 {
		return nil
	}
	for _, tool := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(tool); err == nil {
			return nil
		}
	}
	return errors.New("not root and no fusermount3")
}

// SyncBuffer collects a subprocess's output for assertions and failure logs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Mount is a running modelstorefs daemon.
type Mount struct {
	Dir  string
	Cmd  *exec.Cmd
	Logs *SyncBuffer
	Done chan struct{}
	Err  error // exit status, valid after Done

	killed atomic.Bool // by Kill: its exit status is the test's doing
}

// StartMount runs "modelstorefs mount" with the given stores on a fresh
// mountpoint and cache dir (extra flags may override the cache dir) and
// waits until the mount is up. Cleanup stops it (SIGTERM, then kill and a
// lazy unmount as a last resort), also when the test fails, and fails the
// test if the daemon did not exit 0 or logged a panic or a data race.
func StartMount(t *testing.T, stores []string, extra ...string) *Mount {
	t.Helper()
	return MountWith(t, Binary, t.TempDir(), t.TempDir(), stores, extra...)
}

// MountWith is StartMount with a given Binary, mountpoint and cache dir.
// Readiness is the daemon's "mounted" log line, so a stale mount left on
// dir by a killed daemon does not count. (No stat of dir here: it would put
// the root's attributes in the kernel's cache, which tests of dead mounts
// must not find.)
func MountWith(t *testing.T, bin, dir, cacheDir string, stores []string, extra ...string) *Mount {
	t.Helper()
	m := &Mount{Dir: dir, Logs: &SyncBuffer{}, Done: make(chan struct{})}
	args := append([]string{"mount", "--cache-dir", cacheDir, "--log-level", "debug"}, extra...)
	args = append(args, dir)
	m.Cmd = exec.Command(bin, args...)
	m.Cmd.Env = append(os.Environ(), "DIGITS_MODEL_STORE_URL="+strings.Join(stores, ","))
	m.Cmd.Stdout, m.Cmd.Stderr = m.Logs, m.Logs
	if err := m.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		m.Err = m.Cmd.Wait()
		close(m.Done)
	}()
	t.Cleanup(func() { m.Stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if strings.Contains(m.Logs.String(), "\tmounted\t") && IsMounted(dir) {
			return m
		}
		select {
		case <-m.Done:
			t.Fatalf("modelstorefs exited before mounting: %v\n%s", m.Err, m.Logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount not up after 20s\n%s", m.Logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the daemon with SIGKILL, as a crash would, and waits for it;
// Stop then does not count its exit status against the test. The dead
// mount stays (Stop detaches it).
func (m *Mount) Kill() error {
	m.killed.Store(true)
	if err := m.Cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill modelstorefs: %w", err)
	}
	<-m.Done
	return nil
}

// Stop sends SIGTERM and waits; anything left is killed and lazily
// unmounted. It fails the test when the daemon exited other than with
// status 0 (unless Kill ended it) or logged a panic or a data race, and
// reports the daemon's logs when the test failed.
func (m *Mount) Stop(t *testing.T) {
	failedBefore := t.Failed()
	select {
	case <-m.Done:
	default:
		// A failed test's daemon gets SIGQUIT: the Go runtime prints
		// where every goroutine is (for the logs below) and exits.
		sig, what := syscall.SIGTERM, "SIGTERM"
		if failedBefore {
			sig, what = syscall.SIGQUIT, "SIGQUIT"
		}
		_ = m.Cmd.Process.Signal(sig)
		select {
		case <-m.Done:
		case <-time.After(15 * time.Second):
			t.Errorf("modelstorefs did not exit within 15s of %s", what)
			m.killed.Store(true)
			_ = m.Cmd.Process.Kill()
			<-m.Done
		}
	}
	if IsMounted(m.Dir) {
		t.Errorf("%s still mounted after the daemon exited", m.Dir)
		_ = syscall.Unmount(m.Dir, syscall.MNT_DETACH)
	}
	// SIGQUIT exits 2 on purpose; a killed daemon's status is the test's.
	if !failedBefore && !m.killed.Load() && m.Err != nil {
		t.Errorf("modelstorefs exited with %v, want status 0", m.Err)
	}
	if bad := DaemonTrouble(m.Logs.String()); bad != "" {
		t.Errorf("the daemon's log shows %s", bad)
	}
	if t.Failed() {
		t.Logf("modelstorefs logs:\n%s", m.Logs)
	}
}

// DaemonTrouble names what in a daemon's log fails any test: a data race
// reported by the -race build, a Go panic, a FUSE handler that panicked
// (recovered as EIO, see fs.FS.panicked). "" when there is none.
func DaemonTrouble(logs string) string {
	for _, s := range []struct{ marker, what string }{
		{"DATA RACE", "a data race"},
		{"panic:", "a panic"},
		{"FUSE handler panicked", "a FUSE handler that panicked"},
		{"panic in FS handler", "a FUSE handler that panicked"},
	} {
		if strings.Contains(logs, s.marker) {
			return s.what + " (" + strconv.Quote(s.marker) + ")"
		}
	}
	return ""
}

// IsMounted reports whether dir is a mountpoint of a FUSE filesystem
// (moby/sys/mountinfo, as the command itself reads the mount table).
func IsMounted(dir string) bool {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil {
		return false
	}
	for _, m := range infos {
		if strings.HasPrefix(m.FSType, "fuse") {
			return true
		}
	}
	return false
}

// CopyStore copies the bundled sample store into a fresh directory that a
// test may change.
func CopyStore(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := os.CopyFS(dst, os.DirFS(StoreDir()))
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// StoreDir is the bundled sample store, integration/testdata/store.
func StoreDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "store")
}

// FreePort returns a loopback port nobody listens on right now.
func FreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartPython serves dir with python3 -m http.server on 127.0.0.1 and
// returns its URL.
func StartPython(t *testing.T, dir string) string {
	t.Helper()
	python, err := python3()
	if err != nil {
		t.Fatal("python3 is needed for this test:", err)
	}
	port := FreePort(t)
	cmd := exec.Command(python, "-m", "http.server", "--bind", "127.0.0.1", fmt.Sprint(port))
	cmd.Dir = dir
	logs := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("python http.server not up: %v\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
}

// python3 is the interpreter StartPython runs: python3 from PATH, named by
// its own executable, looked up once per test binary (a pyenv shim is a
// bash script that runs pyenv at every start: seconds on a busy machine).
var python3 = sync.OnceValues(func() (string, error) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", "import sys; print(sys.executable)").Output()
	if exe := strings.TrimSpace(string(out)); err == nil && filepath.IsAbs(exe) {
		return exe, nil
	}
	return python, nil
})

// GoStore is an httptest model store serving a directory below a base path,
// counting requests per path.
type GoStore struct {
	*httptest.Server
	Dir  string
	Base string // URL of the store, with its path
	mu   sync.Mutex
	hits map[string]int
	Down atomic.Bool // answer 503 to everything
}

func StartGoStore(t *testing.T, dir, prefix string) *GoStore {
	t.Helper()
	s := &GoStore{Dir: dir, hits: map[string]int{}}
	files := http.StripPrefix(prefix, http.FileServer(http.Dir(dir)))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.Method+" "+r.URL.Path]++
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
			s.hits["COND "+r.Method+" "+r.URL.Path]++
		}
		s.mu.Unlock()
		if s.Down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	s.Base = s.URL + prefix
	return s
}

// Count is how many requests the store had for "METHOD /path" (or
// "COND METHOD /path" for conditional ones).
func (s *GoStore) Count(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[methodPath]
}

// WithTimeout runs fn (file system calls that could hang on a broken
// mount) and fails the test instead of hanging forever.
func WithTimeout(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		t.Fatalf("%s: still running after %s; this process's threads in the kernel:\n%s", what, d, kernelStacks())
		return nil
	}
}

// kernelStacks lists where this process's threads wait in the kernel that
// are not idle in the Go scheduler (futex, epoll): a call stuck on a mount
// shows there (root only; empty otherwise).
func kernelStacks() string {
	var b strings.Builder
	tasks, _ := filepath.Glob("/proc/self/task/*")
	for _, task := range tasks {
		wchan, _ := os.ReadFile(filepath.Join(task, "wchan"))
		w := string(wchan)
		if w == "" || w == "0" || strings.HasPrefix(w, "futex") || strings.Contains(w, "epoll") {
			continue
		}
		stack, _ := os.ReadFile(filepath.Join(task, "stack"))
		fmt.Fprintf(&b, "%s %s\n%s", filepath.Base(task), w, stack)
	}
	return b.String()
}

// ReadFile reads a file from the mount with a bound on the time taken.
func ReadFile(t *testing.T, path string) []byte {
	t.Helper()
	var data []byte
	err := WithTimeout(t, 30*time.Second, "read "+path, func() error {
		var err error
		data, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ListDir returns the names in a directory of the mount.
func ListDir(t *testing.T, path string) []string {
	t.Helper()
	var names []string
	err := WithTimeout(t, 30*time.Second, "readdir "+path, func() error {
		entries, err := os.ReadDir(path)
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// RunCmd runs a shell tool (cp, cmp, grep, touch) with a time bound.
func RunCmd(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// StoreName is the directory a loopback store URL gets: 127.0.0.1_PORT[_path].
func StoreName(url string) string {
	s := strings.TrimPrefix(url, "http://")
	s = strings.Trim(s, "/")
	return strings.NewReplacer(":", "_", "/", "_").Replace(s)
}
