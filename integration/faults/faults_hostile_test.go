package faults

// The second fault matrix (issue 13): hostile and unlucky stores beyond
// transport faults. Each row states the server's behaviour and asserts what
// the reader must see (correct bytes, or EIO within --retry-window), that
// the daemon stays alive and says why in its log, and that no credential
// or unbounded write escapes. fltFinish adds two checks to every row of
// both matrices: FUSE READ requests stay proportional to the bytes served
// (a reader looping on EINTR fails its row) and the cache dir stays within
// its bound.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

func fltHostileCases() []fltCase {
	return []fltCase{
		{"https-stall", "https store: first ranged GET stalls after half its bytes (--retry-window 5s)", true, fltRowHTTPSStall},
		{"chunked-short-206", "206 with a chunked body that ends 100 bytes short, every time (--retry-window 5s)", true, fltRowChunkedShort},
		{"unsized-no-range", "no Content-Length anywhere, no Range: 30 MiB weights, --cache-size 20MiB", false, fltRowUnsizedNoRange},
		{"unsized-range", "HEAD 405, chunked GETs that honour Range", false, fltRowUnsizedRange},
		{"redirect-downgrade", "https store with credentials redirects to http on the same host, another port", false, fltRowRedirectDowngrade},
		{"unstable-etag", "ETag changes on every request, same bytes and Last-Modified", false, fltRowUnstableETag},
		{"refused-read", "store refuses connections once listed (--retry-window 3s)", false, fltRowRefusedRead},
		{"inode-keyed", "inode numbers: keyed per cache dir", false, fltRowInodeKeyed},
		{"control-chars", "NUL, ESC, CSI and BEL in master.json \"msg\", info.json \"name\"/\"note\", aux.json", false, fltRowControlChars},
		{"password-argv", "store URL with a password: on the command line, and in the environment with --daemon", false, fltRowPasswordArgv},
	}
}

// ---- matrix-wide checks ----

// fltStats reads the mount's /.stats.
func fltStats(m *itest.Mount) (map[string]any, error) {
	res := fltRead(filepath.Join(m.Dir, ".stats"), 15*time.Second)
	if res.err != nil {
		return nil, res.err
	}
	var st map[string]any
	err := json.Unmarshal(res.data, &st)
	return st, err
}

// fltCheckReads asserts that the daemon answered a bounded number of FUSE
// READ requests per byte it served: a reader looping on an error (EINTR
// answered again and again) sends tens of thousands of READs for nothing.
func fltCheckReads(t *testing.T, r *fltRow, m *itest.Mount) {
	t.Helper()
	st, err := fltStats(m)
	if err != nil {
		t.Errorf(".stats: %v", err)
		return
	}
	reads, _ := st["read_requests"].(float64)
	served, _ := st["bytes_served"].(float64)
	// A READ asks for at most 128 KiB; small files and errors cost one
	// each. 256 requests plus one per KiB is far above any honest reader
	// and far below a spinning one.
	if limit := 256 + served/1024; reads > limit {
		fltBug(t, r, "%d FUSE READ requests for %d bytes served (limit %d): a reader is spinning", int64(reads), int64(served), int64(limit))
	}
}

// fltCacheDir is the mount's --cache-dir.
func fltCacheDir(m *itest.Mount) string {
	for i, a := range m.Cmd.Args {
		if a == "--cache-dir" && i+1 < len(m.Cmd.Args) {
			return m.Cmd.Args[i+1]
		}
	}
	return ""
}

// fltDirBytes is the disk space the files below dir take.
func fltDirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// fltCheckCacheBound asserts the cache dir holds no more than --cache-size
// (when the row set one; else 256 MiB, far above any row's store) plus
// 2 MiB of metadata.
func fltCheckCacheBound(t *testing.T, r *fltRow, m *itest.Mount) {
	t.Helper()
	limit := int64(256 << 20)
	for i, a := range m.Cmd.Args {
		if a == "--cache-size" && i+1 < len(m.Cmd.Args) {
			if n, err := fltParseMiB(m.Cmd.Args[i+1]); err == nil {
				limit = n
			}
		}
	}
	if used := fltDirBytes(fltCacheDir(m)); used > limit+2<<20 {
		fltBug(t, r, "the cache dir holds %d bytes, bound %d", used, limit)
	}
}

// fltParseMiB reads "20MiB".
func fltParseMiB(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSuffix(s, "MiB"), 10, 64)
	return n << 20, err
}

// ---- helpers ----

