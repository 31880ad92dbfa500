// Package remotetest is an in-memory DIGITS model store for tests: an
// httptest server serving a mutable map of files below a base path, with
// strong ETags, Last-Modified, HEAD, Range and conditional requests, an
// optional generated master.json or python http.server-like HTML listing,
// failure injection (forced statuses, truncation, and the faults of
// faults.go: resets, stalls, lying lengths, redirects, ...), gates that
// hold requests, interceptors that answer in the server's place, a log of
// every request and per-path counters. It listens on 127.0.0.x, over http
// or https, and can go down and come back on the same port. It is the one
// fault-injecting store of the unit tests and of the fault matrix
// (integration/faults).
package remotetest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelstorefs/modelstorefs/digits"
)

// Options configure a Server. The zero value serves the files as they are,
// below "/", with HEAD, ETag and Last-Modified, and nothing generated.
type Options struct {
	// Prefix is the base path of the store ("/team/"); default "/".
	Prefix string
	// Master generates master.json ({"msg", "children"}) from the top-level
	// directories when no file "master.json" is set.
	Master bool
	// Msg is the "msg" of the generated master.json.
	Msg string
	// Folders makes the generated master.json say what each folder holds
	// (digits.MasterFolders), as modelstorefs serve's does.
	Folders bool
	// FolderPages, with Folders, describes no folder in master.json itself
	// but names them all in folder pages (digits.MasterFolderPages, one
	// folder a page), answered at digits.FolderPageFile.
	FolderPages bool
	// Listing serves a python http.server-like HTML listing for directory
	// paths ("" and "name/") that are not files themselves.
	Listing bool
	// NoHead answers HEAD with 405 Method Not Allowed (SetHead changes it).
	NoHead bool
	// NoETag and NoLastModified leave out those validators.
	NoETag, NoLastModified bool
	// Chunked sends bodies without Content-Length (HEAD included).
	Chunked bool
	// NoRange ignores Range and If-Range headers: every GET gets the
	// whole file with 200.
	NoRange bool
	// Host is the address to listen on ("127.0.0.2"); default 127.0.0.1.
	Host string
	// TLS serves https, with a certificate of its own (Certificate).
	TLS bool
	// IdleTimeout closes idle keep-alive connections after that long, as
	// nginx's keepalive_timeout does; 0: never.
	IdleTimeout time.Duration
}

// File is one served file.
type File struct {
	Data    []byte
	ModTime time.Time // Last-Modified; zero: the time it was set
	ETag    string    // the ETag sent; "": a strong one from the data
}

// etag is the ETag the server sends for f.
func (f File) etag() string {
	if f.ETag != "" {
		return f.ETag
	}
	return etag(f.Data)
}

// withETag fills in f's ETag, so that it is hashed once, not on every
// request (a fault row reads 64 MiB in hundreds of ranges).
func withETag(f File) File {
	f.ETag = f.etag()
	return f
}

// Server is an in-memory model store. Its methods are safe for concurrent
// use, also while requests are being served.
type Server struct {
	// URL is the store's base URL, ending in "/".
	URL string

	ts       *httptest.Server
	ln       *switchListener
	prefix   string
	quit     chan struct{}  // closed by Close: ends delays, stalls, paced bodies
	spoiling sync.WaitGroup // answers being spoiled on hijacked connections

	mu       sync.Mutex // protects the fields below
	opt      Options
	files    map[string]File
	status   map[string]int // forced status per path
	statAll  int            // forced status for every path, 0: none
	truncate map[string]int64
	gates    map[string]*Gate
	icepts   map[string]Interceptor
	faults   map[string][]*Fault
	closed   bool
	counts   map[string]map[string]int // path -> method -> requests
	log      []*Request                // in order of arrival
	done     []*Request                // answered, in order of answer
}

// New starts a store serving files (path below the prefix -> bytes, e.g.
// "lenet/info.json"). The map is copied. It panics if it cannot listen,
// as httptest does.
func New(files map[string][]byte, opt Options) *Server {
	prefix := "/" + strings.Trim(opt.Prefix, "/") + "/"
	if prefix == "//" {
		prefix = "/"
	}
	s := &Server{
		prefix:   prefix,
		quit:     make(chan struct{}),
		opt:      opt,
		files:    map[string]File{},
		status:   map[string]int{},
		truncate: map[string]int64{},
		gates:    map[string]*Gate{},
		icepts:   map[string]Interceptor{},
		faults:   map[string][]*Fault{},
		counts:   map[string]map[string]int{},
	}
	now := time.Now()
	for p, d := range files {
		s.files[p] = withETag(File{Data: bytes.Clone(d), ModTime: now})
	}
	host := opt.Host
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := listen(host)
	if err != nil {
		panic(err)
	}
	// httptest runs the server (connection tracking, TLS, Close waiting
	// for handlers) on a listener that can go down and come back.
	s.ln = ln
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.ts.Listener.Close()
	s.ts.Listener = ln
	s.ts.Config.IdleTimeout = opt.IdleTimeout
	if opt.TLS {
		s.ts.StartTLS()
	} else {
		s.ts.Start()
	}
	s.URL = s.ts.URL + prefix
	return s
}

