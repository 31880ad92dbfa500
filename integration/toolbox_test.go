package integration

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// TestStatsAndXattrs: /.stats counts what was fetched and served, and every
// remote file carries user.modelstore.* attributes.
func TestStatsAndXattrs(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base})
	weights := filepath.Join(m.Dir, itest.StoreName(s.Base), "lenet", "model.caffemodel")
	data := itest.ReadFile(t, weights)

	xattr := func(name string) string {
		buf := make([]byte, 4096)
		n, err := syscall.Getxattr(weights, "user.modelstore."+name, buf)
		if err != nil {
			t.Fatalf("getxattr %s: %v", name, err)
		}
		return string(buf[:n])
	}
	if got, want := xattr("url"), s.Base+"lenet/snapshot_iter_28140.caffemodel"; got != want {
		t.Errorf("url = %q, want %q", got, want)
	}
	if got := xattr("store"); got != itest.StoreName(s.Base) {
		t.Errorf("store = %q", got)
	}
	if got := xattr("cached"); got != strconv.Itoa(len(data)) {
		t.Errorf("cached = %q, want %d", got, len(data))
	}
	if xattr("last_modified") == "" {
		t.Error("no last_modified")
	}
	if _, err := syscall.Getxattr(weights, "user.other", make([]byte, 64)); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("unknown attribute: %v, want ENODATA", err)
	}

	var st struct {
		Stores []struct {
			Name          string `json:"name"`
			Requests      int64  `json:"requests"`
			BytesReceived int64  `json:"bytes_received"`
			Models        int    `json:"models"`
		} `json:"stores"`
		Content struct {
			Misses int64 `json:"misses"`
			Files  int   `json:"files"`
			Used   int64 `json:"used_bytes"`
		} `json:"content"`
	}
	// Readers are answered before the download is committed (synced and
	// renamed), so wait for the file to count as complete.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		raw := itest.ReadFile(t, filepath.Join(m.Dir, ".stats"))
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf(".stats is not JSON: %v\n%s", err, raw)
		}
		if st.Content.Files >= 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(st.Stores) != 1 || st.Stores[0].Models != 4 || st.Stores[0].Requests == 0 ||
		st.Stores[0].BytesReceived < int64(len(data)) {
		t.Errorf("store stats = %+v", st.Stores)
	}
	if st.Content.Misses < 1 || st.Content.Files < 1 || st.Content.Used < int64(len(data)) {
		t.Errorf("content stats = %+v", st.Content)
	}
	if _, err := os.OpenFile(filepath.Join(m.Dir, ".stats"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write-open of .stats: %v, want EROFS", err)
	}
}

// TestXattrNamespaces: names outside "user." get ENOTSUP (EOPNOTSUPP) on
// every kind of node, so that GNU ls -l remembers the mount as having no
// SELinux labels or ACLs instead of sending a GETXATTR for every file; the
// user.modelstore.* attributes keep working (no ENOSYS, which would turn
// off getxattr for the whole mount).
func TestXattrNamespaces(t *testing.T) {
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base}, "--debug-fuse")
	store := filepath.Join(m.Dir, itest.StoreName(s.Base))
	weights := filepath.Join(store, "lenet", "model.caffemodel")
	paths := []string{m.Dir, store, filepath.Join(store, "lenet"), weights,
		filepath.Join(store, "lenet", "info.json"), filepath.Join(store, "lenet", "status.pickle"), filepath.Join(m.Dir, ".stats")}
	for _, p := range paths {
		for _, name := range []string{"security.selinux", "system.posix_acl_access", "trusted.x"} {
			var err error
			if werr := itest.WithTimeout(t, 10*time.Second, "getxattr "+p, func() error {
				_, err = syscall.Getxattr(p, name, make([]byte, 256))
				return nil
			}); werr != nil {
				t.Fatal(werr)
			}
			if !errors.Is(err, syscall.ENOTSUP) {
				t.Errorf("getxattr(%s, %s) = %v, want ENOTSUP", p, name, err)
			}
		}
	}
	buf := make([]byte, 4096)
	if n, err := syscall.Getxattr(weights, "user.modelstore.url", buf); err != nil || string(buf[:n]) != s.Base+"lenet/snapshot_iter_28140.caffemodel" {
		t.Errorf("user.modelstore.url after the other namespaces = %q, %v", buf[:max(n, 0)], err)
	}
	if _, err := syscall.Getxattr(weights, "user.other", buf); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("user.other = %v, want ENODATA", err)
	}

	// ls -lR: with GNU ls, which stops asking a device that said ENOTSUP,
	// the kernel forwards a couple of GETXATTRs for the whole tree, not one
	// or two per entry (other ls implementations send none).
	// The daemon's log comes through a pipe, behind its answers: the
	// getxattrs above are counted as before only once their lines are in.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(m.Logs.String(), `"user.other"`); {
		if time.Now().After(deadline) {
			t.Fatal(`the debug log has no GETXATTR "user.other" 10s after it was answered`)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := strings.Count(m.Logs.String(), ": GETXATTR ")
	var out []byte
	if err := itest.WithTimeout(t, 30*time.Second, "ls -lR", func() (err error) {
		out, err = exec.Command("ls", "-lR", store).CombinedOutput()
		return err
	}); err != nil {
		t.Fatalf("ls -lR: %v\n%s", err, out)
	}
	entries := 0
	_ = filepath.WalkDir(store, func(string, fs.DirEntry, error) error { entries++; return nil })
	// The debug log line of a request is written before its answer.
	got := strings.Count(m.Logs.String(), ": GETXATTR ") - before
	if entries < 10 || got > 4 {
		t.Errorf("ls -lR of %d entries sent %d GETXATTR requests, want at most 4", entries, got)
	}
}

