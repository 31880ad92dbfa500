package engine

// Checking the cache against the digests recorded with its files: a file
// damaged on disk after its commit is found and dropped (the next open
// fetches it again). Files cached before digests were kept get theirs
// computed and recorded. Files in use are checked but not dropped.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.uber.org/zap"
)

// VerifyReport tells what VerifyCache found.
type VerifyReport struct {
	Checked  int      // files hashed
	Bytes    int64    // their bytes
	Recorded int      // files that had no digest and now have one
	Damaged  []string // files whose bytes no longer match (cache paths)
	Dropped  int      // of those, removed (the others were in use)
}

// VerifyCache rehashes every complete file of the cache against its
// recorded SHA-256, dropping the damaged ones that are not in use. It
// reads without the cache's lock; progress, if set, is told each file's
// bytes as they are hashed.
func (s *StreamContent) VerifyCache(ctx context.Context, progress func(n int64)) (VerifyReport, error) {
	var rep VerifyReport
	s.mu.Lock()
	var files []*entry
	for _, e := range s.entries {
		if e.complete {
			e.opens++ // kept while it is read
			files = append(files, e)
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		for _, e := range files {
			e.opens--
		}
		s.evictLocked(0)
		s.unlockAndReap()
	}()
	for _, e := range files {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		sum, err := hashFile(e.path, progress)
		if err != nil {
			if os.IsNotExist(err) {
				continue // evicted by another process meanwhile
			}
			return rep, fmt.Errorf("cache check: %w", err)
		}
		rep.Checked++
		rep.Bytes += e.size
		switch {
		case e.sha256 == "":
			if recordDigest(s, e, sum) {
				rep.Recorded++
			}
		case e.sha256 != sum:
			rep.Damaged = append(rep.Damaged, e.path)
			s.log.Error("cache file damaged: its bytes no longer match the digest recorded at its commit",
				zap.String("path", e.path), zap.String("expected", "sha-256:"+e.sha256), zap.String("actual", "sha-256:"+sum))
			s.mu.Lock()
			if e.opens == 1 && s.entries[e.key] == e { // only the check's own hold
				s.removeLocked(e)
				rep.Dropped++
			}
			s.unlockAndReap()
		}
	}
	return rep, nil
}

// hashFile is the SHA-256 (hex) of a file.
func hashFile(path string, progress func(int64)) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	var w io.Writer = h
	if progress != nil {
		w = io.MultiWriter(h, progressWriter(progress))
	}
	if _, err := io.Copy(w, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) {
	p(int64(len(b)))
	return len(b), nil
}

// recordDigest renames a file cached without a digest to the name that
// records it.
func recordDigest(s *StreamContent, e *entry, sum string) bool {
	final := filepath.Join(filepath.Dir(e.path), objectName(e.key, sum, "computed"))
	if err := os.Rename(e.path, final); err != nil {
		return false
	}
	s.mu.Lock()
	e.path, e.sha256, e.verified = final, sum, "computed"
	s.noteDigest(e)
	s.mu.Unlock()
	return true
}
