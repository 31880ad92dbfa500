package faults

// The fault-injecting model store of the fault matrix (faults_test.go): a
// store on a 127.0.0.x address whose answers can be spoiled per path and
// per request (resets, truncation, lying lengths, 5xx bursts, Retry-After,
// slow or stalled bodies, redirects, a server that ignores Range, content
// replaced mid-download, throttling), that can go down and come back on the
// same port, and that logs every request it gets.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// fltModTime is the Last-Modified of every file, on every server: two
// servers holding the same bytes announce the same version.
var fltModTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// fltFile is one version of a file the server holds.
type fltFile struct {
	data []byte
	etag string
	mod  time.Time
}

func fltNewFile(data []byte, mod time.Time) *fltFile {
	sum := sha256.Sum256(data)
	return &fltFile{data: data, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, mod: mod}
}

// fltKind is a way of spoiling one answer.
type fltKind int

const (
	fltStatus      fltKind = iota // answer status (with Retry-After if set)
	fltReset                      // right headers, part of the body, then a TCP RST
	fltTruncate                   // right Content-Length, part of the body, then FIN
	fltLyingLength                // Content-Length (and Content-Range) of the part only, as if it were all
	fltDelay                      // wait before the headers, then answer normally
	fltStall                      // right headers, part of the body, then silence until the client gives up
	fltRedirect                   // 302 to location
	fltNoRange                    // 200 with the whole file, Range and If-Range ignored
	fltReplace                    // swap in newData, but answer this request from the old version
	fltThrottle                   // answer normally with the body at rate bytes/s
)

func (k fltKind) String() string {
	return [...]string{"status", "reset", "truncate", "lying-length", "delay", "stall", "redirect", "no-range", "replace", "throttle"}[k]
}

// fltFault spoils the next times answers (negative: all) to requests for
// one path with method ("" any).
type fltFault struct {
	kind       fltKind
	method     string
	times      int
	status     int
	retryAfter string
	cut        float64 // fraction of the body sent before the fault
	delay      time.Duration
	location   string
	newData    []byte
	rate       int64
}

// fltReq is one request as the server got it.
type fltReq struct {
	at     time.Time
	method string
	path   string // decoded
	uri    string // as sent
	rng    string
	auth   bool // carried an Authorization header
	fault  string
}

// fltServer is a model store below base on one 127.0.0.x address.
type fltServer struct {
	t    *testing.T
	addr string // host:port, kept across down and up
	base string // URL path of the store, "/store/"

	mu       sync.Mutex
	files    map[string]*fltFile // full URL path -> current version
	faults   map[string][]*fltFault
	handlers map[string]http.HandlerFunc // full URL path -> custom answer
	listing  bool                        // HTML listings of directories
	reqs     []fltReq
	srv      *http.Server
	conns    map[net.Conn]bool // hijacked connections, closed on down
	down     bool
	quit     chan struct{} // closed when the test ends
	tls      *tls.Config   // set: the server speaks https (fltNewTLSServer)

	// idleTimeout closes idle keep-alive connections (0: never).
	idleTimeout time.Duration
}

// fltNewServer serves files (paths below base, e.g. "lenet/info.json") on
// host ("127.0.0.1", "127.0.0.2", ...), port chosen by the kernel.
func fltNewServer(t *testing.T, host, base string, files map[string][]byte) *fltServer {
	t.Helper()
	return fltNewServerIdle(t, host, base, files, 0)
}

// fltNewServerIdle is fltNewServer closing idle keep-alive connections
// after idle (0: never), as nginx's keepalive_timeout does.
func fltNewServerIdle(t *testing.T, host, base string, files map[string][]byte, idle time.Duration) *fltServer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := &fltServer{
		t: t, addr: ln.Addr().String(), base: base,
		files: map[string]*fltFile{}, faults: map[string][]*fltFault{},
		handlers: map[string]http.HandlerFunc{}, conns: map[net.Conn]bool{},
		quit: make(chan struct{}), idleTimeout: idle,
	}
	for p, data := range files {
		s.files[base+p] = fltNewFile(data, fltModTime)
	}
	s.serve(ln)
	t.Cleanup(func() {
		close(s.quit)
		s.setDown(true)
	})
	return s
}