// fltRawAnswer hijacks the connection and writes text as the whole answer,
// then closes (or, with hold, keeps it open and silent until the test ends).
func fltRawAnswer(srv *fltServer, w http.ResponseWriter, text string, hold bool) {
	conn, bufrw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		srv.t.Errorf("hijack: %v", err)
		return
	}
	defer conn.Close()
	bufrw.WriteString(text)
	if bufrw.Flush() != nil || !hold {
		return
	}
	go func() { <-srv.Done(); conn.Close() }()
	_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
}

// fltReadPrefix reads the first n bytes of a file through the mount, as
// head -c does, giving up (not failing) after timeout.
func fltReadPrefix(p string, n int, timeout time.Duration) fltResult {
	return fltReadPrefixAt(p, 0, n, timeout)
}

// fltExpectBytesOrEIO accepts correct bytes, or EIO within limit; it fills
// r.saw and r.bytes.
func fltExpectBytesOrEIO(t *testing.T, r *fltRow, res fltResult, want []byte, limit time.Duration) {
	t.Helper()
	switch {
	case res.err == nil:
		v, ok := fltVerify(res.data, want)
		r.bytes = v
		r.saw = "correct bytes in " + fltSecs(res.took)
		if !ok {
			t.Errorf("read: %s", v)
		}
	case errors.Is(res.err, syscall.EIO) && res.took <= limit:
		r.bytes = "n/a (EIO)"
		r.saw = "EIO after " + fltSecs(res.took)
	default:
		r.saw = fmt.Sprintf("%s after %s", fltErrno(res.err), fltSecs(res.took))
		fltBug(t, r, "read: %v after %s; want the bytes, or EIO within %s", res.err, res.took, limit)
	}
}

// ---- rows ----

func fltRowHTTPSStall(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	files := fltStoreFiles(t, 4<<20)
	srv, ca := fltNewTLSServer(t, "/store/", files)
	srv.AddFault(fltWeights, remotetest.Fault{Kind: remotetest.FaultStall, Method: "GET", Times: 1, Cut: 0.5})
	m = itest.StartMount(t, fltStores(srv), "--ca-cert", ca, "--chunk-size", "1MiB", "--retry-window", "5s")
	res := fltRead(fltWeightsPath(m), 60*time.Second)
	fltExpectBytesOrEIO(t, r, res, files[fltWeights], 5*time.Second+20*time.Second)
	f, n := fltFaulted(srv, fltWeights)
	// A second stream may take over the rest of the file before the first
	// one reaches its stalled half; when it did not, the stall shows.
	logged := fltLogCount(m, "stalled")
	if res.took > 2*time.Second && logged == 0 {
		t.Errorf("the read waited %s, and the stall was not logged", res.took)
	}
	r.recovery = fmt.Sprintf("%d stalled GET (%d GETs in all); %d log lines name the stall", f, n, logged)
}

func fltRowChunkedShort(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, want := fltStdServer(t, 4<<20)
	short := func(w http.ResponseWriter, req *http.Request) {
		var start, end int64
		if _, err := fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &start, &end); err != nil || req.Method != http.MethodGet {
			srv.Answer(w, req, nil)
			return
		}
		f := srv.file(req)
		part := f.Data[start : end+1]
		half := part[:len(part)/2]
		fltRawAnswer(srv, w, fmt.Sprintf("HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nETag: %s\r\nLast-Modified: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n%x\r\n%s",
			f.ETag, f.ModTime.UTC().Format(http.TimeFormat), start, end, len(f.Data), len(half)+100, half), false)
	}
	srv.handle(srv.base+fltWeights, short)
	m = itest.StartMount(t, fltStores(srv), "--chunk-size", "1MiB", "--retry-window", "5s")
	// The first bytes of each answer are right: a reader may get them
	// (they are served as they arrive), or EIO once the window is over.
	res := fltReadPrefix(fltWeightsPath(m), 100, 60*time.Second)
	fltExpectBytesOrEIO(t, r, res, want[:100], 5*time.Second+20*time.Second)
	whole := fltRead(fltWeightsPath(m), 60*time.Second)
	if whole.err == nil {
		fltBug(t, r, "read the whole file from answers that were all short")
	} else if !errors.Is(whole.err, syscall.EIO) || whole.took > 5*time.Second+20*time.Second {
		fltBug(t, r, "whole read: %v after %s, want EIO within the retry window", whole.err, whole.took)
	}
	r.saw += "; whole file: " + fltErrno(whole.err) + " after " + fltSecs(whole.took)
	if n := fltLogCount(m, "fetch failed"); n == 0 {
		t.Errorf("the short answers were not logged")
	}
	_, gets := fltFaulted(srv, fltWeights)
	srv.handle(srv.base+fltWeights, nil)
	again := fltRead(fltWeightsPath(m), 60*time.Second)
	if again.err != nil {
		t.Errorf("re-read with a healthy server: %v", again.err)
		r.recovery = "re-read: " + fltErrno(again.err)
		return
	}
	v, _ := fltVerify(again.data, want)
	r.recovery = fmt.Sprintf("%d short answers refused; re-read once healthy: %s", gets, v)
}

