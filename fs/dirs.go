package fs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// rootDir is the mountpoint: one directory per store, .refresh, models.tsv.
type rootDir struct {
	readOnly
	fsys *FS
}

func (d *rootDir) entries() []entry {
	f := d.fsys
	es := []entry{
		f.refreshEntry(nil),
		f.tableEntry(nil),
		f.statsEntry(),
	}
	for _, st := range f.cat.Stores() {
		es = append(es, entry{
			name: st.Name, mode: dirMode, ino: f.inodeNumber("", st.Name),
			node: func() fusefs.InodeEmbedder { return &storeDir{fsys: f, st: st} },
		})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return es
}

func (d *rootDir) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.setAttr(&out.Attr, dirMode, 0, d.fsys.mounted)
	return 0
}

func (d *rootDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	e, ok := findEntry(d.entries(), name)
	if !ok {
		return nil, syscall.ENOENT
	}
	return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), e, out), 0
}

func (d *rootDir) Readdir(context.Context) (fusefs.DirStream, syscall.Errno) {
	return dirStream(d.entries()), 0
}

// storeDir is one store: its models plus .refresh, models.tsv, welcome.txt,
// and error.txt while the store cannot be listed.
type storeDir struct {
	readOnly
	fsys *FS
	st   *cache.Store

	mu    sync.Mutex          // protects the fields below
	shown *cache.StoreListing // the listing the fields below are of
	own   []entry             // its special entries, sorted by name
	inos  []uint64            // the inode numbers of its models, in order
	list  []fuse.DirEntry     // own and models, sorted: what READDIR lists
	// failed is the error listed instead (list is then of own), "" when
	// the listing was shown.
	failed string
	// changed is the directory's mtime: when what it lists last changed
	// (zero: the mount's time). The kernel keeps a listing until then.
	changed    time.Time
	listedOnce bool
}

// special returns the store's own entries for a listing result.
func (d *storeDir) special(l *cache.StoreListing, err error) []entry {
	f := d.fsys
	es := []entry{f.refreshEntry(d.st)}
	if err != nil {
		msg := fmt.Sprintf("The store %s (%s) cannot be listed:\n%v\nTouch %s to try again.\n",
			d.st.Name, d.st.URL(), err, RefreshName)
		return append(es, f.dataEntry([]byte(cache.CleanText(msg)), f.mounted, d.st.Name, ErrorName))
	}
	es = append(es,
		f.tableEntry(d.st),
		f.dataEntry(welcomeText(l.Msg), l.Fetched, d.st.Name, WelcomeName))
	if l.Stale != nil {
		msg := fmt.Sprintf("The store %s (%s) is failing; this is the listing of %s.\n%v\n",
			d.st.Name, d.st.URL(), l.Fetched.Format("2006-01-02 15:04:05 MST"), l.Stale)
		es = append(es, f.dataEntry([]byte(cache.CleanText(msg)), l.Fetched, d.st.Name, ErrorName))
	}
	return es
}

func (d *storeDir) modelEntry(name string, ino uint64) entry {
	f, st := d.fsys, d.st
	return entry{
		name: name, mode: modelDirMode, ino: ino, versioned: true,
		node: func() fusefs.InodeEmbedder { return &modelDir{folder: folder{fsys: f, st: st, name: name}} },
	}
}

// Getattr gives the store directory's mtime. Once it was listed, that is
// when its listing last changed: the kernel keeps a listing until the
// mtime changes (noOpendir), and asks for it when it lists the directory
// after the attribute timeout, so asking here for the listing (fetched
// again past its TTL) is what an open of the directory did.
func (d *storeDir) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.mu.Lock()
	listed := d.listedOnce
	d.mu.Unlock()
	if listed {
		l, err := d.fsys.cat.Listing(ctx, d.st)
		if ctx.Err() != nil {
			return syscall.EINTR
		}
		d.listed(l, err)
	}
	d.fsys.setAttr(&out.Attr, dirMode, 0, d.mtime())
	return 0
}

// mtime is when what the directory lists last changed, as last seen.
func (d *storeDir) mtime() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changed.IsZero() {
		return d.fsys.mounted
	}
	return d.changed
}