// LoadDir reads every regular file below dir into a map for New, keyed by
// slash-separated relative paths.
func LoadDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	return files, err
}

// MasterJSON returns a master.json body (digits.MasterJSON).
func MasterJSON(msg string, children ...string) []byte {
	return digits.MasterJSON(msg, children)
}

// Close releases every gate, ends injected delays, stalls and throttled
// bodies, drops client connections and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	gates := make([]*Gate, 0, len(s.gates))
	for _, g := range s.gates {
		gates = append(gates, g)
	}
	s.mu.Unlock()
	for _, g := range gates {
		g.Release()
	}
	close(s.quit)
	s.ts.CloseClientConnections()
	s.ts.Close()
	s.spoiling.Wait()
}

// Done is closed when Close begins: a test's own handler that holds a
// connection lets it go then.
func (s *Server) Done() <-chan struct{} { return s.quit }

// SetDown stops answering (new connections refused, open ones closed) or,
// with false, listens again on the same address.
func (s *Server) SetDown(down bool) error {
	return s.ln.setDown(down)
}

// Client returns an HTTP client for the server (trusting its certificate
// with TLS).
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Certificate returns the certificate of a TLS server (nil without TLS).
func (s *Server) Certificate() *x509.Certificate {
	if s.ts.TLS == nil {
		return nil
	}
	return s.ts.Certificate()
}

// Set adds or replaces a file; its Last-Modified becomes now.
func (s *Server) Set(path string, data []byte) {
	s.SetFile(path, File{Data: data})
}

// SetFile adds or replaces a file.
func (s *Server) SetFile(path string, f File) {
	if f.ModTime.IsZero() {
		f.ModTime = time.Now()
	}
	f.Data = bytes.Clone(f.Data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = withETag(f)
}

// Remove deletes a file and reports whether it was there.
func (s *Server) Remove(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.files[path]
	delete(s.files, path)
	return ok
}

// RemoveDir deletes every file below dir ("lenet") and returns how many.
func (s *Server) RemoveDir(dir string) int {
	dir = strings.TrimSuffix(dir, "/") + "/"
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p := range s.files {
		if strings.HasPrefix(p, dir) {
			delete(s.files, p)
			n++
		}
	}
	return n
}

// File returns a copy of a file, its ETag the one the server sends.
func (s *Server) File(path string) (File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[path]
	if !ok {
		return File{}, false
	}
	f.ETag = f.etag()
	f.Data = bytes.Clone(f.Data)
	return f, true
}

// Data returns a copy of a file's bytes.
func (s *Server) Data(path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[path]
	return bytes.Clone(f.Data), ok
}

// ETag returns the strong ETag the server sends for a file ("" if absent).
func (s *Server) ETag(path string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[path]
	if !ok {
		return ""
	}
	return f.etag()
}

// SetHead allows or refuses (405) HEAD requests.
func (s *Server) SetHead(allowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opt.NoHead = !allowed
}

// SetListing turns the HTML listings of directories (Options.Listing) on
// or off.
func (s *Server) SetListing(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opt.Listing = on
}

// SetStatus makes every request for path answer code (0 clears).
func (s *Server) SetStatus(path string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.status, path)
	} else {
		s.status[path] = code
	}
}

// SetStatusAll makes every request answer code (0 clears): a failing store.
func (s *Server) SetStatusAll(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statAll = code
}

// Truncate makes GETs of path declare the full length but send only the
// first n body bytes, then drop the connection (n < 0 clears).
func (s *Server) Truncate(path string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 {
		delete(s.truncate, path)
	} else {
		s.truncate[path] = n
	}
}

// Gate holds the requests for one path until released.
type Gate struct {
	arrived     chan struct{}
	arriveOnce  sync.Once
	release     chan struct{}
	releaseOnce sync.Once
	waiting     atomic.Int32
}

// Arrived is closed when the first request reaches the gate.
func (g *Gate) Arrived() <-chan struct{} { return g.arrived }

