package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
)

// Administration of a cache directory by a process beside the ones using
// it (modelstorefs cache du, cache clear, while a mount runs). It works on
// the directory, not through a StreamContent: opening one indexes every
// file and evicts down to its own MaxBytes, and its index could not see
// the files another process has open anyway. Those are found in /proc
// instead: every process serving a complete file holds it open (fileHandle)
// for as long as the file is open, and files still downloading are in
// partial/, which is never touched here. A process that indexed a file
// removed here finds it gone at its next open and downloads it again
// (openComplete), and stops counting it when it evicts it.

// CacheObject is one complete file of a cache directory.
type CacheObject struct {
	Key  string // the version's key (cache.Ref.Key)
	Path string
	Size int64
	// LastUse is the last open (the file's mtime), the eviction order.
	LastUse time.Time
	// SHA256 and Verified, when the file was cached with them.
	SHA256, Verified string
}

// layout of a cache directory, as NewStreamContent makes it.
func objectsDir(cacheDir string) string { return filepath.Join(cacheDir, "v2", "objects") }
func partialDir(cacheDir string) string { return filepath.Join(cacheDir, "v2", "partial") }

// ListObjects returns the complete files of the cache under cacheDir,
// least recently used first; none when it has none yet.
func ListObjects(cacheDir string) ([]CacheObject, error) {
	des, err := os.ReadDir(objectsDir(cacheDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	var out []CacheObject
	for _, de := range des {
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue // gone meanwhile (evicted), or not ours
		}
		e := parseObjectName(de.Name())
		out = append(out, CacheObject{Key: e.key, Path: filepath.Join(objectsDir(cacheDir), de.Name()), Size: info.Size(),
			LastUse: info.ModTime(), SHA256: e.sha256, Verified: e.verified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUse.Before(out[j].LastUse) })
	return out, nil
}

// Activity is what the processes sharing a cache directory do now.
type Activity struct {
	Processes    int   // live processes using the cache (mounts, imports, prefetches)
	PartialBytes int64 // bytes of their downloads in progress, on disk
}

// CacheActivity looks at the partial downloads of cacheDir: one directory
// per process, held by a lock while the process lives (createLocked).
func CacheActivity(cacheDir string) (Activity, error) {
	var a Activity
	des, err := os.ReadDir(partialDir(cacheDir))
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("cache dir: %w", err)
	}
	for _, de := range des {
		lock := filepath.Join(partialDir(cacheDir), de.Name())
		if de.IsDir() || !strings.HasSuffix(lock, ".lock") || !lockedByOther(lock) {
			continue
		}
		a.Processes++
		_ = filepath.WalkDir(strings.TrimSuffix(lock, ".lock"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					a.PartialBytes += info.Size()
				}
			}
			return nil
		})
	}
	return a, nil
}

// RemoveObjects unlinks the given files of a cache, except those a
// process has open now: it returns what it removed and what it kept. A
// file already gone counts as removed.
func RemoveObjects(objs []CacheObject) (removed, kept []CacheObject, err error) {
	open := openFileNames()
	var errs []error
	for _, o := range objs {
		if open[filepath.Base(o.Path)] {
			kept = append(kept, o)
			continue
		}
		if rerr := os.Remove(o.Path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			errs = append(errs, rerr)
			kept = append(kept, o)
			continue
		}
		removed = append(removed, o)
	}
	if len(errs) > 0 {
		err = fmt.Errorf("%d files could not be removed: %w", len(errs), errors.Join(errs...))
	}
	return removed, kept, err
}

// openFileNames returns the base names of the files under an objects
// directory that some process has open, from /proc/*/fd (the processes
// this one may look into: its user's, or all as root). Object names are
// hashes, so a base name is as good as the file.
func openFileNames() map[string]bool {
	open := map[string]bool{}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil || !strings.Contains(target, string(filepath.Separator)+"objects"+string(filepath.Separator)) {
			continue
		}
		open[filepath.Base(strings.TrimSuffix(target, " (deleted)"))] = true
	}
	return open
}

// CacheState says whether ref's file is complete in this cache (committed:
// kept across restarts), or at least has an entry: complete or being
// downloaded into the cache, not read into memory for want of room.
func (s *StreamContent) CacheState(ref cache.Ref) (complete, cached bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[ref.Key()]
	return ok && e.complete, ok
}

// HasObject reports whether the cache under cacheDir holds the complete
// file of the version key (under any of the names objectName gives it).
func HasObject(cacheDir, key string) bool {
	if _, err := os.Stat(filepath.Join(objectsDir(cacheDir), key)); err == nil {
		return true
	}
	named, _ := filepath.Glob(filepath.Join(objectsDir(cacheDir), key+".*"))
	return len(named) > 0
}
