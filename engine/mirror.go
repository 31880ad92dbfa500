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

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

// UseMirrors implements cache.MirrorUser.
func (s *StreamContent) UseMirrors(fn func(cache.Ref) []cache.Ref) { s.mirrors.Store(&fn) }

// mirrors is what a download knows of other stores' copies of its file;
// download.mu protects it.
type mirrors struct {
	asked bool
	next  []cache.Ref // not tried yet
	src   *cache.Ref  // the one read from now; nil: the file's own store
}

// sourceLocked is the file the download reads from now.
func (f *fetcher) sourceLocked() cache.Ref {
	if f.mirror.src != nil {
		return *f.mirror.src
	}
	return f.d.ref
}

// mirrorable reports whether a failure is one another store's copy may
// get past: the store failed, not the file (changed, or bytes refused)
// nor the reader.
func mirrorable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, remote.ErrChanged) && !errors.Is(err, ErrDigestMismatch)
}

// tryMirrorLocked switches the download to the next mirror after a
// terminal failure of its source, asking the catalog for them the first
// time (without the lock: it takes the catalog's); it reports whether it
// did. d.mu is held on entry and on return.
func (f *fetcher) tryMirrorLocked(err error) bool {
	d := f.d
	if !f.mirror.asked {
		f.mirror.asked = true
		fn := d.s.mirrors.Load()
		ref := d.ref
		if ref.Meta.Digest.IsZero() {
			ref.Meta.Digest = d.hash.stated.d
		}
		if fn == nil || ref.Meta.Digest.IsZero() {
			return false
		}
		d.mu.Unlock()
		next := (*fn)(ref)
		d.mu.Lock()
		f.mirror.next = next
	}
	if len(f.mirror.next) == 0 || d.err != nil {
		return false
	}
	src := f.mirror.next[0]
	f.mirror.next = f.mirror.next[1:]
	f.mirror.src = &src
	f.retry = newRetrier(d.s.cfg.RetryWindow)
	d.log.Warn("the store failed: reading the same file (same digest) from another store",
		zap.String("from", src.URL()), zap.Error(err))
	return true
}
