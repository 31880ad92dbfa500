package engine

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
)

// fixture is the engine tests' setup: a store serving files, its client,
// and a content cache over it (closed when the test ends).
func fixture(t *testing.T, files map[string][]byte, opt remotetest.Options, cfg StreamConfig) (*remotetest.Server, *cache.Store, *StreamContent) {
	t.Helper()
	srv := storetest.NewServer(t, files, opt)
	return srv, newTestStore(t, srv.URL), newStream(t, cfg)
}

func newTestStore(t *testing.T, url string) *cache.Store {
	t.Helper()
	return &cache.Store{Name: "test", Remote: storetest.Remote(t, url)}
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

// readAsync reads buf at off of h in a goroutine; the channel gets the
// read's error.
func readAsync(ctx context.Context, h cache.Handle, buf []byte, off int64) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := h.ReadAt(ctx, buf, off)
		errc <- err
	}()
	return errc
}

// waitArrived waits until a request held by gate has arrived at the
// server, failing the test after 3 s ("no download").
func waitArrived(t *testing.T, gate *remotetest.Gate) {
	t.Helper()
	select {
	case <-gate.Arrived():
	case <-time.After(3 * time.Second):
		t.Fatal("no download")
	}
}
