package engine

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// sampleDir is the bundled sample store (see cache's tests).
const sampleDir = "../integration/testdata/store"

// reserved are the names the fs package keeps for itself in a store folder.
var reserved = []string{".refresh", "models.tsv", "welcome.txt", "error.txt"}

// sampleFiles returns the sample store's files.
func sampleFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := remotetest.LoadDir(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["lenet/info.json"]; !ok {
		t.Fatalf("sample store %s has no lenet/info.json", sampleDir)
	}
	return files
}

func newServer(t *testing.T, files map[string][]byte, opt remotetest.Options) *remotetest.Server {
	t.Helper()
	s := remotetest.New(files, opt)
	t.Cleanup(s.Close)
	return s
}

// fastRemote keeps failing tests fast: no retries, short timeouts.
var fastRemote = remote.Options{
	Retries:        -1,
	ConnectTimeout: time.Second,
	HeaderTimeout:  2 * time.Second,
	StallTimeout:   2 * time.Second,
}

// fixture is the engine tests' setup: a store serving files, its client,
// and a content cache over it (closed when the test ends).
func fixture(t *testing.T, files map[string][]byte, opt remotetest.Options, cfg StreamConfig) (*remotetest.Server, *cache.Store, *StreamContent) {
	t.Helper()
	srv := newServer(t, files, opt)
	return srv, newTestStore(t, srv.URL), newStream(t, cfg)
}

func newTestStore(t *testing.T, url string) *cache.Store {
	t.Helper()
	rs, err := remote.NewStore(url, fastRemote)
	if err != nil {
		t.Fatal(err)
	}
	return &cache.Store{Name: "test", Remote: rs}
}

// readAll reads a whole handle with one ReadAt (handles never read short).
func readAll(t *testing.T, h cache.Handle) []byte {
	t.Helper()
	buf := make([]byte, h.Size())
	n, err := h.ReadAt(testutil.Ctx(t), buf, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("ReadAt: %v", err)
	}
	return buf[:n]
}

// dirFiles lists the regular files below dir with their sizes.
func dirFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if de.IsDir() {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			if os.IsNotExist(err) { // removed while walking
				return nil
			}
			return err
		}
		out[p] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sumSizes(m map[string]int64) int64 {
	var n int64
	for _, s := range m {
		n += s
	}
	return n
}
