// Package serve hosts a DIGITS Model Store directory over HTTP, the way
// `python -m SimpleHTTPServer` does in the DIGITS documentation, but
// correctly for clients such as DIGITS and modelstorefs:
//
//   - files are served with http.ServeContent: Range and multi-range
//     requests, If-Range, a strong ETag derived from inode, modification
//     time and size, Last-Modified, conditional requests (304) and HEAD;
//   - "master.json" is generated from the model folders (subdirectories
//     holding an info.json) when the directory has none, and the
//     directory's own master.json is served when present; the generated
//     one also says what each folder holds ("folders": sizes, dates,
//     ETags, small info.json and aux.json whole), so that a client needs
//     no request per model, and is made once for concurrent requests; the
//     folders it has no room for are named in folder pages, described
//     when a client asks for one (master.go);
//   - directories get an HTML listing in python http.server's format
//     (`<li><a href="name/">name/</a></li>`), which both DIGITS (link text)
//     and modelstorefs (href) read, or nginx's JSON listing to a client
//     that asks for JSON first;
//   - nothing outside the directory is ever served: ".." segments are
//     refused, symlinks are resolved and must stay inside the directory,
//     and files are opened with os.OpenInRoot so that a symlink swapped in
//     after the check cannot escape either. Hidden files (".name") and
//     anything that is not a regular file or a directory are not served;
//   - every request is logged with zap.
package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// Msg is the "msg" of a generated master.json.
const Msg = "Model store served by modelstorefs"

// ShutdownTimeout bounds how long ListenAndServe waits for requests in
// flight once its context is done; connections still busy then are closed.
const ShutdownTimeout = 5 * time.Second

// handler serves one store directory.
type handler struct {
	root    string // absolute, symlinks resolved
	log     *zap.Logger
	digests *digests // nil: no Repr-Digest, no generated SHA256SUMS
	docs    docCache // master.json and folder pages, as generated
	// masterBytes bounds master.json and each folder page.
	masterBytes int
	pages       chan struct{} // one token per folder page being described
	listed      atomic.Pointer[listedModels]
}

// Handler returns the HTTP handler serving the store directory dir. dir
// must exist and be a directory; it is resolved once (absolute path,
// symlinks), and everything served must resolve to a path below it. A nil
// log discards the request log. Of opts, only WithMasterBytes applies:
// Handler states no digests (NewServer does).
func Handler(dir string, log *zap.Logger, opts ...Option) (http.Handler, error) {
	return newHandler(dir, log, configOf(opts))
}

func newHandler(dir string, log *zap.Logger, cfg serverConfig) (*handler, error) {
	if log == nil {
		log = zap.NewNop()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("serve %s: %w", dir, err)
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("serve %s: %w", dir, err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("serve %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("serve %s: not a directory", dir)
	}
	return &handler{root: root, log: log, masterBytes: cfg.masterBytes, pages: make(chan struct{}, pageGenerations)}, nil
}

// Refusals, mapped to HTTP statuses by fail.
var (
	errNotFound = errors.New("not found")
	errHidden   = errors.New("hidden file")
	errOutside  = errors.New("outside the store directory")
	errSpecial  = errors.New("not a regular file or directory")
	errDenied   = errors.New("permission denied")
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	defer func() {
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		h.log.Info("request",
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.Int("status", status),
			zap.Int64("bytes", rec.bytes),
			zap.Duration("duration", time.Since(start)),
			zap.String("remote", r.RemoteAddr))
	}()
	h.serve(rec, r)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path // percent-decoded: "%2e%2e" is ".." here
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		http.Error(w, "400 bad request path", http.StatusBadRequest)
		return
	}
	if p == "/"+digits.FolderPageFile { // hidden: no file of the store
		h.serveFolderPage(w, r)
		return
	}
	var segs []string
	for _, s := range strings.Split(p, "/") {
		switch {
		case s == "":
			continue
		case s == "..":
			h.fail(w, r, errOutside)
			return
		case strings.HasPrefix(s, "."):
			h.fail(w, r, errHidden)
			return
		}
		segs = append(segs, s)
	}
	trailing := strings.HasSuffix(p, "/")
	rel := filepath.Join(segs...)
	if rel == "" {
		rel = "."
	}

	if rel == digits.MasterFile && !trailing {
		if _, err := os.Lstat(filepath.Join(h.root, digits.MasterFile)); errors.Is(err, fs.ErrNotExist) {
			h.serveMaster(w, r)
			return
		}
	}

	if rel == remote.SumsFile && !trailing && h.serveGeneratedSums(w, r) {
		return
	}

	real, realRel, fi, err := h.resolve(rel)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	switch {
	case fi.IsDir():
		if !trailing && rel != "." {
			// As python does: a directory's URL ends in "/", so that
			// relative links in its listing resolve below it. The
			// location is rebuilt from the checked segments, never
			// copied, so it cannot point to another host ("//host").
			loc := "/" + escapePath(segs) + "/"
			if r.URL.RawQuery != "" {
				loc += "?" + r.URL.RawQuery
			}
			w.Header().Set("Location", loc)
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		h.serveListing(w, r, real, rel == ".")
	case !fi.Mode().IsRegular():
		h.fail(w, r, errSpecial)
	case trailing:
		h.fail(w, r, errNotFound)
	default:
		h.serveFile(w, r, realRel, segs[len(segs)-1])
	}
}

// fail answers a refused or missing path.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errOutside):
		h.log.Warn("refused: outside the store directory", zap.String("path", r.URL.Path), zap.Error(err))
		http.Error(w, "403 forbidden", http.StatusForbidden)
	case errors.Is(err, errSpecial), errors.Is(err, errDenied):
		http.Error(w, "403 forbidden", http.StatusForbidden)
	case errors.Is(err, errNotFound), errors.Is(err, errHidden):
		http.Error(w, "404 not found", http.StatusNotFound)
	default:
		h.log.Error("serving failed", zap.String("path", r.URL.Path), zap.Error(err))
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
	}
}

