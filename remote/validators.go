package remote

import (
	"context"
	"fmt"
)

// Some dynamic servers and misconfigured CDNs send a new ETag on every
// request for the same bytes. Taken at its word, every ranged GET of such
// a store looks like a new version and every read fails. A store is judged
// so only on evidence: two HEADs of one file that disagree on the ETag
// while size and Last-Modified stay those of the version asked for. From
// then on its versions are compared by size and date only, and files are
// read as one unranged stream (ranges could not be proven to belong to one
// version).

// sameVersion is Meta.SameVersion, blind to ETags on a store whose ETags
// are known to be unstable.
func (s *Store) sameVersion(want, got Meta) bool {
	if s.etagUnstable.Load() {
		want.ETag, got.ETag = "", ""
	}
	return want.SameVersion(got)
}

// ETagUnstable reports whether the store was found to change ETags on
// every request.
func (s *Store) ETagUnstable() bool { return s.etagUnstable.Load() }

// ProbeUnstableETag is called when a file seems to have changed on the
// server (ErrChanged) but only its ETag differs from want. It asks twice
// more; if the two answers disagree with each other on the ETag only, the
// store is marked unstable. It reports whether this call marked it (so the
// caller logs it once).
func (s *Store) ProbeUnstableETag(ctx context.Context, want Meta, segments ...string) (bool, error) {
	if s.etagUnstable.Load() || want.ETag == "" {
		return false, nil
	}
	var seen [2]Meta
	for i := range seen {
		m, err := s.Stat(ctx, nil, segments...)
		if err != nil {
			return false, fmt.Errorf("probing the ETag of %s: %w", s.URL(segments...), err)
		}
		seen[i] = m
	}
	a, b := seen[0], seen[1]
	sameContent := func(m Meta) bool {
		return m.Size == want.Size && m.LastModified == want.LastModified
	}
	if a.ETag == b.ETag || !sameContent(a) || !sameContent(b) {
		return false, nil // a real change, or a stable ETag
	}
	return s.etagUnstable.CompareAndSwap(false, true), nil
}
