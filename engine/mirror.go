package engine

// Mirrors: when the store a file is read from fails for good (its retry
// window passed without progress, or it lost the file) and another
// configured store has a file of the same digest, the download goes on
// from that one, with a retry window of its own. The bytes are checked
// against the digest as ever; the file is cached under the version asked
// for. The catalog says which files share a digest (cache.MirrorUser).

import (
	"context"
	"errors"
	"sync"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

// UseMirrors implements cache.MirrorUser.
func (s *StreamContent) UseMirrors(fn func(cache.Ref) []cache.Ref) { s.mirrors.Store(&fn) }

// mirrors is what a download, or a file read into memory, knows of
// other stores' copies of its file; its owner's lock protects it.
type mirrors struct {
	asked bool
	next  []cache.Ref // not tried yet
	src   *cache.Ref  // the one read from now; nil: the file's own store
}

// source is the file to read from now: ref's own, or a mirror's.
func (mr *mirrors) source(ref cache.Ref) cache.Ref {
	if mr.src != nil {
		return *mr.src
	}
	return ref
}

// sourceLocked is the file the download reads from now.
func (f *fetcher) sourceLocked() cache.Ref { return f.mirror.source(f.d.ref) }

// mirrorable reports whether a failure is one another store's copy may
// get past: the store failed, not the file (changed, or bytes refused)
// nor the reader.
func mirrorable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, remote.ErrChanged) && !errors.Is(err, ErrDigestMismatch)
}

// switchLocked moves to the next mirror of ref (of digest stated when
// ref has none) after a terminal failure of its source, asking the
// catalog for them the first time, with mu (the owner's lock, held on
// entry and on return) released: the catalog takes its own locks. It
// reports whether it moved.
func (mr *mirrors) switchLocked(s *StreamContent, mu *sync.Mutex, ref cache.Ref, stated remote.Digest, log *zap.Logger, err error) bool {
	if !mr.asked {
		mr.asked = true
		fn := s.mirrors.Load()
		if ref.Meta.Digest.IsZero() {
			ref.Meta.Digest = stated
		}
		if fn == nil || ref.Meta.Digest.IsZero() {
			return false
		}
		mu.Unlock()
		next := (*fn)(ref)
		mu.Lock()
		mr.next = next
	}
	if len(mr.next) == 0 {
		return false
	}
	src := mr.next[0]
	mr.next = mr.next[1:]
	mr.src = &src
	log.Warn("the store failed: reading the same file (same digest) from another store",
		zap.String("from", src.URL()), zap.Error(err))
	return true
}

// tryMirrorLocked is switchLocked for a download: on a move, the mirror
// gets a retry window of its own.
func (f *fetcher) tryMirrorLocked(err error) bool {
	d := f.d
	if !f.mirror.switchLocked(d.s, &d.mu, d.ref, d.hash.stated.d, d.log, err) || d.err != nil {
		return false
	}
	f.retry = newRetrier(d.s.cfg.RetryWindow)
	return true
}
