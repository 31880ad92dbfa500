package faults

// Fault-matrix row for issue 19's SHA256SUMS: a store whose SHA256SUMS
// names a wrong digest for one file.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

func fltSumsCases() []fltCase {
	return []fltCase{
		{"sums-wrong-line", "SHA256SUMS names a wrong digest for the weights (the answers state none)", false, fltRowSumsWrongLine},
		{"mirror", "the weights' store fails every GET; another configured store lists the same digest in its SHA256SUMS", false, fltRowMirror},
	}
}

// fltSumsFile is a SHA256SUMS of files, with the line of wrong naming the
// digest of other bytes.
func fltSumsFile(files map[string][]byte, wrong string) []byte {
	var lines []string
	for p, data := range files {
		if p == "master.json" {
			continue
		}
		sum := sha256.Sum256(data)
		if p == wrong {
			sum = sha256.Sum256(append([]byte("other "), data...))
		}
		lines = append(lines, fmt.Sprintf("%x  %s", sum, p))
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n")
}

func fltRowSumsWrongLine(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	files := fltStoreFiles(t, 3<<20)
	files["SHA256SUMS"] = fltSumsFile(files, fltWeights)
	srv := fltNewServer(t, "127.0.0.1", "/store/", files)
	m = itest.StartMount(t, fltStores(srv), "--chunk-size", "1MiB")
	model := filepath.Join(m.Dir, "s", "big")
	out, err := exec.Command("cp", "-r", model, filepath.Join(t.TempDir(), "big")).CombinedOutput()
	if err == nil {
		fltBug(t, r, "cp -r of a model whose weights do not match SHA256SUMS exited 0\n%s", out)
	}
	r.saw = fmt.Sprintf("cp -r exit %d", exitCode(err))
	if n := fltLogCount(m, "digest mismatch", "SHA256SUMS"); n == 0 {
		t.Errorf("no log line names the digest mismatch and SHA256SUMS:\n%s", m.Logs.String())
	}
	// error.txt names the file and both digests.
	var why []byte
	testutil.WaitFor(t, "error.txt to name the refused weights", func() bool {
		why, _ = os.ReadFile(filepath.Join(model, "error.txt"))
		return bytes.Contains(why, []byte("weights.caffemodel: refused")) && bytes.Contains(why, []byte("SHA256SUMS"))
	})
	// The rest of the model, and the other model, are fine (files the
	// folder shows under another name, DIGITS', are left out).
	var ok, bad []string
	for p, want := range files {
		if p == fltWeights || !strings.Contains(p, "/") {
			continue
		}
		got, err := os.ReadFile(filepath.Join(m.Dir, "s", p))
		switch {
		case os.IsNotExist(err):
		case err != nil || !bytes.Equal(got, want):
			bad = append(bad, fmt.Sprintf("%s (%v)", p, err))
		default:
			ok = append(ok, p)
		}
	}
	if len(bad) > 0 || len(ok) < 8 {
		fltBug(t, r, "files SHA256SUMS names rightly: %d read, refused: %q", len(ok), bad)
	}
	r.bytes = fmt.Sprintf("%d other files right", len(ok))
	r.recovery = "weights refused (EIO), named in error.txt; the rest read"
}

// fltRowMirror: two stores with the same model; the first fails every
// GET of the weights. The copy reads them from the second, which lists
// the same digest in its SHA256SUMS.
func fltRowMirror(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	files := fltStoreFiles(t, 3<<20)
	files["SHA256SUMS"] = fltSumsFile(files, "")
	a := fltNewServer(t, "127.0.0.1", "/store/", files)
	b := fltNewServer(t, "127.0.0.1", "/mirror/", files)
	var failed atomic.Int32
	a.handle(a.base+fltWeights, func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet {
			failed.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		a.Answer(w, req, nil)
	})
	m = itest.StartMount(t, []string{"s=" + a.url(), "t=" + b.url()}, "--retry-window", "2s")
	dst := filepath.Join(t.TempDir(), "big")
	out, err := exec.Command("cp", "-r", filepath.Join(m.Dir, "s", "big"), dst).CombinedOutput()
	r.saw = fmt.Sprintf("cp -r exit %d (%d GETs refused by the first store)", exitCode(err), failed.Load())
	if err != nil {
		fltBug(t, r, "cp -r with the weights on a mirror: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "model.caffemodel"))
	var ok bool
	r.bytes, ok = fltVerify(got, files[fltWeights])
	if !ok {
		fltBug(t, r, "wrong bytes from the mirror")
	}
	if fltLogCount(m, "from another store") == 0 {
		t.Error("no log line says the file was read from another store")
	}
	r.recovery = "read from the store with the same digest"
}