// Waiting returns how many requests are being held right now.
func (g *Gate) Waiting() int { return int(g.waiting.Load()) }

// Release lets held and future requests through.
func (g *Gate) Release() { g.releaseOnce.Do(func() { close(g.release) }) }

// wait blocks until the gate is released or the request is abandoned.
func (g *Gate) wait(r *http.Request) {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	g.arriveOnce.Do(func() { close(g.arrived) })
	select {
	case <-g.release:
	case <-r.Context().Done():
	}
}

// Hold makes every request for path (any method) wait until the returned
// gate is released (or the client goes away). Close releases all gates.
func (s *Server) Hold(path string) *Gate {
	g := &Gate{arrived: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.gates[path]; old != nil {
		old.Release()
	}
	s.gates[path] = g
	return g
}

// Interceptor answers a request for a path in place of the server, or hands
// it (possibly changed, or with a wrapped writer) to serve, which answers it
// as usual: files, Range, validators, forced statuses, truncation. It is how
// a test makes a server lie, slow down or change a file at a precise moment.
type Interceptor func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc)

// Intercept routes every request for path through fn (nil removes it). It
// runs after the path's gate and faults (a spoiled answer never reaches
// it); its requests are counted and logged as any.
func (s *Server) Intercept(path string, fn Interceptor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.icepts, path)
	} else {
		s.icepts[path] = fn
	}
}

func etag(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// recorder captures the status and applies truncation, chunking and
// pacing.
type recorder struct {
	http.ResponseWriter
	status  int
	chunked bool
	limit   int64 // body bytes to send before aborting; -1: no limit
	written int64
	rate    int64         // body bytes per second (FaultThrottle); 0: no limit
	quit    chan struct{} // ends pacing: the server is closing
}

func (w *recorder) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if w.chunked {
		w.Header().Del("Content-Length")
	}
	w.ResponseWriter.WriteHeader(code)
	if w.chunked {
		// Flushing before any body forces chunked encoding (else a small
		// body gets a computed Content-Length).
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection through a
// recorder (an Interceptor may wrap one in another).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.limit >= 0 && w.written+int64(len(p)) > w.limit {
		n, _ := w.ResponseWriter.Write(p[:w.limit-w.written])
		w.written += int64(n)
		http.NewResponseController(w.ResponseWriter).Flush()
		panic(http.ErrAbortHandler) // closes the connection mid-body
	}
	write := w.ResponseWriter.Write
	if w.rate > 0 {
		write = w.pace
	}
	n, err := write(p)
	w.written += int64(n)
	return n, err
}

func (s *Server) serve(rw http.ResponseWriter, r *http.Request) {
	path, inStore := strings.CutPrefix(r.URL.Path, s.prefix)
	if !inStore {
		path = r.URL.Path // counted under the full path
	}
	w := &recorder{ResponseWriter: rw, limit: -1, quit: s.quit}
	req := s.arrive(r, path)
	defer s.answered(req, w)

	s.mu.Lock()
	gate := s.gates[path]
	s.mu.Unlock()
	if gate != nil {
		gate.wait(r)
		if r.Context().Err() != nil {
			w.status = 499 // client went away
			return
		}
	}
	if f := s.takeFault(req); f != nil {
		s.inject(w, r, path, inStore, f)
		return
	}

	s.mu.Lock()
	icept := s.icepts[path]
	s.mu.Unlock()
	if icept != nil {
		icept(w, r, func(rw http.ResponseWriter, r *http.Request) { s.answer(rw, r, path, inStore, nil) })
		return
	}
	s.answer(w, r, path, inStore, nil)
}

// Answer answers r as the server does (files, listings, options, forced
// statuses, truncation), from f instead of the file r names when f is not
// nil: an Interceptor or a test's own handler serves the usual answer, or
// a changed version of it, with it.
func (s *Server) Answer(w http.ResponseWriter, r *http.Request, f *File) {
	path, inStore := strings.CutPrefix(r.URL.Path, s.prefix)
	if !inStore {
		path = r.URL.Path
	}
	s.answer(w, r, path, inStore, f)
}

