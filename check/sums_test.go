package check

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/serve"
)

// sumsStore is a one-model store whose SHA256SUMS is sums, with %s in it
// replaced by the true digest of the file it names.
func sumsStore(t *testing.T, sums string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"master.json":        `{"msg": "sums", "children": ["lenet"]}`,
		"lenet/info.json":    `{"name": "LeNet", "framework": "caffe", "snapshot file": "w.caffemodel", "model file": "net.prototxt"}`,
		"lenet/w.caffemodel": "weights",
		"lenet/net.prototxt": "net",
	}
	testutil.WriteTree(t, dir, files)
	if sums != "" {
		var lines []string
		for _, l := range strings.Split(sums, "\n") {
			if name, ok := strings.CutPrefix(l, "TRUE  "); ok {
				l = fmt.Sprintf("%x  %s", sha256.Sum256([]byte(files[name])), name)
			}
			lines = append(lines, l)
		}
		if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var zeros = strings.Repeat("0", 64)

func TestSums(t *testing.T) {
	wrong := fmt.Sprintf("lenet: error: w.caffemodel: sha256 mismatch (SHA256SUMS says %s, the bytes are %x)", zeros, sha256.Sum256([]byte("weights")))
	tests := []struct {
		name       string
		sums       string
		on         bool
		want       []string // lines of the report
		importable int
	}{
		{"all match", "TRUE  lenet/w.caffemodel\nTRUE  lenet/info.json\n", true, nil, 1},
		{"no SHA256SUMS", "", true, nil, 1},
		{"a wrong line", "TRUE  lenet/info.json\n" + zeros + "  lenet/w.caffemodel\n", true, []string{wrong}, 0},
		{"not verified when off", zeros + "  lenet/w.caffemodel\n", false, nil, 1},
		{"a missing file", "TRUE  lenet/w.caffemodel\n" + zeros + "  lenet/gone.bin\n", true,
			[]string{"lenet: error: gone.bin: named in SHA256SUMS but missing"}, 0},
		{"a malformed line", "TRUE  lenet/w.caffemodel\nnot a digest\n" + zeros + "  ../escape\n", true,
			[]string{": warning: SHA256SUMS: 2 malformed lines skipped"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := sumsStore(t, tc.sums)
			h, err := serve.Handler(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Dir(ctx(t), dir, h, []string{"lenet"}, fast, WithSums(tc.on))
			if err != nil {
				t.Fatal(err)
			}
			out := rep.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("report lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "SHA256SUMS") && len(tc.want) == 0 {
				t.Errorf("unexpected SHA256SUMS line:\n%s", out)
			}
			if rep.Importable() != tc.importable {
				t.Errorf("%d importable, want %d:\n%s", rep.Importable(), tc.importable, out)
			}
		})
	}
}
