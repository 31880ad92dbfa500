// Package storetest holds the fixtures of the tests that talk to a store
// (cache, engine, fs, jobimport, digitsupload, cmd): the bundled sample
// store, a remotetest server that closes with its test, and the
// fast-failing client options. One copy, so the packages' tests cannot
// drift apart.
//
// It imports remote, remote/remotetest and internal/testutil only, never
// the packages whose tests use it. It is apart from internal/testutil
// because remotetest imports digits, whose tests use testutil: testutil
// importing remotetest would be an import cycle. remote's own tests cannot
// use it either (storetest imports remote).
package storetest

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// SampleDir returns the bundled sample store, integration/testdata/store
// below the module root (found from the working directory, the package
// directory go test runs a package's tests in): master.json ("modelstorefs
// sample store"), lenet (caffe), alexnet-torch (torch), inception-tf
// (tensorflow) and broken (invalid info.json).
func SampleDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "integration", "testdata", "store")
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the working directory: cannot find the sample store")
		}
		dir = up
	}
}

// Reserved are the names the fs package keeps for itself in a store folder
// (its ReservedStoreNames, which fs's tests compare with this), for the
// tests below fs that configure a catalog.
var Reserved = []string{".refresh", "models.tsv", "welcome.txt", "error.txt", ".stats"}

// FastRemote keeps failing tests fast: no retries, short timeouts.
var FastRemote = remote.Options{
	Retries:        -1,
	ConnectTimeout: time.Second,
	HeaderTimeout:  2 * time.Second,
	StallTimeout:   2 * time.Second,
}

// SampleOption changes the sample store's files as SampleFiles loads them.
type SampleOption func(files map[string][]byte)

// WithoutMaster leaves out master.json, for a store that generates it or
// serves HTML listings (or lists models a test adds).
func WithoutMaster() SampleOption {
	return func(files map[string][]byte) { delete(files, "master.json") }
}

// SampleFiles returns the sample store's files, path to content, after
// opts.
func SampleFiles(t testing.TB, opts ...SampleOption) map[string][]byte {
	t.Helper()
	dir := SampleDir(t)
	files, err := remotetest.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["lenet/info.json"]; !ok {
		t.Fatalf("sample store %s has no lenet/info.json", dir)
	}
	for _, o := range opts {
		o(files)
	}
	return files
}

// SampleModels returns the sample store's model names (master.json
// "children"), sorted.
func SampleModels(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(SampleDir(t), "master.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Children []string }
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	slices.Sort(m.Children)
	if !slices.Contains(m.Children, "lenet") || !slices.Contains(m.Children, "broken") {
		t.Fatalf("sample store lacks lenet or broken: %q", m.Children)
	}
	return m.Children
}

// NewServer starts a remotetest server for files, closed when the test
// ends.
func NewServer(t testing.TB, files map[string][]byte, opt remotetest.Options) *remotetest.Server {
	t.Helper()
	s := remotetest.New(files, opt)
	t.Cleanup(s.Close)
	return s
}

// Remote is a client of the store at url with FastRemote's options.
func Remote(t testing.TB, url string) *remote.Store {
	t.Helper()
	rs, err := remote.NewStore(url, FastRemote)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// Reader is what ReadAll reads: cache.Handle, without importing cache.
type Reader interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	Size() int64
}

// ReadAll reads a whole handle with one ReadAt (handles never read short),
// failing the test on an error other than io.EOF.
func ReadAll(t testing.TB, h Reader) []byte {
	t.Helper()
	buf := make([]byte, h.Size())
	n, err := h.ReadAt(testutil.Ctx(t), buf, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("ReadAt: %v", err)
	}
	return buf[:n]
}
