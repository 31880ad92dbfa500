package engine

// A file listed without a digest (a listing gives sizes, not digests; a
// store with no SHA256SUMS) may still have one stated by the answers that
// carry its bytes (Repr-Digest on every GET of modelstorefs serve,
// x-goog-hash, ...): it is learned from the first, checked against every
// other, and the bytes are verified against it.

import (
	"fmt"
	"sync"

	"github.com/modelstorefs/modelstorefs/remote"
)

// stated is the digest a file's answers state; its owner's lock protects
// it.
type stated struct {
	d remote.Digest
}

// note records the digest one answer states. Two answers stating two
// digests of one algorithm are two versions of the file: ErrChanged.
func (s *stated) note(url string, got remote.Digest) error {
	switch {
	case got.IsZero():
	case s.d.IsZero():
		s.d = got
	case got.Alg == s.d.Alg && got.Sum != s.d.Sum:
		return fmt.Errorf("GET %s: %w (one answer states %s, another %s)", url, remote.ErrChanged, s.d, got)
	case got.Stronger(s.d):
		s.d = got
	}
	return nil
}

// noteBody is note for a GET's body, under its owner's lock mu, before
// any of its bytes is hashed; on a conflict the body is closed.
func (s *stated) noteBody(mu *sync.Mutex, url string, body *remote.Body) error {
	mu.Lock()
	err := s.note(url, body.Digest)
	mu.Unlock()
	if err != nil {
		body.Close()
	}
	return err
}

// learn takes d as the digest to check when the file was listed without
// one, and while it still can: SHA-256 at any time (it is always
// computed), another algorithm only before the first byte is hashed.
func (c *digestCheck) learn(d remote.Digest, hashed int64) {
	if !c.want.IsZero() || d.IsZero() {
		return
	}
	switch {
	case d.Alg == remote.AlgSHA256:
		c.want, c.from = d, ""
	case hashed == 0:
		c.want, c.other, c.from = d, d.New(), ""
	}
}