// TestServeAndCheckCommands runs `modelstorefs serve` and `modelstorefs
// check` as a user would: serve answers Range and conditional requests and
// refuses a symlink out of its directory; check exits 1 on the sample store
// (one broken model) and 0 once the broken model is gone.
func TestServeAndCheckCommands(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "lenet", "escape.txt")); err != nil {
		t.Fatal(err)
	}
	base := startServeCommand(t, src)
	checkServedStore(t, base, src)

	// check, against the served URL and the directory.
	for _, target := range []string{base, src} {
		out, err := runBinary(t, nil, "check", target)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, "broken: error") {
			t.Errorf("check %s: %v\n%s", target, err, out)
		}
	}
	if err := os.RemoveAll(filepath.Join(src, "broken")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "master.json"), `{"msg": "ok", "children": ["lenet", "alexnet-torch", "inception-tf"]}`)
	if out, err := runBinary(t, nil, "check", src); err != nil {
		t.Errorf("check of a good store: %v\n%s", err, out)
	}
}

// startServeCommand starts `modelstorefs serve` of the folder src on a
// free port, stopped by SIGTERM (which it must obey) when the test ends,
// waits until it answers, and returns its base URL.
func startServeCommand(t *testing.T, src string) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(itest.FreePort(t))
	cmd := exec.Command(itest.Binary, "serve", "--addr", addr, src)
	logs := &itest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve exit after SIGTERM: %v\n%s", err, logs)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("serve did not stop on SIGTERM")
		}
	})
	base := "http://" + addr + "/"
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err = http.Get(base + "master.json"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("serve not answering: %v\n%s", err, logs)
	}
	resp.Body.Close()
	return base
}

// checkServedStore checks that the store src served at base answers
// Range and If-None-Match requests, and does not follow lenet/escape.txt,
// a symlink out of the store.
func checkServedStore(t *testing.T, base, src string) {
	t.Helper()
	weights, _ := os.ReadFile(filepath.Join(src, "lenet", "snapshot_iter_28140.caffemodel"))
	req, _ := http.NewRequest(http.MethodGet, base+"lenet/snapshot_iter_28140.caffemodel", nil)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, weights[100:200]) {
		t.Errorf("Range: %s, %d bytes", resp.Status, len(part))
	}
	req.Header.Del("Range")
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	if resp, err = http.Get(base + "lenet/escape.txt"); err != nil || resp.StatusCode < 400 {
		t.Errorf("symlink out of the store: %v %v", resp.Status, err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		if bytes.Contains(body, []byte("secret")) {
			t.Error("serve leaked a file outside its directory")
		}
	}
	resp.Body.Close()
}

// TestCompletionScripts: the completion scripts are valid for their shell.
func TestCompletionScripts(t *testing.T) {
	t.Parallel() // the binary's output only
	out, err := runBinary(t, nil, "completion", "bash")
	if err != nil || !strings.Contains(out, "complete ") {
		t.Fatalf("completion bash: %v\n%s", err, out)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		check := exec.Command(bash, "-n")
		check.Stdin = strings.NewReader(out)
		if msg, err := check.CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v\n%s", err, msg)
		}
	}
	if out, err := runBinary(t, nil, "--generate-bash-completion"); err != nil || !strings.Contains(out, "mount") || !strings.Contains(out, "import") {
		t.Errorf("--generate-bash-completion: %v\n%s", err, out)
	}
	for _, sh := range []string{"zsh", "fish"} {
		if out, err := runBinary(t, nil, "completion", sh); err != nil || !strings.Contains(out, "modelstorefs") {
			t.Errorf("completion %s: %v\n%s", sh, err, out)
		}
	}
}

