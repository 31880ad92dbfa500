package fs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"syscall"

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

	mu      sync.Mutex          // protects the fields below
	shown   *cache.StoreListing // the listing entries were made for
	entries []entry             // sorted by name
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

func (d *storeDir) modelEntry(name string) entry {
	f, st := d.fsys, d.st
	return entry{
		name: name, mode: modelDirMode, ino: f.inodeNumber("", st.Name, name), versioned: true,
		node: func() fusefs.InodeEmbedder { return &modelDir{fsys: f, st: st, name: name} },
	}
}

func (d *storeDir) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.setAttr(&out.Attr, dirMode, 0, d.fsys.mounted)
	return 0
}

func (d *storeDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if name == RefreshName {
		return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), d.fsys.refreshEntry(d.st), out), 0
	}
	l, err := d.fsys.cat.Listing(ctx, d.st)
	if ctx.Err() != nil {
		return nil, syscall.EINTR
	}
	e, ok := searchEntry(d.listed(l, err), name)
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
	return dirStream(d.listed(l, err)), 0
}

// listed returns the store directory's entries for a listing result,
// sorted: made once per listing, as a store may hold a hundred thousand
// models, each looked up after a READDIRPLUS.
func (d *storeDir) listed(l *cache.StoreListing, err error) []entry {
	if err != nil {
		return sortEntries(d.special(nil, err))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.shown == l {
		return d.entries
	}
	es := d.special(l, nil)
	for _, m := range l.Models {
		es = append(es, d.modelEntry(m))
	}
	d.shown, d.entries = l, sortEntries(es)
	return d.entries
}

// modelDir is one model folder. A model whose metadata cannot be fetched
// shows only error.txt, saying why.
type modelDir struct {
	readOnly
	fsys *FS
	st   *cache.Store
	name string

	mu    sync.Mutex   // protects the fields below
	shown *cache.Model // the model inos are of
	inos  []uint64     // the inode numbers of its files, in order
}

// fileInos returns the inode numbers of a model's files, derived once per
// model: an ls -lR looks each file up after its READDIRPLUS.
func (d *modelDir) fileInos(m *cache.Model) []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.shown != m {
		inos := make([]uint64, len(m.Files))
		for i := range m.Files {
			inos[i] = d.fileIno(&m.Files[i])
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
	inos := d.fileInos(m)
	es := make([]entry, len(m.Files))
	for i := range m.Files {
		es[i] = d.fileEntry(&m.Files[i], inos[i])
	}
	return es
}

func (d *modelDir) fileEntry(file *cache.File, ino uint64) entry {
	f, st, model := d.fsys, d.st, d.name
	e := entry{name: file.Name, ino: ino, size: file.Size(), mtime: file.ModTime, versioned: true}
	switch file.Kind {
	case cache.KindSymlink:
		e.mode = linkMode
		target := file.Target
		e.node = func() fusefs.InodeEmbedder { return &symlink{fsys: f, target: target, mtime: e.mtime} }
	case cache.KindRemote:
		e.mode = fileMode
		ref := cache.Ref{Store: st, Model: model, Name: file.Remote, Meta: file.Meta}
		e.node = func() fusefs.InodeEmbedder { return &remoteFile{fsys: f, ref: ref, mtime: e.mtime} }
	default:
		e.mode = fileMode
		data := file.Data
		var ref *cache.Ref
		if file.Remote != "" { // info.json, aux.json: fetched from the store
			ref = &cache.Ref{Store: st, Model: model, Name: file.Remote, Meta: file.Meta}
		}
		var gen func() []byte
		if file.Generated() {
			gen = file.Bytes
		}
		e.node = func() fusefs.InodeEmbedder {
			return &dataFile{fsys: f, data: data, gen: gen, size: e.size, mtime: e.mtime, ref: ref}
		}
	}
	return e
}

// errorEntry is the folder's only entry when its metadata failed.
func (d *modelDir) errorEntry(err error) entry {
	msg := fmt.Sprintf("%s: the model's files cannot be listed:\n%v\n", d.name, err)
	return d.fsys.dataEntry([]byte(cache.CleanText(msg)), d.fsys.mounted, d.st.Name, d.name, ErrorName)
}

func (d *modelDir) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
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
	i := sort.Search(len(m.Files), func(i int) bool { return m.Files[i].Name >= name })
	if i == len(m.Files) || m.Files[i].Name != name {
		return nil, syscall.ENOENT
	}
	e := d.fileEntry(&m.Files[i], d.fileInos(m)[i])
	return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), e, out), 0
}

// entries are the folder's entries as resolved, sizes known or not.
func (d *modelDir) entries(ctx context.Context) ([]entry, syscall.Errno) {
	m, err := d.fsys.cat.Model(ctx, d.st, d.name)
	if ctx.Err() != nil {
		return nil, syscall.EINTR
	}
	if errors.Is(err, cache.ErrNotFound) {
		return nil, 0
	}
	if err != nil {
		return []entry{d.errorEntry(err)}, 0
	}
	return d.fileEntries(m), 0
}

func (d *modelDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	es, errno := d.entries(ctx)
	if errno != 0 {
		return nil, errno
	}
	return dirStream(es), 0
}

// OpendirHandle opens the folder for reading. The kernel reads it with
// READDIRPLUS, which looks up every entry: through the handle, entries
// that need sizes are left for a LOOKUP of their own, so that listing a
// folder (a shell glob, grep over */info.json) asks the store nothing.
func (d *modelDir) OpendirHandle(ctx context.Context, _ uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	es, errno := d.entries(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{ds: dirStream(es), lookup: func(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
		return d.lookup(ctx, name, out, false)
	}}, 0, 0
}
