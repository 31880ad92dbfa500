package engine

// The cache's index: its files, complete or downloading, their bytes
// against the bound, eviction, and the start and end of downloads.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

// index is the cache's table of files, complete or downloading, and their
// bytes against the bound; StreamContent.mu protects it.
type index struct {
	max     int64 // the bound (MaxBytes)
	entries map[string]*entry
	total   int64 // bytes of complete files plus reservations
	// doomed: files taken out of the index, unlinked once the lock is
	// released (unlockAndReap): an unlink of a large file waits for the
	// disk, and every Open takes the lock.
	doomed []*entry
	// byDigest finds a complete file by its SHA-256 (hex): the same bytes
	// asked under another name or from another store (a mirror) are read
	// from it, not downloaded and stored again.
	byDigest map[string]*entry
	// Files removed to make room, and their bytes.
	evictions, evictedBytes int64
}

// entry is one cached file version, complete or being downloaded.
type entry struct {
	key string
	// sha256 (hex) of a complete file, and verified: "store" when it
	// matched the digest the store states, "computed" when the store
	// states none; both empty for files cached before digests were kept.
	sha256, verified string
	path             string
	size             int64
	lastUse          time.Time
	opens            int
	complete         bool
	dl               *download // while downloading
	detached         bool      // a failed download replaced before it ended
}

// maxWholeInMemory bounds the files read as whole streams through a chunk
// table (whose size follows the file's): a store that ignores Range and
// claims more is read by pages, slowly but in bounded memory.
const maxWholeInMemory = 64 << 30

// touchLocked counts an open of e and records its use (openComplete
// records it on disk too, without the lock).
func (x *index) touchLocked(e *entry) {
	e.opens++
	e.lastUse = time.Now()
}

func (s *StreamContent) releaser(e *entry) func() {
	return func() {
		s.mu.Lock()
		e.opens--
		s.evictLocked(0)
		s.unlockAndReap()
	}
}

// startLocked reserves room for ref (free: the cache filesystem's free
// bytes, when freeErr is nil) and starts its download. The download
// creates its cache file itself, without the lock.
func (s *StreamContent) startLocked(ref cache.Ref, key string, free int64, freeErr error) (*entry, error) {
	size := ref.Meta.Size
	if size > s.cfg.MaxBytes {
		return nil, fmt.Errorf("file of %d bytes is larger than the cache (%d)", size, s.cfg.MaxBytes)
	}
	if !s.evictLocked(size) {
		return nil, errors.New("cache full of files in use")
	}
	if freeErr == nil && free-size < s.minFree && !s.evictBytesLocked(size+s.minFree-free) {
		return nil, fmt.Errorf("only %d bytes free on the cache's filesystem (floor %d)", free, s.minFree)
	}
	// Unique per download: a failed one may still be cleaning up its file.
	s.seq++
	path := filepath.Join(s.partial, key+"."+strconv.FormatUint(s.seq, 10))
	e := &entry{key: key, path: path, size: size}
	e.dl = newDownload(s, ref, e)
	e.dl.readers.handles = 1 // the opener's, before run can see none
	s.entries[key] = e
	s.downloads[e.dl] = struct{}{}
	s.total += size
	s.started += size
	e.opens++ // the download's own reference, dropped when it ends
	d := e.dl
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		d.run(s.ctx)
	}()
	return e, nil
}

// ended forgets a download that is over.
func (s *StreamContent) ended(d *download) {
	s.mu.Lock()
	delete(s.downloads, d)
	s.mu.Unlock()
}

