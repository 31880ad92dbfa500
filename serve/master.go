package serve

import (
	"io"
	"io/fs"
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
)

// The generated master.json and its folder pages: what the model folders
// are, and what each holds, so that a client learns a store of a hundred
// thousand models from a few documents instead of a request per folder.

// DefaultMasterBytes bounds a generated master.json and each folder page:
// a margin under what clients read (digits.MaxMasterJSON). Folders that
// do not fit in master.json are named in pages (digits.MasterFolderPages)
// that are described when a client asks for them.
const DefaultMasterBytes = 12 << 20

// WithMasterBytes bounds a generated master.json and each folder page at
// n bytes instead of DefaultMasterBytes.
func WithMasterBytes(n int) Option { return func(c *serverConfig) { c.masterBytes = n } }

// pageFill is how full of folders a page is planned, from the folders of
// master.json: folders differ in size, and a page that overflows leaves
// its last folders for the client to ask about one by one.
const pageFill = 0.75

// maxKeptDocs bounds the generated documents kept at once (master.json and
// the pages asked for in the last masterReuse).
const maxKeptDocs = 8

// pageGenerations bounds the folder pages described at once, as each takes
// up to masterWorkers goroutines and a document's worth of memory.
const pageGenerations = 2

// models returns the model folders of the store directory: the names of
// its subdirectories (or symlinks to directories inside it) that hold an
// info.json and are usable names, sorted. mod is the newest modification
// time among the directory, its subdirectories and their info.json.
func (h *handler) models() (names []string, mod time.Time, err error) {
	fi, err := os.Stat(h.root)
	if err != nil {
		return nil, time.Time{}, err
	}
	names, mod, err = h.modelsWhere(nil)
	if fi.ModTime().After(mod) {
		mod = fi.ModTime()
	}
	return names, mod, err
}

// modelsIn is models, of the folders named first to last (both included,
// in byte order), and without the store directory's own date.
func (h *handler) modelsIn(first, last string) (names []string, mod time.Time, err error) {
	return h.modelsWhere(func(name string) bool { return first <= name && name <= last })
}

