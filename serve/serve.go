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
//     no request per model, and is made once for concurrent requests;
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
	"sync"
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
	master  masterCache
}

// Handler returns the HTTP handler serving the store directory dir. dir
// must exist and be a directory; it is resolved once (absolute path,
// symlinks), and everything served must resolve to a path below it. A nil
// log discards the request log.
func Handler(dir string, log *zap.Logger) (http.Handler, error) {
	return newHandler(dir, log)
}

func newHandler(dir string, log *zap.Logger) (*handler, error) {
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
	return &handler{root: root, log: log}, nil
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

// models returns the model folders of the store directory: the names of
// its subdirectories (or symlinks to directories inside it) that hold an
// info.json and are usable names, sorted. mod is the newest modification
// time among the directory, its subdirectories and their info.json.
func (h *handler) models() (names []string, mod time.Time, err error) {
	fi, err := os.Stat(h.root)
	if err != nil {
		return nil, time.Time{}, err
	}
	mod = fi.ModTime()
	entries, err := os.ReadDir(h.root)
	if err != nil {
		return nil, time.Time{}, err
	}
	names = []string{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		dfi, ifi, ok := h.modelFolder(e)
		if dfi != nil && dfi.ModTime().After(mod) {
			// Every folder counts for the date: one that just lost its
			// info.json changes master.json too.
			mod = dfi.ModTime()
		}
		if !ok {
			continue
		}
		if err := digits.ValidName(name); err != nil {
			h.log.Warn("model folder left out of master.json", zap.String("folder", name), zap.Error(err))
			continue
		}
		names = append(names, name)
		if t := ifi.ModTime(); t.After(mod) {
			mod = t
		}
	}
	sort.Strings(names)
	return names, mod, nil
}

// modelFolder looks at one entry of the store directory: the folder's
// FileInfo (nil when it is no directory) and its info.json's, and whether
// it is a model folder. A plain directory holding a plain info.json costs
// two lstat calls, as a store may have a hundred thousand; symlinks are
// resolved and must stay inside the store.
func (h *handler) modelFolder(e os.DirEntry) (dfi, ifi os.FileInfo, ok bool) {
	name := e.Name()
	var err error
	if e.IsDir() {
		if dfi, err = e.Info(); err != nil {
			return nil, nil, false
		}
		ifi, err = os.Lstat(filepath.Join(h.root, name, digits.InfoFile))
		if err == nil && ifi.Mode().IsRegular() {
			return dfi, ifi, true
		}
		if err != nil || ifi.Mode()&fs.ModeSymlink == 0 {
			return dfi, nil, false
		}
	} else {
		if _, _, dfi, err = h.resolve(name); err != nil || !dfi.IsDir() {
			return nil, nil, false
		}
	}
	_, _, ifi, err = h.resolve(filepath.Join(name, digits.InfoFile))
	if err != nil || !ifi.Mode().IsRegular() {
		return dfi, nil, false
	}
	return dfi, ifi, true
}

// ModelFolders returns the model folders of the store directory dir, as
// the master.json that Handler generates for a dir without one lists them.
func ModelFolders(dir string) ([]string, error) {
	h, err := newHandler(dir, nil)
	if err != nil {
		return nil, err
	}
	names, _, err := h.models()
	return names, err
}

// maxMaster bounds a generated master.json: model folders are described
// (digits.MasterFolders) while it stays below this, a margin under what
// clients read (digits.MaxMasterJSON); past it, clients list the other
// folders themselves.
const maxMaster = 12 << 20

// masterJSON generates master.json: the model folders ("children") and
// what each holds ("folders": names, sizes, dates and ETags, as a GET of
// each file would tell them), so that a client needs no request per file
// to learn a folder.
func (h *handler) masterJSON() ([]byte, time.Time, error) {
	names, mod, err := h.models()
	if err != nil {
		return nil, time.Time{}, err
	}
	folders := make([][]digits.MasterEntry, len(names))
	mods := make([]time.Time, len(names))
	// Folders are described by a few workers, in order, until the
	// document would be full: mostly lstat, open and read calls.
	var (
		next, size atomic.Int64
		wg         sync.WaitGroup
	)
	for range masterWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(names) && size.Load() <= maxMaster; i = int(next.Add(1) - 1) {
				var n int
				folders[i], mods[i], n = h.describeFolder(names[i])
				size.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	for _, t := range mods {
		if t.After(mod) {
			mod = t // a file's change changes master.json
		}
	}
	return digits.MasterJSONFolders(Msg, names, folders, maxMaster), mod, nil
}

// masterWorkers describe folders for master.json at once.
const masterWorkers = 4

// describeFolder is what master.json says a model folder holds: its files
// (a small info.json and aux.json whole), the newest modification time
// among them, and about how many bytes that takes; nil when it cannot be
// read.
func (h *handler) describeFolder(name string) ([]digits.MasterEntry, time.Time, int) {
	entries, err := h.dirEntries(name, false)
	if err != nil {
		return nil, time.Time{}, 0
	}
	folder := []digits.MasterEntry{}
	var mod time.Time
	size := 0
	for _, e := range entries {
		if e.dir {
			continue
		}
		me := digits.MasterEntry{Name: e.name, Size: e.fi.Size(), MTime: e.fi.ModTime().Unix(), ETag: FileETag(e.fi)}
		if (e.name == digits.InfoFile || e.name == digits.AuxFile) && me.Size <= digits.MaxInline {
			// Whole: a client then asks nothing per model.
			me.Data = h.smallFile(name, e)
			size += len(me.Data)
		}
		folder = append(folder, me)
		size += len(e.name) + 64
		if t := e.fi.ModTime(); t.After(mod) {
			mod = t
		}
	}
	return folder, mod, size
}

// masterReuse is how long a generated master.json is served again while
// the store directory itself is unchanged: describing ten thousand folders
// takes half a second of lstat calls, and the nodes of a cluster mount at
// once. A file rewritten in place shows within it (a client reads no byte
// of a file whose ETag changed: it is asked about again).
const masterReuse = 2 * time.Second

// masterCache is the last generated master.json, and the generation
// running (one at a time, shared by the requests that wait for it).
type masterCache struct {
	mu      sync.Mutex // protects the fields below
	body    []byte
	mod     time.Time
	rootMod time.Time // the store directory's mtime when it was made
	made    time.Time
	making  chan struct{} // closed when the running generation ends
}

// get returns a master.json made less than masterReuse ago for a store
// directory of modification time rootMod, or one made by gen.
func (c *masterCache) get(rootMod time.Time, gen func() ([]byte, time.Time, error)) ([]byte, time.Time, error) {
	c.mu.Lock()
	for {
		if c.body != nil && c.rootMod.Equal(rootMod) && time.Since(c.made) < masterReuse {
			defer c.mu.Unlock()
			return c.body, c.mod, nil
		}
		if c.making == nil {
			break
		}
		making := c.making
		c.mu.Unlock()
		<-making
		c.mu.Lock()
	}
	c.making = make(chan struct{})
	c.mu.Unlock()
	start := time.Now()
	body, mod, err := gen()
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.making)
	c.making = nil
	if err == nil {
		c.body, c.mod, c.rootMod, c.made = body, mod, rootMod, start
	}
	return body, mod, err
}

// smallFile reads a file of a model folder for master.json; nil when it
// cannot, or when the file opened is not the one the folder's listing
// described (same inode, date and size: its ETag), so nothing from
// outside the store, nor a file that changed, is ever read here.
func (h *handler) smallFile(folder string, e entry) []byte {
	f, err := os.OpenFile(filepath.Join(h.root, folder, e.name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || FileETag(fi) != FileETag(e.fi) {
		return nil
	}
	data := make([]byte, fi.Size()+1)
	n, err := io.ReadFull(f, data)
	if err != io.ErrUnexpectedEOF || int64(n) != fi.Size() {
		return nil
	}
	return data[:n]
}

func (h *handler) serveMaster(w http.ResponseWriter, r *http.Request) {
	fi, err := os.Stat(h.root)
	if err != nil {
		h.fail(w, r, fsError(err))
		return
	}
	b, mod, err := h.master.get(fi.ModTime(), h.masterJSON)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	serveBytes(w, r, "application/json", mod, b)
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