// TestPrivateCA: an https store signed by a private CA works with --ca-cert
// and is refused (certificate error in error.txt) without it.
func TestPrivateCA(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(src)))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	url := srv.URL + "/"
	name := strings.NewReplacer(":", "_", "/", "_").Replace(strings.Trim(strings.TrimPrefix(url, "https://"), "/"))

	m := itest.StartMount(t, []string{url}, "--ca-cert", caFile)
	if got := itest.ReadFile(t, filepath.Join(m.Dir, name, "lenet", "info.json")); !bytes.Contains(got, []byte("LeNet")) {
		t.Errorf("info.json over TLS: %q", got)
	}
	refused := itest.StartMount(t, []string{url}, "--retry-window", "2s")
	msg := itest.ReadFile(t, filepath.Join(refused.Dir, name, "error.txt"))
	if !bytes.Contains(msg, []byte("certificate")) {
		t.Errorf("without --ca-cert: error.txt %q", msg)
	}
}

// TestMmap: a model file can be mapped into memory, both while it is being
// downloaded (page-cache mode) and once complete (passthrough on a fresh
// mount over the same cache).
func TestMmap(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	cacheDir := t.TempDir()
	want, _ := os.ReadFile(filepath.Join(src, "lenet", "snapshot_iter_28140.caffemodel"))
	for _, round := range []string{"cold", "complete in the cache"} {
		m := itest.StartMount(t, []string{s.Base}, "--cache-dir", cacheDir)
		path := filepath.Join(m.Dir, itest.StoreName(s.Base), "lenet", "model.caffemodel")
		err := itest.WithTimeout(t, 30*time.Second, "mmap "+round, func() (err error) {
			// A page the mount fails to read is a SIGBUS: a test failure
			// with the daemon's log, not a crash of every test.
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("reading the mapping: %v", r)
				}
			}()
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			data, err := syscall.Mmap(int(f.Fd()), 0, len(want), syscall.PROT_READ, syscall.MAP_SHARED)
			if err != nil {
				return err
			}
			defer syscall.Munmap(data)
			if !bytes.Equal(data, want) {
				t.Errorf("%s: mapped bytes differ", round)
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", round, err)
		}
		m.Stop(t)
	}
	if n := s.Count("GET /lenet/snapshot_iter_28140.caffemodel"); n != 1 {
		t.Errorf("weights fetched %d times, want once (the second mount reads the cache)", n)
	}
}

// TestRestartWhileStoreDown: metadata is kept in the cache dir, so a
// daemon started while its store is down still shows the store (stale, with
// error.txt saying so) and serves the files already cached; once the store
// is back, a restart revalidates with conditional requests.
func TestRestartWhileStoreDown(t *testing.T) {
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	cacheDir := t.TempDir()
	want := itest.ReadFile(t, filepath.Join(src, "lenet", "snapshot_iter_28140.caffemodel"))

	m := itest.StartMount(t, []string{s.Base}, "--cache-dir", cacheDir)
	root := filepath.Join(m.Dir, itest.StoreName(s.Base))
	itest.ListDir(t, filepath.Join(root, "lenet"))
	itest.ReadFile(t, filepath.Join(root, "lenet", "model.caffemodel"))
	// Wait until every model is resolved (prefetch) and the file committed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var st struct {
			Content struct{ Files int } `json:"content"`
		}
		_ = json.Unmarshal(itest.ReadFile(t, filepath.Join(m.Dir, ".stats")), &st)
		if st.Content.Files >= 1 || time.Now().After(deadline) {
			break
		}
	}
	m.Stop(t)

	s.Down.Store(true)
	m = itest.StartMount(t, []string{s.Base}, "--cache-dir", cacheDir, "--retry-window", "2s")
	root = filepath.Join(m.Dir, itest.StoreName(s.Base))
	got := itest.ListDir(t, root)
	for _, name := range []string{"lenet", "alexnet-torch", "error.txt"} {
		if !slices.Contains(got, name) {
			t.Errorf("store down after a restart: %q lacks %s", got, name)
		}
	}
	if data := itest.ReadFile(t, filepath.Join(root, "lenet", "model.caffemodel")); !bytes.Equal(data, want) {
		t.Error("cached weights not served while the store is down")
	}
	if msg := itest.ReadFile(t, filepath.Join(root, "error.txt")); !bytes.Contains(msg, []byte("failing")) {
		t.Errorf("error.txt = %q", msg)
	}
	m.Stop(t)

	s.Down.Store(false)
	before, beforeCond := s.Count("GET /lenet/info.json"), s.Count("COND GET /lenet/info.json")
	m = itest.StartMount(t, []string{s.Base}, "--cache-dir", cacheDir)
	root = filepath.Join(m.Dir, itest.StoreName(s.Base))
	if got := itest.ReadFile(t, filepath.Join(root, "lenet", "info.json")); !bytes.Contains(got, []byte("LeNet")) {
		t.Errorf("info.json after the store came back: %q", got)
	}
	// The GET of info.json was conditional (the kept metadata supplies the
	// validators and, on 304, the bytes).
	if n, c := s.Count("GET /lenet/info.json"), s.Count("COND GET /lenet/info.json"); n != before+1 || c != beforeCond+1 {
		t.Errorf("info.json GETs after restart: %d (%d conditional), want %d (%d)", n, c, before+1, beforeCond+1)
	}
}