// modelsWhere is models of the entries of the store directory that keep
// (nil: all) is true of, without the directory's own date.
func (h *handler) modelsWhere(keep func(name string) bool) (names []string, mod time.Time, err error) {
	entries, err := os.ReadDir(h.root)
	if err != nil {
		return nil, time.Time{}, err
	}
	names = []string{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || (keep != nil && !keep(name)) {
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
	h, err := newHandler(dir, nil, configOf(nil))
	if err != nil {
		return nil, err
	}
	names, _, err := h.models()
	return names, err
}

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

// masterJSON generates master.json: the model folders ("children") and
// what each holds ("folders": names, sizes, dates and ETags, as a GET of
// each file would tell them), so that a client needs no request per file
// to learn a folder. The folders master.json has no room for are named in
// pages, for a client to ask when it needs them.
func (h *handler) masterJSON(rootMod time.Time) ([]byte, time.Time, error) {
	names, mod, err := h.models()
	if err != nil {
		return nil, time.Time{}, err
	}
	h.listed.Store(&listedModels{names: names, rootMod: rootMod})
	folders, fmod, size := h.describeFolders(names)
	if fmod.After(mod) {
		mod = fmod // a file's change changes master.json
	}
	per := 0
	if len(folders) < len(names) {
		// As many folders a page as fill pageFill of one, at the size
		// of master.json's folders.
		avg := max(64, float64(size)/float64(max(1, len(folders))))
		per = max(1, int(pageFill*float64(h.masterBytes)/avg))
	}
	return digits.MasterJSONFolders(Msg, names, folders, h.masterBytes, per), mod, nil
}

// listedModels are the model folders the last master.json named, while
// the store directory had modification time rootMod.
type listedModels struct {
	names   []string
	rootMod time.Time
}

// folderPage generates the folder page of the model folders named first
// to last (digits.MasterFolderPages), for a store directory of
// modification time rootMod: those the last master.json named, while the
// directory is unchanged (a page of a store of 100,000 folders does not
// list them all again); else those there now.
func (h *handler) folderPage(first, last string, rootMod time.Time) ([]byte, time.Time, error) {
	h.pages <- struct{}{}
	defer func() { <-h.pages }()
	var (
		names []string
		mod   time.Time
		err   error
	)
	if l := h.listed.Load(); l != nil && l.rootMod.Equal(rootMod) {
		i, j := sort.SearchStrings(l.names, first), sort.Search(len(l.names), func(i int) bool { return l.names[i] > last })
		names = l.names[i:max(i, j)]
	} else if names, mod, err = h.modelsIn(first, last); err != nil {
		return nil, time.Time{}, err
	}
	folders, fmod, _ := h.describeFolders(names)
	if fmod.After(mod) {
		mod = fmod
	}
	return digits.FolderPage(names, folders, h.masterBytes), mod, nil
}

// masterWorkers describe folders for master.json at once.
const masterWorkers = 4

// describeFolders describes the folders of names in order, a few at once,
// until about h.masterBytes are described: folders[i] is what names[i]
// holds (nil when it cannot be read), and there are as many as were
// described. mod is the newest change among them, size about the bytes
// they take. Mostly lstat, open and read calls.
func (h *handler) describeFolders(names []string) (folders [][]digits.MasterEntry, mod time.Time, size int) {
	folders = make([][]digits.MasterEntry, len(names))
	mods := make([]time.Time, len(names))
	var (
		next, total atomic.Int64
		wg          sync.WaitGroup
	)
	for range masterWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Load() <= int64(h.masterBytes) {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				var n int
				folders[i], mods[i], n = h.describeFolder(names[i])
				total.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	// Every folder claimed was described: those before the last claimed.
	folders = folders[:min(int(next.Load()), len(names))]
	for _, t := range mods[:len(folders)] {
		if t.After(mod) {
			mod = t
		}
	}
	return folders, mod, int(total.Load())
}

func (h *handler) serveMaster(w http.ResponseWriter, r *http.Request) {
	fi, err := os.Stat(h.root)
	if err != nil {
		h.fail(w, r, fsError(err))
		return
	}
	b, mod, err := h.docs.get(digits.MasterFile, fi.ModTime(), func() ([]byte, time.Time, error) { return h.masterJSON(fi.ModTime()) })
	if err != nil {
		h.fail(w, r, err)
		return
	}
	serveBytes(w, r, "application/json", mod, b)
}

// serveFolderPage answers GET FolderPageFile?from=first&to=last.
func (h *handler) serveFolderPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	first, last := q.Get("from"), q.Get("to")
	if first == "" || last == "" || first > last {
		http.Error(w, `400 a folder page needs "from" and "to", in order`, http.StatusBadRequest)
		return
	}
	fi, err := os.Stat(h.root)
	if err != nil {
		h.fail(w, r, fsError(err))
		return
	}
	key := digits.FolderPageFile + "\x00" + first + "\x00" + last
	b, mod, err := h.docs.get(key, fi.ModTime(), func() ([]byte, time.Time, error) { return h.folderPage(first, last, fi.ModTime()) })
	if err != nil {
		h.fail(w, r, err)
		return
	}
	serveBytes(w, r, "application/json", mod, b)
}

// masterReuse is how long a generated document (master.json, a folder
// page) is served again while the store directory itself is unchanged:
// describing ten thousand folders takes half a second of lstat calls, and
// the nodes of a cluster mount at once. A file rewritten in place shows
// within it (a client reads no byte of a file whose ETag changed: it is
// asked about again).
const masterReuse = 2 * time.Second

// docCache keeps the generated documents made in the last masterReuse
// (at most maxKeptDocs), and runs one generation of each at a time,
// shared by the requests that wait for it.
type docCache struct {
	mu   sync.Mutex // protects docs and every doc's fields
	docs map[string]*doc
}

// doc is one generated document, or its generation running.
type doc struct {
	body    []byte
	mod     time.Time
	rootMod time.Time // the store directory's mtime when it was made
	made    time.Time
	making  chan struct{} // closed when the running generation ends
}

// get returns the document key made less than masterReuse ago for a store
// directory of modification time rootMod, or one made by gen.
func (c *docCache) get(key string, rootMod time.Time, gen func() ([]byte, time.Time, error)) ([]byte, time.Time, error) {
	c.mu.Lock()
	if c.docs == nil {
		c.docs = map[string]*doc{}
	}
	d := c.docs[key]
	if d == nil {
		d = &doc{}
		c.docs[key] = d
	}
	for {
		if d.body != nil && d.rootMod.Equal(rootMod) && time.Since(d.made) < masterReuse {
			defer c.mu.Unlock()
			return d.body, d.mod, nil
		}
		if d.making == nil {
			break
		}
		making := d.making
		c.mu.Unlock()
		<-making
		c.mu.Lock()
	}
	d.making = make(chan struct{})
	c.mu.Unlock()
	body, mod, err := gen()
	c.mu.Lock()
	defer c.mu.Unlock()
	close(d.making)
	d.making = nil
	if err == nil {
		// From when it is done: one that takes longer than masterReuse
		// to make (100,000 folders) is still shared by the mounts that
		// come just after.
		d.body, d.mod, d.rootMod, d.made = body, mod, rootMod, time.Now()
	}
	c.prune(key)
	return body, mod, err
}

// prune drops the documents older than masterReuse, and the oldest past
// maxKeptDocs, but for key and those being made.
func (c *docCache) prune(key string) {
	var kept []string
	for k, d := range c.docs {
		switch {
		case k == key || d.making != nil:
		case d.body == nil || time.Since(d.made) >= masterReuse:
			delete(c.docs, k)
		default:
			kept = append(kept, k)
		}
	}
	if len(kept) < maxKeptDocs {
		return
	}
	sort.Slice(kept, func(i, j int) bool { return c.docs[kept[i]].made.Before(c.docs[kept[j]].made) })
	for _, k := range kept[:len(kept)-maxKeptDocs+1] {
		delete(c.docs, k)
	}
}