// finish records the end of a download: complete (renamed into place) or
// failed (removed). Disk calls are made without the lock.
func (s *StreamContent) finish(e *entry, err error) {
	d := e.dl
	d.mu.Lock()
	sha, verified := d.hash.sha256, d.hash.verified
	d.mu.Unlock()
	final := filepath.Join(s.objects, objectName(e.key, sha, verified))
	if err == nil && s.commitHook != nil {
		s.commitHook()
	}
	if err == nil {
		// Nobody else uses e.path while e is incomplete.
		if rerr := os.Rename(e.path, final); rerr != nil {
			s.log.Warn("committing a download failed: the file is not kept", zap.String("path", e.path), zap.Error(rerr))
			err = rerr
		} else {
			syncDir(s.objects)
		}
	}
	s.mu.Lock()
	e.opens--
	if err == nil {
		e.path, e.complete, e.dl = final, true, nil
		e.sha256, e.verified = sha, verified
		s.noteDigest(e)
		s.evictLocked(0)
		s.unlockAndReap()
		return
	}
	if !e.detached { // else already out of the index and the total
		s.total -= e.size
		if s.entries[e.key] == e {
			delete(s.entries, e.key)
		}
	}
	s.mu.Unlock()
	os.Remove(e.path)
}

// evictLocked removes least recently used complete files not in use until
// extra more bytes fit; it reports whether they do. When even evicting
// every unused file would not make room, it evicts nothing.
func (x *index) evictLocked(extra int64) bool {
	need := x.total + extra - x.max
	if need <= 0 {
		return true
	}
	return x.evictBytesLocked(need)
}

// evictBytesLocked removes least recently used unused files totalling at
// least need bytes, or nothing when they cannot add up to that.
func (x *index) evictBytesLocked(need int64) bool {
	candidates := x.evictable()
	var possible int64
	for _, e := range candidates {
		possible += e.size
	}
	if possible < need {
		return false
	}
	var freed int64
	for _, e := range candidates {
		if freed >= need {
			break
		}
		x.removeLocked(e)
		freed += e.size
	}
	return freed >= need
}

// reserveDisk makes room for n more bytes on the cache's disk by evicting
// unused files; it reports whether it freed any.
func (s *StreamContent) reserveDisk(n int64) bool {
	s.mu.Lock()
	defer s.unlockAndReap()
	return s.evictBytesLocked(n)
}

func (x *index) evictable() []*entry {
	var es []*entry
	for _, e := range x.entries {
		if e.complete && e.opens == 0 {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].lastUse.Before(es[j].lastUse) })
	return es
}

// removeLocked takes e out of the index and the total; its file is
// unlinked by unlockAndReap.
func (x *index) removeLocked(e *entry) {
	x.total -= e.size
	delete(x.entries, e.key)
	x.dropDigest(e)
	x.doomed = append(x.doomed, e)
	x.evictions++
	x.evictedBytes += e.size
}

// unlockAndReap releases the lock, then unlinks the files evicted under
// it. A file that cannot be unlinked goes back into the index (its bytes
// are still on disk, and count).
func (s *StreamContent) unlockAndReap() {
	doomed := s.doomed
	s.doomed = nil
	s.mu.Unlock()
	for _, e := range doomed {
		err := os.Remove(e.path)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		s.log.Warn("cache eviction failed", zap.String("path", e.path), zap.Error(err))
		s.mu.Lock()
		if _, ok := s.entries[e.key]; !ok {
			s.entries[e.key] = e
			s.noteDigest(e)
			s.total += e.size
		}
		s.evictions--
		s.evictedBytes -= e.size
		s.mu.Unlock()
	}
}

// noteDigest records a complete file under its SHA-256.
func (x *index) noteDigest(e *entry) {
	if e.complete && e.sha256 != "" {
		if x.byDigest == nil {
			x.byDigest = map[string]*entry{}
		}
		x.byDigest[e.sha256] = e
	}
}

// dropDigest forgets e under its SHA-256.
func (x *index) dropDigest(e *entry) {
	if x.byDigest[e.sha256] == e {
		delete(x.byDigest, e.sha256)
	}
}

// sameBytes returns a complete file whose bytes are those the store
// states for ref (its SHA-256 and size), whatever its name; nil if none.
func (x *index) sameBytes(ref cache.Ref) *entry {
	d := ref.Meta.Digest
	if d.Alg != remote.AlgSHA256 {
		return nil
	}
	if e := x.byDigest[hex.EncodeToString([]byte(d.Sum))]; e != nil && e.complete && e.size == ref.Meta.Size {
		return e
	}
	return nil
}
