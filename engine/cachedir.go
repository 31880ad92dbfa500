package engine

// The cache directory on disk: objects/ holds complete files (named by
// their key and digest), partial/ the downloads of each live process, in
// a directory of its own held by a lock.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// createLocked creates a new lock file p-*.lock in dir and locks it.
func createLocked(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "p-*.lock")
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return f, nil
}

// lockedByOther reports whether a live process holds the lock file path.
func lockedByOther(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close() // drops our probe lock, if we got it
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil
}

// clearStalePartials removes the partial downloads of processes that are
// gone (their lock is free) and anything else left in dir.
func clearStalePartials(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(name, ".lock") && !e.IsDir():
			if lockedByOther(name) {
				continue
			}
			if err := os.RemoveAll(strings.TrimSuffix(name, ".lock")); err != nil {
				return err
			}
			os.Remove(name)
		case e.IsDir():
			if _, err := os.Stat(name + ".lock"); err == nil {
				continue // judged by its lock
			}
			if err := os.RemoveAll(name); err != nil {
				return err
			}
		default:
			os.Remove(name)
		}
	}
	return nil
}

// createFile creates the download's cache file at its full size (sparse:
// run reserves its blocks).
func createFile(path string, size int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cache: %w", err)
	}
	return f, nil
}

// objectName is the name of a complete file in the objects directory:
// its key, and its SHA-256 and how it was verified when known (they are
// kept across restarts in the name, costing no disk space).
func objectName(key, sha256, verified string) string {
	if sha256 == "" {
		return key
	}
	return key + "." + sha256 + "." + verified
}

// parseObjectName reads what objectName wrote.
func parseObjectName(name string) *entry {
	parts := strings.Split(name, ".")
	if len(parts) == 3 && len(parts[1]) == 64 && (parts[2] == "store" || parts[2] == "computed") {
		return &entry{key: parts[0], sha256: parts[1], verified: parts[2]}
	}
	return &entry{key: name}
}

func freeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// findObject looks in the objects directory for a complete file of key
// (another process may have committed it); nil when there is none.
func findObject(objects, key string) *entry {
	matches, _ := filepath.Glob(filepath.Join(objects, key+"*"))
	for _, p := range matches {
		e := parseObjectName(filepath.Base(p))
		info, err := os.Stat(p)
		if e.key != key || err != nil || !info.Mode().IsRegular() {
			continue
		}
		e.path, e.size, e.lastUse, e.complete = p, info.Size(), time.Now(), true
		return e
	}
	return nil
}