// resolve follows every symlink of rel (a cleaned path below the root, "."
// for the root itself) and checks that the result is inside the root and
// not hidden. It returns the resolved absolute path, the same relative to
// the root, and its FileInfo.
func (h *handler) resolve(rel string) (real, realRel string, fi os.FileInfo, err error) {
	real, err = filepath.EvalSymlinks(filepath.Join(h.root, rel))
	if err != nil {
		return "", "", nil, fsError(err)
	}
	realRel, err = filepath.Rel(h.root, real)
	if err != nil || realRel == ".." || strings.HasPrefix(realRel, ".."+string(filepath.Separator)) {
		return "", "", nil, fmt.Errorf("%w: %s resolves to %s", errOutside, rel, real)
	}
	if realRel != "." {
		for _, s := range strings.Split(realRel, string(filepath.Separator)) {
			if strings.HasPrefix(s, ".") {
				return "", "", nil, errHidden
			}
		}
	}
	fi, err = os.Stat(real)
	if err != nil {
		return "", "", nil, fsError(err)
	}
	return real, realRel, fi, nil
}

func fsError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%w: %v", errNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %v", errDenied, err)
	}
	return err
}

// serveFile serves the regular file at realRel (resolved, relative to the
// root); name is the last segment of the request, for the content type.
func (h *handler) serveFile(w http.ResponseWriter, r *http.Request, realRel, name string) {
	// OpenInRoot refuses any path that would leave the root, even through
	// a symlink swapped in after resolve.
	f, err := os.OpenInRoot(h.root, realRel)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w: %v", errOutside, err)
		}
		h.fail(w, r, fsError(err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !fi.Mode().IsRegular() {
		h.fail(w, r, errSpecial)
		return
	}
	w.Header().Set("ETag", FileETag(fi))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.setReprDigest(w, fi, realRel)
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// FileETag is the strong ETag of a file: its inode, modification time
// (nanoseconds) and size, so that any rewrite, replacement or rename over
// it gives a new one.
func FileETag(fi os.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf(`"%x-%x-%x"`, ino, fi.ModTime().UnixNano(), fi.Size())
}

// contentETag is the strong ETag of generated content.
func contentETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// serveBytes serves generated content with a content ETag, so that Range
// and conditional requests work on it too.
func serveBytes(w http.ResponseWriter, r *http.Request, ctype string, mod time.Time, b []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("ETag", contentETag(b))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", mod, bytes.NewReader(b))
}

// entry is one line of a directory listing: a regular file or a
// directory, symlinks followed.
type entry struct {
	name string
	dir  bool
	fi   os.FileInfo // nil for a generated master.json
}

// dirEntries lists what would be served of the directory rel (below the
// root, "." for the root): no hidden names, no symlinks leading outside
// the root, no special files; at the root, a generated master.json too.
func (h *handler) dirEntries(rel string, isRoot bool) ([]entry, error) {
	real := filepath.Join(h.root, rel)
	des, err := os.ReadDir(real)
	if err != nil {
		return nil, fsError(err)
	}
	var entries []entry
	haveMaster := false
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		var fi os.FileInfo
		if de.Type().IsRegular() {
			fi, err = de.Info() // no symlink to follow: an lstat
		} else {
			_, _, fi, err = h.resolve(filepath.Join(rel, name))
		}
		if err != nil || !(fi.IsDir() || fi.Mode().IsRegular()) {
			continue
		}
		if isRoot && name == digits.MasterFile {
			haveMaster = true
		}
		entries = append(entries, entry{name: name, dir: fi.IsDir(), fi: fi})
	}
	if isRoot && !haveMaster {
		if _, err := os.Lstat(filepath.Join(h.root, digits.MasterFile)); errors.Is(err, fs.ErrNotExist) {
			entries = append(entries, entry{name: digits.MasterFile})
		}
	}
	if isRoot {
		entries = h.withGeneratedSums(entries)
	}
	// python sorts case-insensitively.
	sort.Slice(entries, func(i, j int) bool {
		a, b := strings.ToLower(entries[i].name), strings.ToLower(entries[j].name)
		if a != b {
			return a < b
		}
		return entries[i].name < entries[j].name
	})
	return entries, nil
}

// serveListing writes the listing of the directory real: python
// http.server's HTML, or, to a client that asks for JSON first, nginx's
// JSON listing (autoindex_format json) with each file's ETag too.
func (h *handler) serveListing(w http.ResponseWriter, r *http.Request, real string, isRoot bool) {
	dfi, err := os.Stat(real)
	if err != nil {
		h.fail(w, r, fsError(err))
		return
	}
	rel, _ := filepath.Rel(h.root, real)
	entries, err := h.dirEntries(rel, isRoot)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Caches in front must keep the two forms apart.
	w.Header().Set("Vary", "Accept")
	if wantsJSON(r) {
		serveBytes(w, r, "application/json", dfi.ModTime(), jsonListing(entries))
		return
	}
	serveBytes(w, r, "text/html; charset=utf-8", dfi.ModTime(), digits.Listing(r.URL.Path, entriesToNames(entries)))
}

// wantsJSON reports whether the request's Accept names application/json
// before any HTML (browsers and DIGITS never do).
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.TrimSpace(mt) {
		case "application/json":
			return true
		case "text/html", "*/*":
			return false
		}
	}
	return false
}