func (d *storeDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if name == RefreshName {
		return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), d.fsys.refreshEntry(d.st), out), 0
	}
	l, err := d.fsys.cat.Listing(ctx, d.st)
	if ctx.Err() != nil {
		return nil, syscall.EINTR
	}
	own, inos, _ := d.listed(l, err)
	e, ok := searchEntry(own, name)
	if !ok && err == nil {
		if i := sort.SearchStrings(l.Models, name); i < len(l.Models) && l.Models[i] == name {
			e, ok = d.modelEntry(name, inos[i]), true
		}
	}
	if !ok {
		return nil, syscall.ENOENT
	}
	return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), e, out), 0
}

func (d *storeDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	l, err := d.fsys.cat.Listing(ctx, d.st)
	if ctx.Err() != nil {
		return nil, syscall.EINTR
	}
	_, _, list := d.listed(l, err)
	return fusefs.NewListDirStream(list), 0
}

// OpendirHandle opens the store directory for one READDIR(PLUS) (the
// kernel itself opens directories: noOpendir). Its READDIRPLUS looks up
// the store's own entries only: plain ls of a store of a hundred
// thousand models makes no inode for each (an ls -l looks each up).
func (d *storeDir) OpendirHandle(ctx context.Context, _ uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	l, err := d.fsys.cat.Listing(ctx, d.st)
	if ctx.Err() != nil {
		return nil, 0, syscall.EINTR
	}
	own, _, list := d.listed(l, err)
	if err != nil || l.Stale != nil { // a failure shows until the store answers: not kept
		d.fsys.inval.dropListingSoon(d.EmbeddedInode())
	}
	return &dirHandle{ds: fusefs.NewListDirStream(list), lookup: func(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
		if !slices.ContainsFunc(own, func(e entry) bool { return e.name == name }) && name != RefreshName {
			return nil, syscall.ENOENT // a model: left for a LOOKUP of its own
		}
		return d.Lookup(ctx, name, out)
	}}, 0, 0
}

// listed returns the store directory's own entries for a listing result,
// sorted, the inode numbers of its models and all its entries as READDIR
// lists them: derived once per listing, as a store may hold a hundred
// thousand models, each looked up after a READDIRPLUS, and each READDIR
// opens the directory anew (noOpendir).
func (d *storeDir) listed(l *cache.StoreListing, err error) (own []entry, inos []uint64, list []fuse.DirEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err != nil:
		if d.shown == nil && d.failed == err.Error() && d.listedOnce {
			return d.own, nil, d.list
		}
		d.shown, d.failed, d.inos = nil, err.Error(), nil
		d.own = sortEntries(d.special(nil, err))
		d.list = direntries(d.own)
	case d.shown != l:
		inos = make([]uint64, len(l.Models))
		list = make([]fuse.DirEntry, 0, len(l.Models)+4)
		for i, m := range l.Models {
			inos[i] = d.fsys.inodeNumber("", d.st.Name, m)
			list = append(list, fuse.DirEntry{Name: m, Mode: modelDirMode, Ino: inos[i]})
		}
		d.shown, d.failed, d.inos = l, "", inos
		d.own = sortEntries(d.special(l, nil))
		d.list = mergeEntries(list, d.own)
	default:
		return d.own, d.inos, d.list
	}
	if d.listedOnce { // the first listing is what the mount's time stood for
		d.changed = later(d.changed, d.fsys.mounted)
	}
	d.listedOnce = true
	return d.own, d.inos, d.list
}

// later is a time after both prev and floor, and now if it is.
func later(prev, floor time.Time) time.Time {
	m := prev
	if floor.After(m) {
		m = floor
	}
	if t := time.Now(); t.After(m) {
		return t
	}
	return m.Add(time.Nanosecond)
}

// direntries lists entries (sorted) as READDIR gives them.
func direntries(es []entry) []fuse.DirEntry {
	list := make([]fuse.DirEntry, len(es))
	for i, e := range es {
		list[i] = fuse.DirEntry{Name: e.name, Mode: e.mode, Ino: e.ino}
	}
	return list
}