// fltNewTLSServer is fltNewServer speaking https on 127.0.0.1, with a
// certificate of its own; caFile is the PEM file to give --ca-cert.
func fltNewTLSServer(t *testing.T, base string, files map[string][]byte) (srv *fltServer, caFile string) {
	t.Helper()
	// httptest makes the certificate (for 127.0.0.1); the fault server
	// keeps its own listener, so it can go down and come back.
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	cfg := ts.TLS.Clone()
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	ts.Close()
	if err := os.WriteFile(caFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fltServer{
		t: t, addr: ln.Addr().String(), base: base,
		files: map[string]*fltFile{}, faults: map[string][]*fltFault{},
		handlers: map[string]http.HandlerFunc{}, conns: map[net.Conn]bool{},
		quit: make(chan struct{}), tls: cfg,
	}
	for p, data := range files {
		s.files[base+p] = fltNewFile(data, fltModTime)
	}
	s.serve(ln)
	t.Cleanup(func() {
		close(s.quit)
		s.setDown(true)
	})
	return s, caFile
}

// url is the store's URL, with userinfo if given ("user:password").
func (s *fltServer) url(userinfo ...string) string {
	u := "http://"
	if s.tls != nil {
		u = "https://"
	}
	if len(userinfo) > 0 {
		u += userinfo[0] + "@"
	}
	return u + s.addr + s.base
}

func (s *fltServer) serve(ln net.Listener) {
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.mu.Lock()
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: s.idleTimeout, ErrorLog: log.New(io.Discard, "", 0)}
	s.srv, s.down = srv, false
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// setDown stops answering (connections refused, open ones closed) or
// listens again on the same port.
func (s *fltServer) setDown(down bool) {
	s.t.Helper()
	if !down {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			s.t.Errorf("fault server back up on %s: %v", s.addr, err)
			return
		}
		s.serve(ln)
		return
	}
	s.mu.Lock()
	srv, conns := s.srv, s.conns
	s.srv, s.conns, s.down = nil, map[net.Conn]bool{}, true
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	for c := range conns {
		c.Close()
	}
}

// put stores (or replaces) a file below base, as a new version.
func (s *fltServer) put(rel string, data []byte, mod time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[s.base+rel] = fltNewFile(data, mod)
}

// fault adds a fault for a path below base; faults of a path apply in the
// order added, each as many times as it says.
func (s *fltServer) fault(rel string, f fltFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[s.base+rel] = append(s.faults[s.base+rel], &f)
}

// clearFaults removes every fault of a path below base.
func (s *fltServer) clearFaults(rel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, s.base+rel)
}

// handle answers a full URL path with fn instead of the files (nil: the
// files again).
func (s *fltServer) handle(fullPath string, fn http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.handlers, fullPath)
	} else {
		s.handlers[fullPath] = fn
	}
}

// setListing turns HTML listings of directories on or off.
func (s *fltServer) setListing(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listing = on
}

// requests returns the requests got so far, in order.
func (s *fltServer) requests() []fltReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// count returns how many requests for a path below base had method ("" any).
func (s *fltServer) count(method, rel string) int {
	n := 0
	for _, r := range s.requests() {
		if r.path == s.base+rel && (method == "" || r.method == method) {
			n++
		}
	}
	return n
}

func (s *fltServer) take(r *http.Request) *fltFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults[r.URL.Path] {
		if f.times == 0 || (f.method != "" && f.method != r.Method) {
			continue
		}
		if f.times > 0 {
			f.times--
		}
		return f
	}
	return nil
}

