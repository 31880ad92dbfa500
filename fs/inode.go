package fs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"hash/fnv"
	"strconv"

	"github.com/modelstorefs/modelstorefs/cache"
)

// inodeNumber derives a stable inode number from a node's path and content
// version, so that the same file keeps its number across lookups and
// remounts (on one cache dir), while new content gets a new inode (and
// never stale page cache). The path and version come from the store, and
// go-fuse reuses the node of an existing number: the hash is keyed (HMAC
// with the cache dir's secret key), so no store can craft two paths with
// one number.
func (f *FS) inodeNumber(version string, path ...string) uint64 {
	// The keyed state is kept (a pool of HMACs): a listing of a large
	// store derives a hundred thousand numbers.
	h := f.inoHashes.Get().(hash.Hash)
	defer f.inoHashes.Put(h)
	return inodeOf(h, version, path...)
}

func keyedInode(key []byte, version string, path ...string) uint64 {
	return inodeOf(hmac.New(sha256.New, key), version, path...)
}

func inodeOf(h hash.Hash, version string, path ...string) uint64 {
	h.Reset()
	for _, p := range path {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	h.Write([]byte(version))
	var sum [sha256.Size]byte
	n := binary.LittleEndian.Uint64(h.Sum(sum[:0]))
	// 0 means "automatic" to go-fuse, 1 is the root, ^0 is invalid.
	if n <= 1 || n == ^uint64(0) {
		n = 2
	}
	return n
}

// fileVersion is what makes two versions of a model file differ.
func fileVersion(f *cache.File) string {
	switch f.Kind {
	case cache.KindRemote:
		return "r" + f.Meta.ETag + "\x00" + f.Meta.LastModified + "\x00" + strconv.FormatInt(f.Meta.Size, 10)
	case cache.KindSymlink:
		return "l" + f.Target
	}
	h := fnv.New64a()
	h.Write(f.Bytes())
	return "d" + strconv.FormatUint(h.Sum64(), 16)
}