// answer serves one request for path as the options, forced statuses and
// truncation say, from override instead of path's file if not nil.
func (s *Server) answer(rw http.ResponseWriter, r *http.Request, path string, inStore bool, override *File) {
	w, ok := rw.(*recorder)
	if !ok {
		w = &recorder{ResponseWriter: rw, limit: -1, quit: s.quit}
	}
	s.mu.Lock()
	opt := s.opt
	forced := s.statAll
	if c, ok := s.status[path]; ok && forced == 0 {
		forced = c
	}
	f, isFile := s.files[path]
	limit, truncated := s.truncate[path]
	s.mu.Unlock()
	if override != nil {
		f, isFile = *override, true
	}

	switch {
	case !inStore:
		http.NotFound(w, r)
		return
	case forced != 0:
		http.Error(w, http.StatusText(forced), forced)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	case r.Method == http.MethodHead && opt.NoHead:
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.chunked = opt.Chunked
	if truncated && r.Method == http.MethodGet {
		w.limit = limit
	}

	switch {
	case isFile:
		s.serveFile(w, r, path, f, opt)
	case path == "master.json" && opt.Master:
		s.serveFile(w, r, path, File{Data: s.masterJSON(opt)}, opt)
	case path == digits.FolderPageFile && opt.Master && opt.FolderPages:
		q := r.URL.Query()
		s.serveFile(w, r, path, File{Data: s.folderPage(q.Get("from"), q.Get("to"))}, opt)
	case opt.Listing && (path == "" || strings.HasSuffix(path, "/")) && s.isDir(path):
		body := s.listing(path)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if !opt.Chunked {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveFile(w *recorder, r *http.Request, path string, f File, opt Options) {
	if !opt.NoETag {
		w.Header().Set("ETag", f.etag())
	}
	mod := f.ModTime
	if opt.NoLastModified {
		mod = time.Time{}
	}
	if opt.NoRange {
		r.Header.Del("Range")
		r.Header.Del("If-Range")
	} else {
		w.Header().Set("Accept-Ranges", "bytes")
	}
	// ServeContent answers Range, If-None-Match, If-Modified-Since, If-Range
	// and HEAD.
	http.ServeContent(w, r, path, mod, bytes.NewReader(f.Data))
}

// masterJSON generates master.json: the top-level directories, and with
// opt.Folders what each holds (with opt.FolderPages, in folder pages).
func (s *Server) masterJSON(opt Options) []byte {
	dirs := s.dirs("")
	switch {
	case !opt.Folders:
		return MasterJSON(opt.Msg, dirs...)
	case opt.FolderPages:
		return digits.MasterJSONFolders(opt.Msg, dirs, nil, 16<<20, 1)
	}
	return digits.MasterJSONFolders(opt.Msg, dirs, s.folders(dirs), 16<<20, 0)
}

// folderPage generates the folder page of the directories first to last.
func (s *Server) folderPage(first, last string) []byte {
	var dirs []string
	for _, d := range s.dirs("") {
		if first <= d && d <= last {
			dirs = append(dirs, d)
		}
	}
	return digits.FolderPage(dirs, s.folders(dirs), 16<<20)
}

// folders is what each of dirs holds, as master.json describes it.
func (s *Server) folders(dirs []string) [][]digits.MasterEntry {
	folders := make([][]digits.MasterEntry, len(dirs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range dirs {
		folders[i] = []digits.MasterEntry{}
		for p, f := range s.files {
			name, ok := strings.CutPrefix(p, d+"/")
			if !ok || strings.Contains(name, "/") {
				continue
			}
			e := digits.MasterEntry{Name: name, Size: int64(len(f.Data)), MTime: f.ModTime.Unix(), ETag: f.etag()}
			if name == digits.InfoFile || name == digits.AuxFile {
				e.Data = f.Data
			}
			folders[i] = append(folders[i], e)
		}
	}
	return folders
}

// isDir reports whether some file lies below dir ("" or "name/").
func (s *Server) isDir(dir string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.files {
		if strings.HasPrefix(p, dir) {
			return true
		}
	}
	return false
}

// dirs returns the directories directly below dir, sorted.
func (s *Server) dirs(dir string) []string {
	var out []string
	for _, n := range s.entries(dir) {
		if strings.HasSuffix(n, "/") {
			out = append(out, strings.TrimSuffix(n, "/"))
		}
	}
	return out
}

// entries returns the names directly below dir (directories with a
// trailing "/"), sorted case-insensitively as python's http.server does.
func (s *Server) entries(dir string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for p := range s.files {
		rest, ok := strings.CutPrefix(p, dir)
		if !ok || rest == "" {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := strings.ToLower(names[i]), strings.ToLower(names[j])
		if a != b {
			return a < b
		}
		return names[i] < names[j]
	})
	return names
}

// listing renders dir like python3 -m http.server (digits.Listing).
func (s *Server) listing(dir string) []byte {
	return digits.Listing(s.prefix+dir, s.entries(dir))
}