// jsonListing is nginx's JSON listing of entries, plus each file's ETag:
// mtime is the file's Last-Modified, to the byte.
func jsonListing(entries []entry) []byte {
	type item struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		MTime string `json:"mtime,omitempty"`
		Size  *int64 `json:"size,omitempty"`
		ETag  string `json:"etag,omitempty"`
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		it := item{Name: e.name, Type: "file"}
		if e.dir {
			it.Type = "directory"
		}
		if e.fi != nil {
			it.MTime = e.fi.ModTime().UTC().Format(http.TimeFormat)
			if !e.dir {
				size := e.fi.Size()
				it.Size, it.ETag = &size, FileETag(e.fi)
			}
		}
		items = append(items, it)
	}
	b, err := json.Marshal(items)
	if err != nil {
		panic(err) // strings and numbers always marshal
	}
	return append(b, '\n')
}

func entriesToNames(es []entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.name
		if e.dir {
			out[i] += "/"
		}
	}
	return out
}

func escapePath(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = digits.Quote(s)
	}
	return strings.Join(out, "/")
}

// recorder remembers the status and counts the body bytes of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the server's sendfile path for file bodies.
func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ListenAndServe listens on addr (host:port; port 0 picks a free one) and
// serves h until ctx is done, then shuts down gracefully: requests in
// flight get ShutdownTimeout to finish, after which their connections are
// closed. It logs the URL once the listener is ready, and returns nil
// after a shutdown caused by ctx.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return Serve(ctx, ln, h, log)
}

// Serve is ListenAndServe on an existing listener, which it closes.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/"
	log.Info("serving", zap.String("url", url))

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", url, err)
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.String("url", url))
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running at shutdown: closing their connections", zap.Error(err))
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", url, err)
	}
	return nil
}
