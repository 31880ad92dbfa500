package cache

import (
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// TestMetadataKeptAcrossRestart: a catalog started while its store fails
// serves the metadata a previous one kept on disk (stale), and one started
// once the store is back revalidates it with conditional requests.
func TestMetadataKeptAcrossRestart(t *testing.T) {
	srv := newServer(t, sampleFiles(t, true), remotetest.Options{Master: true})
	meta := filepath.Join(t.TempDir(), "meta")

	first := newEnv(t, srv, Config{MetaDir: meta})
	want, err := first.cat.Model(testCtx(t), first.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	first.resolveAll(t)

	srv.SetStatusAll(http.StatusServiceUnavailable)
	down := newEnv(t, srv, Config{MetaDir: meta, NegativeTTL: time.Millisecond})
	l, err := down.cat.Listing(testCtx(t), down.st)
	if err != nil || l.Stale == nil || !l.Has("lenet") {
		t.Fatalf("listing while down after a restart: %+v, %v", l, err)
	}
	m, err := down.cat.Model(testCtx(t), down.st, "lenet")
	if err != nil {
		t.Fatalf("model while down after a restart: %v", err)
	}
	if !slices.Equal(fileNames(m), fileNames(want)) || !m.Importable || m.Info == nil || m.Info.Name != "LeNet (MNIST)" || m.Aux == nil {
		t.Errorf("kept model = %q importable %v info %+v", fileNames(m), m.Importable, m.Info)
	}

	srv.SetStatusAll(0)
	srv.ResetCounts()
	back := newEnv(t, srv, Config{MetaDir: meta})
	if _, err := back.cat.Model(testCtx(t), back.st, "lenet"); err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.Requests("lenet/info.json") {
		if r.Status != http.StatusNotModified {
			t.Errorf("info.json after a restart: %+v, want a conditional request answered 304", r)
		}
	}
}
