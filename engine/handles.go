package engine

// The handles of opened files: complete in the cache (fileHandle) or
// downloading (streamHandle); files read into memory have memHandle.

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/modelstorefs/modelstorefs/cache"
)

// fileHandle reads a complete file.
type fileHandle struct {
	f       *os.File
	size    int64
	release func()
	once    sync.Once
}

func (h *fileHandle) Read(_ context.Context, p []byte, off int64) (cache.ReadResult, error) {
	if off >= h.size {
		return cache.ReadResult{Fd: -1}, io.EOF
	}
	n := min(int64(len(p)), h.size-off)
	return cache.ReadResult{Fd: int(h.f.Fd()), Off: off, N: int(n)}, eofIf(n < int64(len(p)))
}
func (h *fileHandle) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	return h.f.ReadAt(p, off)
}
func (h *fileHandle) Size() int64 { return h.size }
func (h *fileHandle) Fd() int     { return int(h.f.Fd()) }
func (h *fileHandle) Close() error {
	err := h.f.Close()
	h.once.Do(h.release)
	return err
}

// streamHandle reads a file while it downloads.
type streamHandle struct {
	d       *download
	release func()
	once    sync.Once
}

func (h *streamHandle) Read(ctx context.Context, p []byte, off int64) (cache.ReadResult, error) {
	return h.d.readers.read(ctx, p, off, true)
}

func (h *streamHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	r, err := h.d.readers.read(ctx, p, off, false)
	if r.Fd < 0 {
		return len(r.Data), err
	}
	n, rerr := h.d.f.ReadAt(p[:r.N], r.Off)
	if rerr != nil && rerr != io.EOF {
		return n, rerr
	}
	return n, err
}
func (h *streamHandle) Size() int64 { return h.d.size }

// Fd is the cache file once all its bytes are there (the rename that
// commits it keeps the descriptor): an open in the moment between the last
// byte and the commit reads in page-cache or passthrough mode too, not a
// FUSE round trip per read.
func (h *streamHandle) Fd() int {
	if f := h.d.readyFile(); f != nil {
		return int(f.Fd())
	}
	return -1
}
func (h *streamHandle) Close() error {
	h.once.Do(func() {
		h.d.readers.drop()
		h.release()
	})
	return nil
}

func newStreamHandle(d *download, release func()) *streamHandle {
	d.readers.add()
	return &streamHandle{d: d, release: release}
}
