// Package integration mounts the built modelstorefs binary for real (FUSE,
// as a subprocess) against model stores served on 127.0.0.1: a Go
// httptest server and python3's http.server, whose listing nobody here
// wrote.
package integration

import (
	"bufio"
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binary is the modelstorefs built for this test run.
var binary string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := fuseAvailable(); err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "integration: FUSE is required in CI:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "integration: skipping, FUSE not usable:", err)
		return 0
	}
	dir, err := os.MkdirTemp("", "modelstorefs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "modelstorefs")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/modelstorefs")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: building modelstorefs:", err)
		return 1
	}
	return m.Run()
}

// fuseAvailable checks for /dev/fuse and the right to mount (root, or a
// fusermount helper).
func fuseAvailable() error {
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

// syncBuffer collects a subprocess's output for assertions and failure logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mount is a running modelstorefs daemon.
type mount struct {
	dir  string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	err  error // exit status, valid after done
}

// startMount runs "modelstorefs mount" with the given stores on a fresh
// mountpoint and cache dir (extra flags may override the cache dir) and
// waits until the mount is up. Cleanup stops it (SIGTERM, then kill and a
// lazy unmount as a last resort), also when the test fails.
func startMount(t *testing.T, stores []string, extra ...string) *mount {
	t.Helper()
	return mountWith(t, binary, t.TempDir(), t.TempDir(), stores, extra...)
}

// mountWith is startMount with a given binary, mountpoint and cache dir.
// Readiness is the daemon's "mounted" log line, so a stale mount left on
// dir by a killed daemon does not count. (No stat of dir here: it would put
// the root's attributes in the kernel's cache, which tests of dead mounts
// must not find.)
func mountWith(t *testing.T, bin, dir, cacheDir string, stores []string, extra ...string) *mount {
	t.Helper()
	m := &mount{dir: dir, logs: &syncBuffer{}, done: make(chan struct{})}
	args := append([]string{"mount", "--cache-dir", cacheDir, "--log-level", "debug"}, extra...)
	args = append(args, dir)
	m.cmd = exec.Command(bin, args...)
	m.cmd.Env = append(os.Environ(), "DIGITS_MODEL_STORE_URL="+strings.Join(stores, ","))
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() { m.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if strings.Contains(m.logs.String(), "\tmounted\t") && isMounted(dir) {
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("modelstorefs exited before mounting: %v\n%s", m.err, m.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount not up after 20s\n%s", m.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits; anything left is killed and lazily
// unmounted. It reports the daemon's logs when the test failed.
func (m *mount) stop(t *testing.T) {
	select {
	case <-m.done:
	default:
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(15 * time.Second):
			t.Errorf("modelstorefs did not exit within 15s of SIGTERM")
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	}
	if isMounted(m.dir) {
		t.Errorf("%s still mounted after the daemon exited", m.dir)
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
	}
	if t.Failed() {
		t.Logf("modelstorefs logs:\n%s", m.logs)
	}
}

// isMounted reports whether dir is a mountpoint of a modelstorefs FUSE fs.
func isMounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir && strings.Contains(sc.Text(), "fuse") {
			return true
		}
	}
	return false
}

// copyStore copies the bundled sample store into a fresh directory that a
// test may change.
func copyStore(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := os.CopyFS(dst, os.DirFS("testdata/store"))
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPython serves dir with python3 -m http.server on 127.0.0.1 and
// returns its URL.
func startPython(t *testing.T, dir string) string {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed for this test:", err)
	}
	port := freePort(t)
	cmd := exec.Command(python, "-m", "http.server", "--bind", "127.0.0.1", fmt.Sprint(port))
	cmd.Dir = dir
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
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

// goStore is an httptest model store serving a directory below a base path,
// counting requests per path.
type goStore struct {
	*httptest.Server
	dir  string
	base string // URL of the store, with its path
	mu   sync.Mutex
	hits map[string]int
	down atomic.Bool // answer 503 to everything
}

func startGoStore(t *testing.T, dir, prefix string) *goStore {
	t.Helper()
	s := &goStore{dir: dir, hits: map[string]int{}}
	files := http.StripPrefix(prefix, http.FileServer(http.Dir(dir)))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.Method+" "+r.URL.Path]++
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
			s.hits["COND "+r.Method+" "+r.URL.Path]++
		}
		s.mu.Unlock()
		if s.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	s.base = s.URL + prefix
	return s
}

func (s *goStore) count(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[methodPath]
}

// withTimeout runs fn (file system calls that could hang on a broken
// mount) and fails the test instead of hanging forever.
func withTimeout(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		t.Fatalf("%s: still running after %s", what, d)
		return nil
	}
}

// readFile reads a file from the mount with a bound on the time taken.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	var data []byte
	err := withTimeout(t, 30*time.Second, "read "+path, func() error {
		var err error
		data, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// listDir returns the names in a directory of the mount.
func listDir(t *testing.T, path string) []string {
	t.Helper()
	var names []string
	err := withTimeout(t, 30*time.Second, "readdir "+path, func() error {
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

// runCmd runs a shell tool (cp, cmp, grep, touch) with a time bound.
func runCmd(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
