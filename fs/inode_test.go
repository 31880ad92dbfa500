package fs

import (
	"fmt"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

func TestInodeNumberDeterministic(t *testing.T) {
	tests := []struct {
		version string
		path    []string
	}{
		{"", []string{".refresh"}},
		{"", []string{"sample"}},
		{"", []string{"sample", "lenet"}},
		{"r\"abc\"\x00Mon\x00123", []string{"sample", "lenet", "model.caffemodel"}},
		{"lmodel.caffemodel", []string{"sample", "lenet", "snapshot_iter_28140.caffemodel"}},
	}
	for _, tt := range tests {
		a, b := keyedInode(testInoKey, tt.version, tt.path...), keyedInode(testInoKey, tt.version, tt.path...)
		if a != b {
			t.Errorf("keyedInode(%q, %q) = %d, then %d", tt.version, tt.path, a, b)
		}
		if a <= 1 || a == ^uint64(0) {
			t.Errorf("keyedInode(%q, %q) = %d, a reserved number", tt.version, tt.path, a)
		}
	}
}

// TestInodeNumberNeverReserved checks many inputs: go-fuse treats 0 as
// "automatic", 1 is the root and ^0 panics.
func TestInodeNumberNeverReserved(t *testing.T) {
	seen := map[uint64]string{}
	for i := range 20000 {
		key := fmt.Sprintf("m%d", i)
		n := keyedInode(testInoKey, fmt.Sprint(i%7), "store", key)
		if n == 0 || n == 1 || n == ^uint64(0) {
			t.Fatalf("inodeNumber for %s = %d", key, n)
		}
		if prev, ok := seen[n]; ok {
			t.Fatalf("inodeNumber collision: %s and %s both %d", prev, key, n)
		}
		seen[n] = key
	}
}

func TestInodeNumberDiffers(t *testing.T) {
	tests := []struct {
		name   string
		a, b   func() uint64
		reason string
	}{
		{"file name", func() uint64 { return keyedInode(testInoKey, "v", "s", "m", "a") }, func() uint64 { return keyedInode(testInoKey, "v", "s", "m", "b") }, "different files"},
		{"model", func() uint64 { return keyedInode(testInoKey, "v", "s", "m1", "a") }, func() uint64 { return keyedInode(testInoKey, "v", "s", "m2", "a") }, "same file name in two models"},
		{"store", func() uint64 { return keyedInode(testInoKey, "", "s1", "m") }, func() uint64 { return keyedInode(testInoKey, "", "s2", "m") }, "same model in two stores"},
		{"version", func() uint64 { return keyedInode(testInoKey, "v1", "s", "m", "a") }, func() uint64 { return keyedInode(testInoKey, "v2", "s", "m", "a") }, "two versions of a file"},
		{"segmenting", func() uint64 { return keyedInode(testInoKey, "", "ab", "c") }, func() uint64 { return keyedInode(testInoKey, "", "a", "bc") }, "paths joined differently"},
		{"depth", func() uint64 { return keyedInode(testInoKey, "", "s", RefreshName) }, func() uint64 { return keyedInode(testInoKey, "", RefreshName) }, "store .refresh vs root .refresh"},
		{"table", func() uint64 { return keyedInode(testInoKey, "", "s", TableName) }, func() uint64 { return keyedInode(testInoKey, "", TableName) }, "store models.tsv vs root models.tsv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a, b := tt.a(), tt.b(); a == b {
				t.Errorf("%s share inode %d", tt.reason, a)
			}
		})
	}
}

func TestFileVersion(t *testing.T) {
	meta := remote.Meta{Size: 100, ETag: `"e1"`, LastModified: "Mon, 02 Jan 2006 15:04:05 GMT"}
	base := cache.File{Name: "f", Kind: cache.KindRemote, Remote: "f", Meta: meta}
	with := func(change func(*cache.File)) *cache.File {
		f := base
		change(&f)
		return &f
	}
	tests := []struct {
		name string
		a, b *cache.File
		same bool
	}{
		{"remote same", &base, with(func(f *cache.File) {}), true},
		{"remote name irrelevant", &base, with(func(f *cache.File) { f.Name = "g" }), true},
		{"remote etag", &base, with(func(f *cache.File) { f.Meta.ETag = `"e2"` }), false},
		{"remote size", &base, with(func(f *cache.File) { f.Meta.Size = 101 }), false},
		{"remote last-modified", &base, with(func(f *cache.File) { f.Meta.LastModified = "Tue, 03 Jan 2006 15:04:05 GMT" }), false},
		{"data same", &cache.File{Kind: cache.KindData, Data: []byte("abc")}, &cache.File{Kind: cache.KindData, Data: []byte("abc")}, true},
		{"data bytes", &cache.File{Kind: cache.KindData, Data: []byte("abc")}, &cache.File{Kind: cache.KindData, Data: []byte("abd")}, false},
		{"data length", &cache.File{Kind: cache.KindData, Data: []byte("abc")}, &cache.File{Kind: cache.KindData, Data: []byte("abc\n")}, false},
		{"symlink target", &cache.File{Kind: cache.KindSymlink, Target: "a"}, &cache.File{Kind: cache.KindSymlink, Target: "b"}, false},
		{"symlink vs data", &cache.File{Kind: cache.KindSymlink, Target: "a"}, &cache.File{Kind: cache.KindData, Data: []byte("a")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			va, vb := fileVersion(tt.a), fileVersion(tt.b)
			if (va == vb) != tt.same {
				t.Errorf("fileVersion %q vs %q: same = %v, want %v", va, vb, va == vb, tt.same)
			}
			ia := keyedInode(testInoKey, va, "s", "m", "f")
			ib := keyedInode(testInoKey, vb, "s", "m", "f")
			if (ia == ib) != tt.same {
				t.Errorf("inodes %d vs %d: same = %v, want %v", ia, ib, ia == ib, tt.same)
			}
		})
	}
}

var testInoKey = []byte("a test key of thirty-two bytes..")

// TestInodeNumberKeyed: numbers depend on the key (a store cannot compute
// them), and the key is kept in the metadata dir, so a second catalog on
// the same cache dir numbers every node alike.
func TestInodeNumberKeyed(t *testing.T) {
	other := []byte("another key of thirty-two bytes.")
	if keyedInode(testInoKey, "v", "s", "m", "f") == keyedInode(other, "v", "s", "m", "f") {
		t.Error("two keys gave one inode number")
	}
	meta := t.TempDir()
	newCat := func() *cache.Catalog {
		c := cache.NewCatalog(nil, nil, cache.Config{MetaDir: meta})
		t.Cleanup(c.Close)
		return c
	}
	a, b := newCat().InodeKey(), newCat().InodeKey()
	if len(a) != 32 || string(a) != string(b) {
		t.Errorf("keys %x and %x: want one 32-byte key kept across catalogs", a, b)
	}
	if c := cache.NewCatalog(nil, nil, cache.Config{}); string(c.InodeKey()) == string(a) {
		t.Error("a catalog without a metadata dir reused the kept key")
	} else {
		c.Close()
	}
}