// fltChunkedWriter drops Content-Length so that the answer goes chunked.
type fltChunkedWriter struct{ http.ResponseWriter }

func (w fltChunkedWriter) WriteHeader(code int) {
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(code)
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w fltChunkedWriter) Write(p []byte) (int, error) { return w.ResponseWriter.Write(p) }

func fltRowUnsizedNoRange(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, _ := fltStdServer(t, 30<<20)
	var bodies atomic.Int64
	srv.handle(srv.base+fltWeights, func(w http.ResponseWriter, req *http.Request) {
		f := srv.file(req)
		w.Header().Set("ETag", f.ETag)
		cw := fltChunkedWriter{w}
		cw.WriteHeader(http.StatusOK)
		if req.Method == http.MethodGet {
			n, _ := cw.Write(f.Data)
			bodies.Add(int64(n))
		}
	})
	m = itest.StartMount(t, fltStores(srv), "--cache-size", "20MiB")
	names, err := fltLs(filepath.Join(m.Dir, "s", "big"), 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	used := fltDirBytes(fltCacheDir(m))
	r.saw = fmt.Sprintf("ls -la: %s; cache dir %d MiB", strings.Join(names, " "), used>>20)
	r.bytes = "-"
	msg, err := os.ReadFile(filepath.Join(m.Dir, "s", "big", "error.txt"))
	if err != nil || !strings.Contains(string(msg), "no size") {
		t.Errorf("error.txt %q (%v): want it to say the store gives no size", msg, err)
	}
	if used > 21<<20 {
		fltBug(t, r, "the cache dir grew to %d bytes with --cache-size 20MiB", used)
	}
	r.recovery = fmt.Sprintf("size-learning download stopped at the cache bound (%d MiB received); error.txt says why", bodies.Load()>>20)
}

func fltRowUnsizedRange(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, want := fltStdServer(t, 4<<20)
	srv.handle(srv.base+fltWeights, func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodHead {
			http.Error(w, "no HEAD here", http.StatusMethodNotAllowed)
			return
		}
		srv.Answer(fltChunkedWriter{w}, req, nil)
	})
	m = itest.StartMount(t, fltStores(srv), "--chunk-size", "1MiB")
	st, err := fltStat(fltWeightsPath(m))
	if err != nil || st.Size != int64(len(want)) {
		t.Errorf("stat: size %d (%v), want %d", st.Size, err, len(want))
	}
	res := fltRead(fltWeightsPath(m), 60*time.Second)
	fltExpectBytes(t, r, res, want, "weights")
	r.saw = fmt.Sprintf("size %d from a one-byte ranged GET; read in %s", st.Size, fltSecs(res.took))
	_, gets := fltFaulted(srv, fltWeights)
	r.recovery = fmt.Sprintf("no download to learn the size (%d GETs in all)", gets)
}

func fltRowRedirectDowngrade(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	files := fltStoreFiles(t, 4<<20)
	srv, ca := fltNewTLSServer(t, "/store/", files)
	plain := fltNewServer(t, "127.0.0.1", "/store/", files)
	srv.AddFault(fltWeights, remotetest.Fault{Kind: remotetest.FaultRedirect, Method: "GET", Times: -1, Location: plain.url() + fltWeights})
	srv.AddFault("lenet/info.json", remotetest.Fault{Kind: remotetest.FaultRedirect, Times: -1, Location: plain.url() + "lenet/info.json"})
	m = itest.StartMount(t, fltStores(srv, "alice:s3cret"), "--ca-cert", ca, "--chunk-size", "1MiB")
	res := fltRead(fltWeightsPath(m), 60*time.Second)
	info := fltRead(filepath.Join(m.Dir, "s", "lenet", "info.json"), 30*time.Second)
	leaked, reached := 0, 0
	for _, q := range plain.Arrivals() {
		reached++
		if q.Auth {
			leaked++
		}
	}
	withAuth := 0
	for _, q := range srv.Arrivals() {
		if q.Auth {
			withAuth++
		}
	}
	r.saw = fmt.Sprintf("weights %s, info.json %s", fltErrno(res.err), fltErrno(info.err))
	if res.err == nil {
		r.bytes, _ = fltVerify(res.data, files[fltWeights])
	}
	if leaked > 0 {
		fltBug(t, r, "%d of %d requests to the http origin carried the credentials", leaked, reached)
	}
	if reached == 0 || withAuth == 0 {
		t.Errorf("the redirect was not followed (%d) or the store never got credentials (%d)", reached, withAuth)
	}
	r.recovery = fmt.Sprintf("%d requests followed to http://%s, none with credentials; %d to the https store with them", reached, plain.addr, withAuth)
}

