package serve

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote"
)

func withHashGate(g <-chan struct{}) Option { return func(c *serverConfig) { c.gate = g } }

// digestStore is a store with two models, a hidden file and a file
// outside any model folder.
func digestStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "lenet", "info.json"), []byte(infoJSON))
	write(t, filepath.Join(dir, "lenet", "weights.bin"), []byte(strings.Repeat("weights", 10_000)))
	write(t, filepath.Join(dir, "lenet", "sub", "part.bin"), []byte("part\n"))
	write(t, filepath.Join(dir, "lenet", ".secret"), []byte("hidden\n"))
	write(t, filepath.Join(dir, "torch", "info.json"), []byte(infoJSON))
	write(t, filepath.Join(dir, "notamodel", "readme.txt"), []byte("not a model\n"))
	return dir
}

// startServer serves dir with digests kept in cache until the test ends.
func startServer(t *testing.T, dir, cache string, opts ...Option) (*Server, *httptest.Server) {
	t.Helper()
	s, err := NewServer(dir, nil, append([]Option{WithDigestCache(cache)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, ts
}

func request(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	f := &fixture{ts: &httptest.Server{URL: url}}
	return f.do(t, method, "", hdr)
}

func reprOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// waitDigest polls path until it carries Repr-Digest want.
func waitDigest(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := request(t, http.MethodHead, url, nil)
		got := resp.Header.Get("Repr-Digest")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("HEAD %s: Repr-Digest %q, want %q", url, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReprDigest(t *testing.T) {
	dir := digestStore(t)
	gate := make(chan struct{})
	s, ts := startServer(t, dir, filepath.Join(t.TempDir(), "sums.json"), withHashGate(gate))
	file := filepath.Join(dir, "lenet", "weights.bin")
	data, _ := os.ReadFile(file)
	url := ts.URL + "/lenet/weights.bin"

	// Not hashed yet: the answer comes at once, without the header.
	resp, body := request(t, http.MethodGet, url, nil)
	if resp.StatusCode != http.StatusOK || string(body) != string(data) || resp.Header.Get("Repr-Digest") != "" {
		t.Fatalf("before hashing: %d, Repr-Digest %q", resp.StatusCode, resp.Header.Get("Repr-Digest"))
	}
	close(gate)
	waitDigest(t, url, reprOf(data))
	for _, tc := range []struct {
		method string
		hdr    map[string]string
		status int
	}{
		{http.MethodGet, nil, http.StatusOK},
		{http.MethodHead, nil, http.StatusOK},
		{http.MethodGet, map[string]string{"Range": "bytes=10-19"}, http.StatusPartialContent},
	} {
		resp, _ := request(t, tc.method, url, tc.hdr)
		if resp.StatusCode != tc.status || resp.Header.Get("Repr-Digest") != reprOf(data) {
			t.Errorf("%s %v: %d, Repr-Digest %q, want %d, %q", tc.method, tc.hdr, resp.StatusCode, resp.Header.Get("Repr-Digest"), tc.status, reprOf(data))
		}
	}

	// A rewrite (new mtime) is a new version: never the old digest.
	newData := []byte("new weights\n")
	write(t, file, newData)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
	if got := mustHead(t, url); got != "" && got != reprOf(newData) {
		t.Fatalf("rewritten file: Repr-Digest %q, want none or %q", got, reprOf(newData))
	}
	waitDigest(t, url, reprOf(newData))
	if n := s.h.digests.hashed.Load(); n < 5 {
		t.Errorf("%d files hashed, want the 4 of the scan and the rewrite", n)
	}
}

func mustHead(t *testing.T, url string) string {
	t.Helper()
	resp, _ := request(t, http.MethodHead, url, nil)
	return resp.Header.Get("Repr-Digest")
}

// waitSums polls the generated SHA256SUMS until it lists n files.
func waitSums(t *testing.T, url string, n int) map[string]remote.Digest {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := request(t, http.MethodGet, url+"/"+remote.SumsFile, nil)
		sums, bad, err := remote.ParseSums(body)
		if resp.StatusCode != http.StatusOK || err != nil || bad != 0 {
			t.Fatalf("SHA256SUMS: %d, %d bad lines, %v: %q", resp.StatusCode, bad, err, body)
		}
		if len(sums) == n {
			return sums
		}
		if time.Now().After(deadline) {
			t.Fatalf("SHA256SUMS lists %d files, want %d: %q", len(sums), n, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDigestsKeptAcrossRestarts(t *testing.T) {
	dir := digestStore(t)
	cache := filepath.Join(t.TempDir(), "cache", "sums.json")
	s1, err := NewServer(dir, nil, WithDigestCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	ts1 := httptest.NewServer(s1)
	waitSums(t, ts1.URL, 4)
	ts1.Close()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// Gone files leave the cache when it is saved: it stays bounded.
	if err := os.Remove(filepath.Join(dir, "lenet", "sub", "part.bin")); err != nil {
		t.Fatal(err)
	}

	// Hashing is blocked: what the restart knows comes from the cache.
	s2, ts2 := startServer(t, dir, cache, withHashGate(make(chan struct{})))
	data, _ := os.ReadFile(filepath.Join(dir, "lenet", "weights.bin"))
	if got := mustHead(t, ts2.URL+"/lenet/weights.bin"); got != reprOf(data) {
		t.Errorf("first answer after the restart: Repr-Digest %q, want %q", got, reprOf(data))
	}
	waitSums(t, ts2.URL, 3)
	if n := s2.h.digests.hashed.Load(); n != 0 {
		t.Errorf("restart hashed %d files, want 0", n)
	}
	if err := s2.Close(); err != nil { // saves: part.bin's entry dropped
		t.Fatal(err)
	}
	b, err := os.ReadFile(cache)
	if err != nil || strings.Contains(string(b), "part.bin") || !strings.Contains(string(b), "weights.bin") {
		t.Errorf("saved cache %q (%v): want weights.bin, not the removed part.bin", b, err)
	}
}

func TestGeneratedSums(t *testing.T) {
	dir := digestStore(t)
	_, ts := startServer(t, dir, "")
	sums := waitSums(t, ts.URL, 4)
	want := []string{"lenet/info.json", "lenet/sub/part.bin", "lenet/weights.bin", "torch/info.json"}
	if got := slices.Sorted(maps.Keys(sums)); !slices.Equal(got, want) {
		t.Fatalf("SHA256SUMS lists %q, want %q", got, want)
	}
	for name, d := range sums {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		if sum := sha256.Sum256(data); d.Sum != string(sum[:]) {
			t.Errorf("%s: SHA256SUMS says %s, the bytes are %x", name, d, sum)
		}
	}
	// Revalidation: its own ETag, 304 while unchanged.
	resp, _ := request(t, http.MethodGet, ts.URL+"/SHA256SUMS", nil)
	etag := resp.Header.Get("ETag")
	resp, _ = request(t, http.MethodGet, ts.URL+"/SHA256SUMS", map[string]string{"If-None-Match": etag})
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidating SHA256SUMS (ETag %q): %d, want 304", etag, resp.StatusCode)
	}
	if _, body := request(t, http.MethodGet, ts.URL+"/", nil); !strings.Contains(string(body), `href="SHA256SUMS"`) {
		t.Errorf("root listing lacks SHA256SUMS: %s", body)
	}
	// The directory's own is served as it is.
	write(t, filepath.Join(dir, "SHA256SUMS"), []byte("own\n"))
	if resp, body := request(t, http.MethodGet, ts.URL+"/SHA256SUMS", nil); resp.StatusCode != http.StatusOK || string(body) != "own\n" {
		t.Errorf("own SHA256SUMS: %d %q", resp.StatusCode, body)
	}
}

func TestRemoteStatDigest(t *testing.T) {
	dir := digestStore(t)
	_, ts := startServer(t, dir, "")
	st, err := remote.NewStore(ts.URL+"/", remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "lenet", "weights.bin"))
	sum := sha256.Sum256(data)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := st.Stat(context.Background(), nil, "lenet", "weights.bin")
		if err != nil {
			t.Fatal(err)
		}
		if !m.Digest.IsZero() {
			if m.Digest.Alg != remote.AlgSHA256 || m.Digest.Sum != string(sum[:]) {
				t.Fatalf("Stat: digest %s, want sha-256:%x", m.Digest, sum)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Stat: no digest after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriteSums(t *testing.T) {
	dir := digestStore(t)
	file, n, err := WriteSums(context.Background(), dir)
	if err != nil || n != 4 || file != filepath.Join(dir, "SHA256SUMS") {
		t.Fatalf("WriteSums: %s, %d, %v", file, n, err)
	}
	b, _ := os.ReadFile(file)
	if sums, bad, err := remote.ParseSums(b); err != nil || bad != 0 || len(sums) != 4 {
		t.Fatalf("written SHA256SUMS: %d sums, %d bad, %v", len(sums), bad, err)
	}
}
