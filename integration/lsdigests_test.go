package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/serve"
)

// TestLsJSONDigests: ls --json gives each model's store files with the
// digest the store's SHA256SUMS names, and, once a file is in the cache
// (prefetch), the SHA-256 of the cached copy, verified against the
// store's digest; a warm ls (from the kept list) gives them too.
func TestLsJSONDigests(t *testing.T) {
	t.Parallel() // its own store and cache directory
	src := itest.CopyStore(t)
	if _, n, err := serve.WriteSums(testutil.Ctx(t), src); err != nil || n == 0 {
		t.Fatalf("WriteSums: %d files, %v", n, err)
	}
	s := itest.StartGoStore(t, src, "/")
	cacheDir := t.TempDir()
	store := []string{"--cache-dir", cacheDir, "--store", "a=" + s.URL}
	if out, code := runExit(t, nil, append([]string{"prefetch"}, append(store, "a/lenet")...)...); code != 0 {
		t.Fatalf("prefetch: exit %d\n%s", code, out)
	}
	const weights = "snapshot_iter_28140.caffemodel"
	data, err := os.ReadFile(filepath.Join(src, "lenet", weights))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	for _, refresh := range []bool{true, false} {
		args := append([]string{"ls", "--json", "--filter", "mnist"}, store...)
		if refresh {
			args = append(args, "--refresh")
		}
		out, code := runExit(t, nil, args...)
		var rows []struct {
			Model string
			Files []struct {
				Name, Digest, SHA256, Verified string
				DigestFrom                     string `json:"digest_from"`
			} `json:"files"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 {
			t.Fatalf("ls --json (refresh %v): exit %d\n%s", refresh, code, out)
		}
		var found bool
		for _, f := range rows[0].Files {
			if f.Name != weights {
				continue
			}
			found = true
			if f.Digest != "sha-256:"+want || f.SHA256 != want || f.Verified != "store" || f.DigestFrom != "SHA256SUMS" {
				t.Errorf("refresh %v: %s: %+v, want digest sha-256:%s from SHA256SUMS, the cached copy's SHA-256 verified by the store", refresh, weights, f, want)
			}
		}
		if !found {
			t.Errorf("refresh %v: no %s in %s", refresh, weights, out)
		}
	}
}