func (s *fltServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := s.take(r)
	rec := fltReq{at: time.Now(), method: r.Method, path: r.URL.Path, uri: r.RequestURI,
		rng: r.Header.Get("Range"), auth: r.Header.Get("Authorization") != ""}
	if f != nil {
		rec.fault = f.kind.String()
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	h := s.handlers[r.URL.Path]
	s.mu.Unlock()
	if f == nil {
		if h != nil {
			h(w, r)
			return
		}
		s.answer(w, r, nil)
		return
	}
	switch f.kind {
	case fltStatus:
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		http.Error(w, fmt.Sprintf("injected %d", f.status), f.status)
	case fltDelay:
		select {
		case <-time.After(f.delay):
		case <-s.quit:
			return
		}
		s.answer(w, r, nil)
	case fltRedirect:
		w.Header().Set("Location", f.location)
		w.WriteHeader(http.StatusFound)
	case fltNoRange:
		s.wholeIgnoringRange(w, r)
	case fltReplace:
		s.mu.Lock()
		old := s.files[r.URL.Path]
		if old != nil {
			s.files[r.URL.Path] = fltNewFile(f.newData, old.mod.Add(time.Hour))
		}
		s.mu.Unlock()
		s.answer(w, r, old)
	case fltThrottle:
		s.answer(&fltSlowWriter{ResponseWriter: w, rate: f.rate, quit: s.quit}, r, nil)
	case fltReset, fltTruncate, fltLyingLength, fltStall:
		s.spoil(w, r, f)
	}
}

// answer serves a file (file, or the current version of the path), a
// directory listing, or 404, honouring Range, If-Range and conditionals.
func (s *fltServer) answer(w http.ResponseWriter, r *http.Request, file *fltFile) {
	s.mu.Lock()
	if file == nil {
		file = s.files[r.URL.Path]
	}
	var body []byte
	if file == nil && s.listing && strings.HasSuffix(r.URL.Path, "/") && strings.HasPrefix(r.URL.Path, s.base) {
		body = s.listingLocked(r.URL.Path)
	}
	s.mu.Unlock()
	switch {
	case file != nil:
		w.Header().Set("ETag", file.etag)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", file.mod, bytes.NewReader(file.data))
	case body != nil:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	default:
		http.NotFound(w, r)
	}
}

// listingLocked is an nginx-like autoindex of dir.
func (s *fltServer) listingLocked(dir string) []byte {
	seen := map[string]bool{}
	var names []string
	for p := range s.files {
		rest, ok := strings.CutPrefix(p, dir)
		if !ok {
			continue
		}
		name, _, isDir := strings.Cut(rest, "/")
		if isDir {
			name += "/"
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var b bytes.Buffer
	fmt.Fprintf(&b, "<html><head><title>Index of %s</title></head><body><h1>Index of %s</h1><hr><pre><a href=\"../\">../</a>\n", html.EscapeString(dir), html.EscapeString(dir))
	for _, n := range names {
		href := (&url.URL{Path: n}).EscapedPath()
		fmt.Fprintf(&b, "<a href=\"%s\">%s</a>\n", html.EscapeString(href), html.EscapeString(n))
	}
	b.WriteString("</pre><hr></body></html>\n")
	return b.Bytes()
}

// wholeIgnoringRange answers 200 with the whole current file, as a server
// that does not know Range does.
func (s *fltServer) wholeIgnoringRange(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	file := s.files[r.URL.Path]
	s.mu.Unlock()
	if file == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", file.etag)
	w.Header().Set("Last-Modified", file.mod.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Length", strconv.Itoa(len(file.data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(file.data)
	}
}

// spoil builds the normal answer, then sends it broken as f says, on the
// raw connection.
func (s *fltServer) spoil(w http.ResponseWriter, r *http.Request, f *fltFault) {
	rec := httptest.NewRecorder()
	s.answer(rec, r, nil)
	res := rec.Result()
	body := rec.Body.Bytes()
	part := int(float64(len(body)) * f.cut)
	hdr := res.Header.Clone()
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	if f.kind == fltLyingLength {
		hdr.Set("Content-Length", strconv.Itoa(part))
		if cr := hdr.Get("Content-Range"); cr != "" && part > 0 {
			var start, end, total int64
			if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &total); err == nil {
				hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+int64(part)-1, total))
			}
		}
	}
	conn, bufrw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.t.Errorf("fault server: hijack: %v", err)
		return
	}
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conns[conn] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	fmt.Fprintf(bufrw, "HTTP/1.1 %d %s\r\n", res.StatusCode, http.StatusText(res.StatusCode))
	_ = hdr.Write(bufrw)
	bufrw.WriteString("\r\n")
	if r.Method != http.MethodHead {
		_, _ = bufrw.Write(body[:part])
	}
	if err := bufrw.Flush(); err != nil {
		conn.Close()
		return
	}
	switch f.kind {
	case fltReset:
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
		conn.Close()
	case fltStall:
		// Silence until the client hangs up (or the test ends).
		go func() {
			<-s.quit
			conn.Close()
		}()
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
		conn.Close()
	default:
		conn.Close()
	}
}

// fltSlowWriter writes at most rate bytes per second.
type fltSlowWriter struct {
	http.ResponseWriter
	rate int64
	quit chan struct{}
}

func (w *fltSlowWriter) Write(p []byte) (int, error) {
	const piece = 32 << 10
	n := 0
	for len(p) > 0 {
		k := min(len(p), piece)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
		select {
		case <-time.After(time.Duration(int64(k) * int64(time.Second) / w.rate)):
		case <-w.quit:
			return n, io.ErrClosedPipe
		}
	}
	return n, nil
}

// fltBlackHole is a listener that accepts connections and never answers.
type fltBlackHole struct {
	addr     string
	mu       sync.Mutex
	accepted int
}

func fltNewBlackHole(t *testing.T) *fltBlackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fltBlackHole{addr: ln.Addr().String()}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			b.mu.Lock()
			b.accepted++
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return b
}

func (b *fltBlackHole) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted
}

// fltNoise returns n bytes of seeded pseudo-random data.
func fltNoise(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fltBigInfo is the info.json of the synthetic caffe model "big".
const fltBigInfo = `{"name": "Big", "framework": "caffe", "snapshot file": "weights.caffemodel", "model file": "net.prototxt", "creation time": "2024-01-02 03:04:05"}`

// fltStoreFiles is the sample store's lenet plus "big", a caffe model whose
// weights are bigSize bytes of noise, with master.json naming both.
func fltStoreFiles(t *testing.T, bigSize int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"master.json":            []byte(`{"msg": "fault store", "children": ["lenet", "big"]}`),
		"big/info.json":          []byte(fltBigInfo),
		"big/net.prototxt":       []byte("name: \"big\"\nlayer { name: \"data\" type: \"Input\" top: \"data\" }\n"),
		"big/weights.caffemodel": fltNoise(1, bigSize),
	}
	entries, err := os.ReadDir(filepath.Join(itest.StoreDir(), "lenet"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(path.Join(filepath.Join(itest.StoreDir(), "lenet"), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files["lenet/"+e.Name()] = data
	}
	return files
}
