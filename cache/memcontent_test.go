package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"github.com/modelstorefs/modelstorefs/remote"
)

// memContent is a small in-memory Content for the catalog's tests: each
// open downloads the whole file (checked against its version by the remote
// client) unless that version is already held. The byte engine proper, with
// its cache files and bounds, is tested in package engine.
type memContent struct {
	mu       sync.Mutex
	files    map[string][]byte // by Ref.Key
	opens    int64
	onChange func(Ref)
}

var (
	_ Content        = (*memContent)(nil)
	_ ChangeNotifier = (*memContent)(nil)
)

func newMemContent() *memContent { return &memContent{files: map[string][]byte{}} }

// OnChange is what the catalog registers to hear of changed files.
func (c *memContent) OnChange(fn func(Ref)) { c.onChange = fn }

func (c *memContent) Open(ctx context.Context, ref Ref) (Handle, error) {
	c.mu.Lock()
	c.opens++
	data, ok := c.files[ref.Key()]
	c.mu.Unlock()
	if ok {
		return &memHandle{data: data}, nil
	}
	var buf bytes.Buffer
	n, err := ref.Store.Remote.Download(ctx, &buf, ref.Meta, ref.Model, ref.Name)
	if errors.Is(err, remote.ErrChanged) && c.onChange != nil {
		c.onChange(ref)
	}
	if err != nil {
		return nil, err
	}
	ref.Meta.Size = n
	c.mu.Lock()
	c.files[ref.Key()] = buf.Bytes()
	c.mu.Unlock()
	return &memHandle{data: buf.Bytes()}, nil
}

func (c *memContent) Digest(Ref) (string, string) { return "", "" }

func (c *memContent) Cached(ref Ref) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.files[ref.Key()]))
}

func (c *memContent) Stats() ContentStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ContentStats{Files: len(c.files)}
}

func (c *memContent) Close() error { return nil }

// memHandle reads a file held in memory.
type memHandle struct{ data []byte }

func (h *memHandle) Read(ctx context.Context, p []byte, off int64) (ReadResult, error) {
	n, err := h.ReadAt(ctx, p, off)
	return ReadResult{Data: p[:n], Fd: -1}, err
}

func (h *memHandle) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	if off >= int64(len(h.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memHandle) Size() int64  { return int64(len(h.data)) }
func (h *memHandle) Fd() int      { return -1 }
func (h *memHandle) Close() error { return nil }
