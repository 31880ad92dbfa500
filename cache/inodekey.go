package cache

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"go.uber.org/zap"
)

// inodeKeyName is the file, in the metadata directory, that holds the key
// of the mount's inode numbers.
const inodeKeyName = "inode.key"

// InodeKey returns a secret key for hashing store-controlled names into
// inode numbers: without it, a store could craft two names with one
// number, and go-fuse would alias one path's node to the other. The key is
// kept in the metadata directory, so numbers survive remounts on one cache
// dir; without a metadata directory (or when it cannot be written) it is
// random for this process.
func (c *Catalog) InodeKey() []byte {
	c.inodeKeyOnce.Do(func() { c.inodeKey = loadInodeKey(c.cfg.MetaDir, c.log) })
	return c.inodeKey
}

func loadInodeKey(dir string, log *zap.Logger) []byte {
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh) // never fails (crypto/rand panics first)
	if dir == "" {
		return fresh
	}
	p := filepath.Join(dir, inodeKeyName)
	if key, err := os.ReadFile(p); err == nil && len(key) == 32 {
		return key
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("inode key unreadable: inode numbers will change at the next mount", zap.String("path", p), zap.Error(err))
		return fresh
	}
	if err := os.MkdirAll(dir, 0o700); err == nil {
		if err = writeFileAtomic(p, fresh); err == nil {
			return fresh
		}
		log.Warn("inode key not kept: inode numbers will change at the next mount", zap.String("path", p), zap.Error(err))
	}
	return fresh
}

// writeFileAtomic writes data to a temporary file and renames it into place.
func writeFileAtomic(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}
