package serve

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestStoreFiles: the files a generated SHA256SUMS lists are the model
// folders' regular files, plain ones as listed and symlinks resolved:
// one leading to a file inside the store is listed with the file it
// leads to, one leading outside, a dangling one and hidden names are not,
// and a directory reached twice is walked once.
func TestStoreFiles(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	write(t, filepath.Join(parent, "secret.txt"), []byte("secret\n"))
	write(t, filepath.Join(dir, "lenet", "info.json"), []byte(infoJSON))
	write(t, filepath.Join(dir, "lenet", "weights.bin"), []byte("w"))
	write(t, filepath.Join(dir, "lenet", "sub", "part.bin"), []byte("p"))
	write(t, filepath.Join(dir, "lenet", ".hidden"), []byte("h"))
	symlink(t, "weights.bin", filepath.Join(dir, "lenet", "link.bin"))
	symlink(t, "../../secret.txt", filepath.Join(dir, "lenet", "out.txt"))
	symlink(t, "nowhere", filepath.Join(dir, "lenet", "dangling"))
	symlink(t, "sub", filepath.Join(dir, "lenet", "subl"))
	if err := os.Mkdir(filepath.Join(dir, "lenet", ".hiddendir"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "lenet", ".hiddendir", "x.bin"), []byte("x"))

	h, err := newHandler(dir, nil, configOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	files, err := h.files()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.name+" -> "+f.realRel)
		if fi, err := os.Stat(filepath.Join(dir, f.realRel)); err != nil || !os.SameFile(fi, f.fi) {
			t.Errorf("%s: FileInfo is not that of %s (%v)", f.name, f.realRel, err)
		}
	}
	want := []string{
		"lenet/info.json -> lenet/info.json",
		"lenet/link.bin -> lenet/weights.bin",
		"lenet/sub/part.bin -> lenet/sub/part.bin",
		"lenet/weights.bin -> lenet/weights.bin",
	}
	if !slices.Equal(got, want) {
		t.Errorf("files:\n%q\nwant\n%q", got, want)
	}
}
