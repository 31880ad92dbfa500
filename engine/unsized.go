package engine

// Files whose size the server does not tell: downloaded whole, once, on
// the cache's context, within the cache's bounds.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// unsizedFetch is the download of a file whose size the server does not
// tell; the opens of that file wait for it.
type unsizedFetch struct {
	done chan struct{}
	size int64
	err  error
}

// openUnsized serves a file whose size the server never told (no
// Content-Length, no Range): it is downloaded whole first, which tells its
// size, and kept in the cache under that size, where the later opens with
// the learned size find it. The download runs once, on the cache's
// context: all opens of the file wait for it (each at most until its own
// ctx ends), and an interrupted open does not abort it.
func (s *StreamContent) openUnsized(ctx context.Context, ref cache.Ref) (cache.Handle, error) {
	key := ref.Key()
	s.mu.Lock()
	f := s.unsized[key]
	if f == nil {
		if s.closed {
			s.mu.Unlock()
			return nil, errors.New("cache closed")
		}
		if len(s.unsized) >= maxWarned {
			for k, old := range s.unsized {
				select {
				case <-old.done:
					delete(s.unsized, k)
				default:
				}
			}
		}
		f = &unsizedFetch{done: make(chan struct{})}
		s.unsized[key] = f
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f.size, f.err = s.fetchUnsized(ref)
			if f.err != nil {
				s.mu.Lock()
				if s.unsized[key] == f {
					delete(s.unsized, key) // the next open tries again
				}
				s.mu.Unlock()
			}
			close(f.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	ref.Meta.Size = f.size
	return s.Open(ctx, ref)
}

// fetchUnsized downloads an unsized file into the cache and returns its
// size. Its bytes are reserved against the cache's bounds as they arrive:
// a file that outgrows the room is abandoned with ErrUnsizedTooLarge,
// never written past --cache-size or --cache-min-free.
func (s *StreamContent) fetchUnsized(ref cache.Ref) (int64, error) {
	tmp, err := os.CreateTemp(s.partial, "unsized-*")
	if err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	check := newDigestCheck(ref)
	w := &reservingWriter{s: s, f: tmp, hash: check}
	defer w.release()
	n, err := ref.Store.Remote.Download(s.ctx, w, ref.Meta, ref.Model, ref.Name)
	shaHex, verified, cerr := check.result()
	if err == nil && cerr != nil {
		err = cerr
		logMismatch(s.log.With(zap.String("url", ref.URL())), err)
		s.countMismatch()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errNoSpace) {
		return 0, fmt.Errorf("%s: %w: %w", ref.URL(), cache.ErrUnsizedTooLarge, err)
	}
	if err != nil {
		return 0, err
	}
	ref.Meta.Size = n
	key := ref.Key()
	final := filepath.Join(s.objects, objectName(key, shaHex, verified))
	s.mu.Lock()
	_, known := s.entries[key]
	s.mu.Unlock()
	if known {
		return n, nil
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	s.mu.Lock()
	if _, ok := s.entries[key]; !ok {
		e := &entry{key: key, path: final, size: n, lastUse: time.Now(), complete: true, sha256: shaHex, verified: verified}
		s.entries[key] = e
		s.noteDigest(e)
		s.total += n - w.held // the reservation becomes the entry's size
		w.held = 0
		s.evictLocked(0)
	}
	s.unlockAndReap()
	return n, nil
}

// reservingWriter writes a download of unknown length into a cache file,
// reserving room (evicting unused files, keeping the free-space floor)
// ahead of the bytes, a step at a time.
type reservingWriter struct {
	s       *StreamContent
	f       *os.File
	hash    io.Writer // is told every byte written
	written int64
	held    int64 // bytes reserved in s.total
}

// reserveStep is how far ahead of the bytes room is reserved.
const reserveStep = 1 << 20

func (w *reservingWriter) Write(p []byte) (int, error) {
	if need := w.written + int64(len(p)) - w.held; need > 0 {
		// A step ahead when there is room for it, else just what is needed.
		if err := w.grow(max(need, reserveStep)); err != nil {
			if err = w.grow(need); err != nil {
				return 0, err
			}
		}
	}
	n, err := w.f.Write(p)
	w.written += int64(n)
	w.hash.Write(p[:n])
	return n, err
}

func (w *reservingWriter) grow(n int64) error {
	s := w.s
	free, ferr := s.statfs(s.partial) // without the lock: it may wait for the disk
	s.mu.Lock()
	defer s.unlockAndReap()
	if !s.evictLocked(n) {
		return fmt.Errorf("%w: %d bytes held, bound %d", errNoSpace, s.total, s.cfg.MaxBytes)
	}
	if ferr == nil && free-n < s.minFree && !s.evictBytesLocked(n+s.minFree-free) {
		return fmt.Errorf("%w: only %d bytes free on the cache's filesystem (floor %d)", errNoSpace, free, s.minFree)
	}
	s.total += n
	w.held += n
	return nil
}

// release gives back what is still reserved.
func (w *reservingWriter) release() {
	if w.held == 0 {
		return
	}
	w.s.mu.Lock()
	w.s.total -= w.held
	w.held = 0
	w.s.mu.Unlock()
}
