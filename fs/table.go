package fs

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// rootTableWait bounds how long the root models.tsv waits for a store.
const rootTableWait = 5 * time.Second

// tableHeader names the models.tsv columns.
var tableHeader = strings.Join(cache.TableHeader, "\t") + "\n"

// tableEntry is the models.tsv of a scope (nil: every store).
func (f *FS) tableEntry(st *cache.Store) entry {
	path := []string{TableName}
	if st != nil {
		path = []string{st.Name, TableName}
	}
	n := &tableFile{fsys: f, st: st}
	return entry{
		name: TableName, mode: fileMode, ino: f.inodeNumber("", path...), mtime: f.mounted,
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
	// Stores are listed in parallel. At the root, a store that has not
	// answered within rootTableWait is left out (and logged), so one dead
	// store never holds up the table of the others.
	stores := n.fsys.cat.Stores()
	if n.st != nil {
		stores = []*cache.Store{n.st}
	}
	rows := make([][]*cache.Model, len(stores))
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx := ctx
			if n.st == nil {
				var cancel context.CancelFunc
				sctx, cancel = context.WithTimeout(ctx, rootTableWait)
				defer cancel()
			}
			models, err := n.fsys.cat.Models(sctx, st)
			if err != nil {
				if ctx.Err() == nil {
					n.fsys.log.Warn("models.tsv: store left out", zap.String("store", st.Name), zap.Error(err))
				}
				return
			}
			rows[i] = models
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, 0, syscall.EINTR
	}
	var b strings.Builder
	b.WriteString(tableHeader)
	for _, models := range rows {
		for _, m := range models {
			writeRow(&b, m)
		}
	}
	data := []byte(b.String())
	n.lastSize.Store(int64(len(data)))
	return &memHandle{data: data}, fuse.FOPEN_DIRECT_IO, 0
}

// writeRow writes a model's line: Fields is the one place that makes store
// text harmless (no tabs, line breaks or other control characters).
func writeRow(b *strings.Builder, m *cache.Model) {
	writeSummary(b, m.Summary())
}

func writeSummary(b *strings.Builder, s cache.Summary) {
	for i, field := range s.Fields() {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(field)
	}
	b.WriteByte('\n')
}

// welcomeText is welcome.txt: master.json "msg" (or the default greeting),
// its lines kept, every other control character made harmless.
func welcomeText(msg string) []byte {
	return []byte(cache.CleanText(msg) + "\n")
}