// mergeEntries returns models (in name order, as a listing gives them)
// and own merged in name order.
func mergeEntries(models []fuse.DirEntry, own []entry) []fuse.DirEntry {
	out := make([]fuse.DirEntry, 0, len(models)+len(own))
	for _, e := range own {
		i := sort.Search(len(models), func(i int) bool { return models[i].Name >= e.name })
		out = append(out, models[:i]...)
		out = append(out, fuse.DirEntry{Name: e.name, Mode: e.mode, Ino: e.ino})
		models = models[i:]
	}
	return append(out, models...)
}

// modelDir is one model folder. A model whose metadata cannot be fetched
// shows only error.txt, saying why.
type modelDir struct {
	readOnly
	folder // its files' nodes point to it

	mu    sync.Mutex   // protects the fields below
	shown *cache.Model // the model inos are of
	inos  []uint64     // the inode numbers of its files, in order

	asked atomic.Int64 // when Getattr last asked for the model (Unix ns)
}

// fileInos returns the inode numbers of a model's files, derived once per
// model: an ls -lR looks each file up after its READDIRPLUS.
func (d *modelDir) fileInos(m *cache.Model) []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.shown != m {
		files := m.Files()
		inos := make([]uint64, len(files))
		for i := range files {
			inos[i] = d.fileIno(&files[i])
		}
		d.shown, d.inos = m, inos
	}
	return d.inos
}

// fileIno is a file's inode number: it includes the file's version (none
// while a remote file's size is unknown: it will include the validators
// a HEAD tells when it is looked up).
func (d *modelDir) fileIno(file *cache.File) uint64 {
	if file.Kind == cache.KindRemote && file.Meta.Size < 0 {
		return 0
	}
	return d.fsys.inodeNumber(fileVersion(file), d.st.Name, d.name, file.Name)
}

// fileEntries are the entries of a model's files, in order.
func (d *modelDir) fileEntries(m *cache.Model) []entry {
	files, inos := m.Files(), d.fileInos(m)
	es := make([]entry, len(files))
	for i := range files {
		es[i] = d.fileEntry(&files[i], inos[i])
	}
	return es
}

func (d *modelDir) fileEntry(file *cache.File, ino uint64) entry {
	f, at := d.fsys, &d.folder
	e := entry{name: file.Name, ino: ino, size: file.Size(), mtime: file.ModTime, versioned: true}
	switch file.Kind {
	case cache.KindSymlink:
		e.mode = linkMode
		e.node = func() fusefs.InodeEmbedder { return &symlink{fsys: f, file: file} }
	case cache.KindRemote:
		e.mode = fileMode
		e.node = func() fusefs.InodeEmbedder { return &remoteFile{folder: at, file: file} }
	default:
		e.mode = fileMode
		e.node = func() fusefs.InodeEmbedder { return &dataFile{folder: at, file: file} }
	}
	return e
}

// errorEntry is the folder's only entry when its metadata failed.
func (d *modelDir) errorEntry(err error) entry {
	msg := fmt.Sprintf("%s: the model's files cannot be listed:\n%v\n", d.name, err)
	return d.fsys.dataEntry([]byte(cache.CleanText(msg)), d.fsys.mounted, d.st.Name, d.name, ErrorName)
}

// Getattr: the kernel asks for it when the folder's attributes expired
// (versionedTimeout) and it lists the folder again. Its listing is kept
// (noOpendir): a model shown before and no longer fresh is asked for
// here, in the background and at most once per versionedTimeout, as an
// open of the folder did, so that one changed on the store is found and
// the kernel told (FS.modelChanged). The answer never waits for it.
func (d *modelDir) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.mu.Lock()
	shown := d.shown != nil
	d.mu.Unlock()
	now := time.Now().UnixNano()
	if last := d.asked.Load(); shown && now-last > int64(versionedTimeout) {
		if _, fresh := d.fsys.cat.CachedModel(d.st, d.name); !fresh && d.asked.CompareAndSwap(last, now) {
			go func() { _, _ = d.fsys.cat.Model(context.Background(), d.st, d.name) }()
		}
	}
	d.fsys.setAttr(&out.Attr, modelDirMode, 0, d.fsys.mounted)
	out.SetTimeout(versionedTimeout)
	return 0
}