func fltRowUnstableETag(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, want := fltStdServer(t, 4<<20)
	var n atomic.Int64
	srv.handle(srv.base+fltWeights, func(w http.ResponseWriter, req *http.Request) {
		f := srv.file(req)
		f.ETag = fmt.Sprintf(`"dyn-%d"`, n.Add(1))
		srv.Answer(w, req, &f)
	})
	m = itest.StartMount(t, fltStores(srv), "--chunk-size", "1MiB", "--retry-window", "5s")
	res := fltRead(fltWeightsPath(m), 60*time.Second)
	fltExpectBytes(t, r, res, want, "weights")
	r.saw = "correct bytes in " + fltSecs(res.took)
	if res.err != nil {
		r.saw = fltErrno(res.err) + " after " + fltSecs(res.took)
	}
	warns := fltLogCount(m, "WARN", "new ETag on every request", `"store": "s"`)
	if warns != 1 {
		t.Errorf("%d WARN lines naming the store, want 1", warns)
	}
	fltTouch(t, filepath.Join(m.Dir, ".refresh"))
	again := fltRead(fltWeightsPath(m), 60*time.Second)
	if again.err != nil {
		t.Errorf("after .refresh: %v", again.err)
	}
	r.recovery = fmt.Sprintf("recognised, %d WARN line; read whole, checked by size and date; after .refresh: %s", warns, fltErrno(again.err))
}

