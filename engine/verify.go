package engine

// Every byte of a cached file is hashed before the file is committed, in
// file order, beside the download: one goroutine per download follows the
// bytes as they land (from the chunk's buffer, pinned, or from the cache
// file), whichever stream fetched them. SHA-256 is always computed (it is
// recorded with the cache entry); the store's own digest, when it states
// one, is checked too. A reader never gets a file's last byte before the
// digest matched: a read that ends the file waits for the hash, and on a
// mismatch fails (EIO), the file is not committed, and the next open
// fetches it afresh.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

// ErrDigestMismatch: a file's bytes did not match the digest the store
// states for it (remote's, one error wherever it is found).
var ErrDigestMismatch = remote.ErrDigestMismatch

// hashStep is how much is hashed between looks at the download's state.
const hashStep = 1 << 20

// verifier is a download's hash state; download.mu protects it.
type verifier struct {
	d *download

	at   int64 // bytes hashed so far
	done bool  // all hashed and checked (err says how it went)
	err  error // ErrDigestMismatch, wrapped
	// sha256 is the file's SHA-256 (hex) once done; verified is "store"
	// when the store stated a digest and it matched, else "computed".
	sha256, verified string
	off              bool // the hash gave up (the cache copy was given up)
	// stated is the digest the store's answers state, for a file listed
	// without one (stated.go); check is the loop's, used by it alone.
	stated stated
	check  *digestCheck
}

// digestCheck hashes a file's bytes in order: SHA-256 always, and the
// store's algorithm beside it when that is another.
type digestCheck struct {
	url   string
	want  remote.Digest
	from  string // where want came from, when not the answers (remote.SumsFile)
	sha   hash.Hash
	other hash.Hash
}

func newDigestCheck(ref cache.Ref) *digestCheck {
	want := ref.Meta.Digest
	c := &digestCheck{url: ref.URL(), want: want, from: ref.Meta.DigestFrom, sha: sha256.New()}
	if !want.IsZero() && want.Alg != remote.AlgSHA256 {
		c.other = want.New()
	}
	return c
}

func (c *digestCheck) Write(p []byte) (int, error) {
	c.sha.Write(p)
	if c.other != nil {
		c.other.Write(p)
	}
	return len(p), nil
}

// result returns the SHA-256 (hex) and how it was verified ("store" or
// "computed"), or an error wrapping ErrDigestMismatch.
func (c *digestCheck) result() (sha string, verified string, err error) {
	sum := c.sha.Sum(nil)
	sha = hex.EncodeToString(sum)
	if c.want.IsZero() {
		return sha, "computed", nil
	}
	got := remote.Digest{Alg: remote.AlgSHA256, Sum: string(sum)}
	if c.other != nil {
		got = remote.Digest{Alg: c.want.Alg, Sum: string(c.other.Sum(nil))}
	}
	if got != c.want {
		from := ""
		if c.from != "" {
			from = " as " + c.from + " names it"
		}
		return sha, "", fmt.Errorf("%s: %w (expected %s%s, got %s)", c.url, ErrDigestMismatch, c.want, from, got)
	}
	return sha, "store", nil
}

// logMismatch logs a refused file once, naming both digests.
func logMismatch(log *zap.Logger, err error) {
	log.Error("digest mismatch: the file is refused and not cached", zap.Error(err))
}

// activeLocked reports whether reads of the file's end must wait for the hash:
// while the file is cached and the hash has not given up.
func (v *verifier) activeLocked() bool {
	return v.d.f != nil && v.d.noCache == nil && !v.off && !v.d.s.cfg.NoVerify
}

// loop hashes the file in order until all of it is hashed, the
// download gave up its cache copy, or ctx ends. It runs on run's
// goroutine group.
func (v *verifier) loop(ctx context.Context) {
	d := v.d
	check := newDigestCheck(d.ref)
	v.check = check
	buf := make([]byte, hashStep)
	for {
		p, done, ok := v.next(ctx, buf)
		if !ok {
			return
		}
		check.Write(p)
		if done != nil {
			done()
		}
		d.mu.Lock()
		v.at += int64(len(p))
		if v.at == d.size {
			check.learn(v.stated.d, v.at)
			v.done = true
			v.sha256, v.verified, v.err = check.result()
			if v.err != nil {
				logMismatch(d.log, v.err)
			}
		}
		over := v.done
		d.broadcastLocked()
		d.mu.Unlock()
		if over {
			return
		}
	}
}

// next returns the next bytes to hash (done releases them), waiting
// for them to land; ok is false when hashing is over.
func (v *verifier) next(ctx context.Context, buf []byte) (p []byte, done func(), ok bool) {
	d := v.d
	d.mu.Lock()
	for {
		if v.done || d.err != nil || d.finished || ctx.Err() != nil {
			d.mu.Unlock()
			return nil, nil, false
		}
		if !v.activeLocked() {
			v.off = true
			d.broadcastLocked()
			d.mu.Unlock()
			return nil, nil, false
		}
		if d.size == 0 {
			d.mu.Unlock()
			return nil, nil, true
		}
		at := v.at
		k := int(at / d.chunk)
		c := &d.t.c[k]
		base := int64(k) * d.chunk
		avail := int64(0)
		switch c.state {
		case chunkOnDisk:
			avail = d.t.chunkLen(k)
		case chunkFetching, chunkInMemory:
			avail = c.filled
		}
		if n := min(avail-(at-base), hashStep); n > 0 {
			v.check.learn(v.stated.d, at) // before the bytes of its answer are hashed
			if r, ok := d.pinLocked(at, at+n); ok {
				d.mu.Unlock()
				return r.Data, r.Done, true
			}
			f := d.f
			d.mu.Unlock()
			// In the cache file (on disk, or spliced straight into it);
			// those bytes do not change.
			if _, err := f.ReadAt(buf[:n], at); err != nil && err != io.EOF {
				d.giveUpCache(fmt.Errorf("cache read for the hash: %w", err))
				return nil, nil, false
			}
			return buf[:n], nil, true
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		d.mu.Lock()
	}
}

// chunkLocked is the chunk the hash needs next, -1 when none.
func (v *verifier) chunkLocked() int {
	d := v.d
	if !v.activeLocked() || v.done || d.size == 0 {
		return -1
	}
	return int(v.at / d.chunk)
}

// endWaitsLocked reports whether a read of [off, end) must wait before it
// is answered: it ends the file and the hash is not done; err is the
// hash's failure.
func (v *verifier) endWaitsLocked(end int64) (wait bool, err error) {
	d := v.d
	if end < d.size || !v.activeLocked() {
		return false, nil
	}
	if v.done {
		return false, v.err
	}
	return true, nil
}
