package fs

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
		name: name, mode: modelDirMode, ino: f.inodeNumber("", st.Name, name),
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
	if e, ok := findEntry(d.special(l, err), name); ok {
		return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), e, out), 0
	}
	if err != nil || !l.Has(name) {
		return nil, syscall.ENOENT
	}
	return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), d.modelEntry(name), out), 0
}

func (d *storeDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	l, err := d.fsys.cat.Listing(ctx, d.st)
	if ctx.Err() != nil {
		return nil, syscall.EINTR
	}
	es := d.special(l, err)
	if err == nil {
		for _, m := range l.Models {
			es = append(es, d.modelEntry(m))
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return dirStream(es), 0
}

// modelDir is one model folder. A model whose metadata cannot be fetched
// shows only error.txt, saying why.
type modelDir struct {
	readOnly
	fsys *FS
	st   *cache.Store
	name string
}

func (d *modelDir) fileEntry(file *cache.File) entry {
	f, st, model := d.fsys, d.st, d.name
	e := entry{
		name: file.Name, ino: f.inodeNumber(fileVersion(file), st.Name, model, file.Name),
		size: file.Size(), mtime: file.ModTime,
	}
	switch file.Kind {
	case cache.KindSymlink:
		e.mode = linkMode
		target := file.Target
		e.node = func() fusefs.InodeEmbedder { return &symlink{fsys: f, target: target, mtime: e.mtime} }
	case cache.KindRemote:
		e.mode = fileMode
		if file.Meta.Size < 0 {
			// Its inode number will include the validators a HEAD
			// tells when it is looked up; none meanwhile.
			e.ino = 0
		}
		n := &remoteFile{fsys: f, ref: cache.Ref{Store: st, Model: model, Name: file.Remote, Meta: file.Meta}, mtime: e.mtime}
		e.node = func() fusefs.InodeEmbedder { return n }
	default:
		e.mode = fileMode
		data := file.Data
		var ref *cache.Ref
		if file.Remote != "" { // info.json, aux.json: fetched from the store
			ref = &cache.Ref{Store: st, Model: model, Name: file.Remote, Meta: file.Meta}
		}
		e.node = func() fusefs.InodeEmbedder { return &dataFile{fsys: f, data: data, mtime: e.mtime, ref: ref} }
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
	file, ok := m.File(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	return d.fsys.lookupEntry(ctx, d.EmbeddedInode(), d.fileEntry(file), out), 0
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
	es := make([]entry, len(m.Files))
	for i := range m.Files {
		es[i] = d.fileEntry(&m.Files[i])
	}
	return es, 0
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