func fltRowRefusedRead(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, _ := fltStdServer(t, 4<<20)
	m = itest.StartMount(t, fltStores(srv), "--retry-window", "3s")
	if _, err := fltLs(filepath.Join(m.Dir, "s", "big"), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	srv.setDown(true)
	res := fltRead(fltWeightsPath(m), 60*time.Second)
	r.saw = fmt.Sprintf("%s after %s", fltErrno(res.err), fltSecs(res.took))
	r.bytes = "n/a"
	if !errors.Is(res.err, syscall.EIO) {
		fltBug(t, r, "read of a refusing store: %v, want EIO", res.err)
	}
	srv.setDown(false)
	r.recovery = "EIO (the log names the refused connection)"
	if n := fltLogCount(m, "connection refused"); n == 0 {
		t.Errorf("the log does not name the refused connection")
	}
}

func fltRowInodeKeyed(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, _ := fltStdServer(t, 1<<20)
	ino := func(mt *itest.Mount) uint64 {
		st, err := fltStat(fltWeightsPath(mt))
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		return st.Ino
	}
	cacheA := t.TempDir()
	a := fltMountAt(t, t.TempDir(), cacheA, fltStores(srv))
	inoA := ino(a)
	a.Stop(t)
	m = fltMountAt(t, t.TempDir(), cacheA, fltStores(srv))
	again := ino(m)
	other := itest.StartMount(t, fltStores(srv))
	inoB := ino(other)
	r.saw = fmt.Sprintf("same cache dir: %x then %x; another cache dir: %x", inoA, again, inoB)
	r.bytes = "-"
	if inoA != again {
		t.Errorf("inode changed across a remount on one cache dir: %x, %x", inoA, again)
	}
	if inoA == inoB {
		t.Errorf("two cache dirs (two keys) gave one inode number %x", inoA)
	}
	r.recovery = "numbers are HMACs keyed per cache dir: stable across remounts, not computable by a store"
}

func fltRowControlChars(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	files := fltStoreFiles(t, 1<<20)
	files["master.json"] = []byte(`{"msg": "Hi\u0000\u001b]0;title\u0007\nline 2\u001b[2J\u009b31m", "children": ["lenet", "big"]}`)
	files["big/info.json"] = []byte(strings.Replace(fltBigInfo, `"name": "Big"`, `"name": "B\u0000ig\u001b]0;pwned\u0007", "note": "\u001b[2J\u001b[H\r\nx"`, 1))
	files["big/aux.json"] = []byte(`{"dataset": "MN\u001b[1mIST"}`)
	srv := fltNewServer(t, "127.0.0.1", "/store/", files)
	m = itest.StartMount(t, fltStores(srv))
	var bad []string
	for _, c := range []struct{ name, path, allowed string }{
		{"models.tsv", filepath.Join(m.Dir, "s", "models.tsv"), "\t\n"},
		{"root models.tsv", filepath.Join(m.Dir, "models.tsv"), "\t\n"},
		{"welcome.txt", filepath.Join(m.Dir, "s", "welcome.txt"), "\t\n"},
	} {
		res := fltRead(c.path, 30*time.Second)
		if res.err != nil {
			t.Errorf("%s: %v", c.name, res.err)
			continue
		}
		if ch, ok := testutil.Harmless(string(res.data), c.allowed); !ok {
			bad = append(bad, fmt.Sprintf("%s holds %U", c.name, ch))
		}
	}
	out, err := exec.Command(itest.Binary, "ls", "--cache-dir", fltCacheDir(m), "--store", srv.url()).CombinedOutput()
	if err != nil {
		t.Errorf("modelstorefs ls: %v\n%s", err, out)
	} else if ch, ok := testutil.Harmless(string(out), "\t\n"); !ok {
		bad = append(bad, fmt.Sprintf("modelstorefs ls holds %U", ch))
	}
	r.bytes = "-"
	if len(bad) > 0 {
		r.saw = strings.Join(bad, "; ")
		fltBug(t, r, "control characters reach the terminal: %s", r.saw)
		return
	}
	r.saw = "models.tsv, welcome.txt and ls show them escaped (\\x1b...)"
	r.recovery = "n/a"
}

func fltRowPasswordArgv(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	srv, _ := fltStdServer(t, 1<<20)
	const pw = "s3cretPW"
	// In the environment (as startMount passes stores), then --daemon.
	m = itest.StartMount(t, fltStores(srv, "alice:"+pw))
	_ = fltRead(filepath.Join(m.Dir, "s", "lenet", "info.json"), 30*time.Second)
	var leaks []string
	cmdline := func(pid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return string(b)
	}
	if strings.Contains(cmdline(m.Cmd.Process.Pid), pw) {
		leaks = append(leaks, "the daemon's argv")
	}
	if strings.Contains(m.Logs.String(), pw) {
		leaks = append(leaks, "the log")
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), pw) {
		leaks = append(leaks, "mountinfo (findmnt SOURCE)")
	}
	// On the command line: it works, with one warning.
	dir := t.TempDir()
	cmd := exec.Command(itest.Binary, "mount", "--daemon", "--cache-dir", t.TempDir(), "--log-file", filepath.Join(t.TempDir(), "log"),
		"--store", "s="+srv.url("alice:"+pw), dir)
	cmd.Env = append(os.Environ(), "DIGITS_MODEL_STORE_URL=")
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { _, _ = exec.Command(itest.Binary, "unmount", dir).CombinedOutput() })
	warned := strings.Count(string(out), "carries a password")
	if err != nil {
		t.Errorf("mount --daemon --store with a password: %v\n%s", err, out)
	} else {
		if warned != 1 {
			t.Errorf("%d warnings about the password on the command line, want 1:\n%s", warned, out)
		}
		// The detached daemon got the stores in its environment.
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), dir) && strings.Contains(string(b), pw) {
				leaks = append(leaks, "the detached daemon's argv ("+p+")")
			}
		}
	}
	r.bytes = "-"
	if len(leaks) > 0 {
		r.saw = "password in " + strings.Join(leaks, ", ")
		fltBug(t, r, "%s", r.saw)
		return
	}
	r.saw = fmt.Sprintf("never in argv, logs or mountinfo; %d warning for the command line", warned)
	r.recovery = "README: ~/.netrc, --store-file or DIGITS_MODEL_STORE_URL"
}

// fltStat is syscall.Stat retried on EINTR, as os.Stat is: the Go
// runtime's preemption signal can interrupt the test's own stat, and the
// daemon rightly answers an interrupted request EINTR.
func fltStat(path string) (syscall.Stat_t, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		if err != syscall.EINTR {
			return st, err
		}
	}
}
