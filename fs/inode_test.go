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
		a, b := inodeNumber(tt.version, tt.path...), inodeNumber(tt.version, tt.path...)
		if a != b {
			t.Errorf("inodeNumber(%q, %q) = %d, then %d", tt.version, tt.path, a, b)
		}
		if a <= 1 || a == ^uint64(0) {
			t.Errorf("inodeNumber(%q, %q) = %d, a reserved number", tt.version, tt.path, a)
		}
	}
}

// TestInodeNumberNeverReserved checks many inputs: go-fuse treats 0 as
// "automatic", 1 is the root and ^0 panics.
func TestInodeNumberNeverReserved(t *testing.T) {
	seen := map[uint64]string{}
	for i := range 20000 {
		key := fmt.Sprintf("m%d", i)
		n := inodeNumber(fmt.Sprint(i%7), "store", key)
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
		{"file name", func() uint64 { return inodeNumber("v", "s", "m", "a") }, func() uint64 { return inodeNumber("v", "s", "m", "b") }, "different files"},
		{"model", func() uint64 { return inodeNumber("v", "s", "m1", "a") }, func() uint64 { return inodeNumber("v", "s", "m2", "a") }, "same file name in two models"},
		{"store", func() uint64 { return inodeNumber("", "s1", "m") }, func() uint64 { return inodeNumber("", "s2", "m") }, "same model in two stores"},
		{"version", func() uint64 { return inodeNumber("v1", "s", "m", "a") }, func() uint64 { return inodeNumber("v2", "s", "m", "a") }, "two versions of a file"},
		{"segmenting", func() uint64 { return inodeNumber("", "ab", "c") }, func() uint64 { return inodeNumber("", "a", "bc") }, "paths joined differently"},
		{"depth", func() uint64 { return inodeNumber("", "s", RefreshName) }, func() uint64 { return inodeNumber("", RefreshName) }, "store .refresh vs root .refresh"},
		{"table", func() uint64 { return inodeNumber("", "s", TableName) }, func() uint64 { return inodeNumber("", TableName) }, "store models.tsv vs root models.tsv"},
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
			ia := inodeNumber(va, "s", "m", "f")
			ib := inodeNumber(vb, "s", "m", "f")
			if (ia == ib) != tt.same {
				t.Errorf("inodes %d vs %d: same = %v, want %v", ia, ib, ia == ib, tt.same)
			}
		})
	}
}
