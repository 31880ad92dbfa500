package fs

import (
	"context"
	"strings"
	"sync/atomic"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// tableHeader names the models.tsv columns.
const tableHeader = "store\tmodel\tname\tframework\tdataset\tlicense\tcontributor\tnote\n"

// tableEntry is the models.tsv of a scope (nil: every store).
func (f *FS) tableEntry(st *cache.Store) entry {
	path := []string{TableName}
	if st != nil {
		path = []string{st.Name, TableName}
	}
	n := &tableFile{fsys: f, st: st}
	return entry{
		name: TableName, mode: fileMode, ino: inodeNumber("", path...), mtime: f.mounted,
		node: func() fusefs.InodeEmbedder { return n },
	}
}

// tableFile is one line per model, for grep. Its content is built at open
// from the catalog (waiting for the models' metadata) and served with
// direct I/O, so its size in stat is only the last known one.
type tableFile struct {
	readOnly
	fsys     *FS
	st       *cache.Store
	lastSize atomic.Int64
}

func (n *tableFile) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.setAttr(&out.Attr, fileMode, n.lastSize.Load(), n.fsys.mounted)
	return 0
}

func (n *tableFile) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if errno := readOnlyOpen(flags); errno != 0 {
		return nil, 0, errno
	}
	var b strings.Builder
	b.WriteString(tableHeader)
	for _, st := range n.fsys.cat.Stores() {
		if n.st != nil && st != n.st {
			continue
		}
		models, err := n.fsys.cat.Models(ctx, st)
		if ctx.Err() != nil {
			return nil, 0, syscall.EINTR
		}
		if err != nil {
			// A failing store must not hide the others: it is left out.
			n.fsys.log.Warn("models.tsv: store left out", zap.String("store", st.Name), zap.Error(err))
			continue
		}
		for _, m := range models {
			writeRow(&b, st, m)
		}
	}
	data := []byte(b.String())
	n.lastSize.Store(int64(len(data)))
	return &refreshHandle{data: data}, fuse.FOPEN_DIRECT_IO, 0
}

func writeRow(b *strings.Builder, _ *cache.Store, m *cache.Model) {
	for i, field := range m.Summary().Fields() {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(cleanField(field))
	}
	b.WriteByte('\n')
}

// cleanField keeps one row per line: tabs and line breaks become spaces.
func cleanField(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
