package fs

import (
	"context"
	"encoding/json"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/cache"
)

// Stats is what /.stats shows: JSON, built at open.
type Stats struct {
	Daemon
	Mounted time.Time          `json:"mounted"`
	Stores  []StoreStats       `json:"stores"`
	Content cache.ContentStats `json:"content"`
	// BytesServed counts bytes returned to readers through the daemon
	// (not those the kernel reads itself through passthrough).
	BytesServed int64 `json:"bytes_served"`
	// ReadRequests counts the FUSE READ requests the daemon answered (a
	// reader looping on an error shows here).
	ReadRequests int64            `json:"read_requests"`
	Errors       map[string]int64 `json:"errors"` // by errno, as returned to readers
	// BytesPassthrough estimates the bytes the kernel read itself from
	// cache files (FUSE passthrough): each such open counts the file's size.
	BytesPassthrough int64 `json:"bytes_passthrough_estimate"`
}

// Daemon says which process serves the mount, and with which cache.
type Daemon struct {
	PID      int    `json:"pid"`
	CacheDir string `json:"cache_dir,omitempty"`
	Version  string `json:"version,omitempty"`
}

// StoreStats are one store's counters.
type StoreStats struct {
	Name          string    `json:"name"`
	URL           string    `json:"url"`
	Requests      int64     `json:"requests"`
	BytesReceived int64     `json:"bytes_received"`
	Models        int       `json:"models"` // -1 until listed
	LastRefresh   time.Time `json:"last_refresh"`
}

// Stats collects the counters now.
func (f *FS) Stats() Stats {
	st := Stats{Daemon: f.daemon, Mounted: f.mounted, Content: f.cat.Content().Stats(), BytesServed: f.served.Load(), ReadRequests: f.reads.Load(),
		Errors: map[string]int64{}, BytesPassthrough: f.passthrough.Load()}
	for _, s := range f.cat.Stores() {
		models := -1
		if l, ok := f.cat.CachedListing(s); ok {
			models = len(l.Models)
		}
		c := s.Counters()
		st.Stores = append(st.Stores, StoreStats{
			Name: s.Name, URL: s.URL(), Requests: c.Requests,
			BytesReceived: c.BytesReceived, Models: models, LastRefresh: f.cat.LastRefresh(s),
		})
	}
	f.errMu.Lock()
	for k, v := range f.errs {
		st.Errors[k] = v
	}
	f.errMu.Unlock()
	return st
}

func (f *FS) statsEntry() entry {
	n := &statsFile{fsys: f}
	return entry{
		name: StatsName, mode: fileMode, ino: f.inodeNumber("", StatsName), mtime: f.mounted,
		node: func() fusefs.InodeEmbedder { return n },
	}
}

// statsFile is /.stats: a snapshot of the counters taken at each open,
// served with direct I/O.
type statsFile struct {
	readOnly
	fsys *FS
}

func (n *statsFile) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.setAttr(&out.Attr, fileMode, 0, time.Now())
	return 0
}

func (n *statsFile) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if errno := readOnlyOpen(flags); errno != 0 {
		return nil, 0, errno
	}
	data, err := json.MarshalIndent(n.fsys.Stats(), "", "  ")
	if err != nil {
		return nil, 0, n.fsys.toErrno(ctx, "stats", err)
	}
	return &memHandle{data: append(data, '\n')}, fuse.FOPEN_DIRECT_IO, 0
}