// Lookup answers from the model as resolved; an entry that depends on the
// sizes of the folder's files (a file the listing gave no size for,
// status.pickle, error.txt) waits for them first.
func (d *modelDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return d.lookup(ctx, name, out, true)
}

// lookup is Lookup; without sized, names that need sizes are not
// answered (ENOENT to a READDIRPLUS: the kernel keeps no entry for them
// and sends a LOOKUP when one is used).
func (d *modelDir) lookup(ctx context.Context, name string, out *fuse.EntryOut, sized bool) (*fusefs.Inode, syscall.Errno) {
	m, err := d.fsys.cat.Model(ctx, d.st, d.name)
	if ctx.Err() != nil {
		return nil, syscall.EINTR
	}
	if errors.Is(err, cache.ErrNotFound) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		if e := d.errorEntry(err); name == e.name {
			return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), e, out), 0
		}
		return nil, syscall.ENOENT
	}
	if m.NeedsSizes(name) {
		if !sized {
			return nil, syscall.ENOENT
		}
		if m, err = d.fsys.cat.Sized(ctx, d.st, d.name); err != nil {
			return nil, d.fsys.toErrno(ctx, "lookup", err, zap.String("store", d.st.Name), zap.String("model", d.name), zap.String("name", name))
		}
	}
	files := m.Files()
	i := sort.Search(len(files), func(i int) bool { return files[i].Name >= name })
	if i == len(files) || files[i].Name != name {
		return nil, syscall.ENOENT
	}
	e := d.fileEntry(&files[i], d.fileInos(m)[i])
	return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), e, out), 0
}

// entries are the folder's entries, its sizes known: opening a folder
// settles its verdict (an empty weights file). resolved is false when
// they say the model could not be resolved, or not sized.
func (d *modelDir) entries(ctx context.Context) (es []entry, resolved bool, errno syscall.Errno) {
	m, err := d.fsys.cat.Model(ctx, d.st, d.name)
	if ctx.Err() != nil {
		return nil, false, syscall.EINTR
	}
	if errors.Is(err, cache.ErrNotFound) {
		return nil, false, 0
	}
	if err != nil {
		return []entry{d.errorEntry(err)}, false, 0
	}
	resolved = true
	if !m.Sized() {
		d.fsys.cat.SizeAhead(d.st, d.name) // a walk opens those next
		sized, err := d.fsys.cat.Sized(ctx, d.st, d.name)
		if ctx.Err() != nil {
			return nil, false, syscall.EINTR
		}
		if err == nil {
			m = sized
		} else {
			resolved = false // shown on presence: asked again at the next open
		}
	}
	return d.fileEntries(m), resolved, 0
}

func (d *modelDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	es, _, errno := d.entries(ctx)
	if errno != 0 {
		return nil, errno
	}
	return dirStream(es), 0
}

// OpendirHandle opens the folder for one READDIR(PLUS) (the kernel itself
// opens directories: noOpendir). The kernel reads it with READDIRPLUS,
// which looks up every entry: through the handle, entries that need
// sizes are left for a LOOKUP of their own, so that listing a folder (a
// shell glob, grep over */info.json) asks the store nothing. The kernel
// keeps the listing: a warm ls -lR is then answered as from a local disk.
// It is dropped whenever the folder may show other names: a refresh, a
// model found changed, re-fetched or sized into another folder
// (FS.modelChanged), and just after it is read while it shows a failure.
// The flags matter only to a kernel that still sends OPENDIR.
func (d *modelDir) OpendirHandle(ctx context.Context, _ uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	es, resolved, errno := d.entries(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	var keep uint32
	if resolved {
		keep = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	} else { // a failure shows until the model resolves: not kept
		d.fsys.inval.dropListingSoon(d.EmbeddedInode())
	}
	return &dirHandle{ds: dirStream(es), lookup: func(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
		return d.lookup(ctx, name, out, false)
	}}, keep, 0
}
