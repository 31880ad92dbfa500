package serve

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// TestFolderPages: a store whose folders do not all fit in master.json
// names the others in folder pages; a client learns every folder, as a
// HEAD of each file would tell it, from master.json and the pages alone,
// each page asked once. A page describes the folders as they are when it
// is asked, and refuses a range that is not one.
func TestFolderPages(t *testing.T) {
	dir := t.TempDir()
	const models = 40
	for i := range models {
		m := filepath.Join(dir, fmt.Sprintf("model-%02d", i))
		write(t, filepath.Join(m, "info.json"), []byte(infoJSON))
		write(t, filepath.Join(m, "weights.bin"), []byte(strings.Repeat("w", i+1)))
	}
	h, err := Handler(dir, nil, WithMasterBytes(4<<10))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	asked := map[string]int{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked[r.URL.Path]++
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	st, err := remote.NewStore(ts.URL, remote.Options{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := st.ListModels(ctx)
	if err != nil || len(l.Models) != models {
		t.Fatalf("ListModels: %d models, %v", len(l.Models), err)
	}
	// The last folder changes after master.json: its page tells it as it is.
	write(t, filepath.Join(dir, "model-39", "weights.bin"), []byte("changed"))
	for _, m := range l.Models {
		folder, ok, err := l.Folders.Folder(ctx, m)
		if !ok || err != nil || len(folder) != 2 {
			t.Fatalf("%s: described %v (%d files), %v", m, ok, len(folder), err)
		}
		for _, ff := range folder {
			head, err := st.Stat(ctx, nil, m, ff.Name)
			if err != nil || head.Size != ff.Meta.Size || head.ETag != ff.Meta.ETag {
				t.Errorf("%s/%s: the page says %+v, HEAD %+v %v", m, ff.Name, ff.Meta, head, err)
			}
		}
	}
	mu.Lock()
	pages := asked["/"+digits.FolderPageFile]
	mu.Unlock()
	if pages < 2 || pages > models/4 {
		t.Errorf("%d folder pages asked for %d models, want a few (master.json of 4 KiB)", pages, models)
	}
	t.Logf("%d models: master.json and %d pages", models, pages)

	for _, q := range []string{"", "from=a", "to=b", "from=b&to=a"} {
		resp, err := http.Get(ts.URL + "/" + digits.FolderPageFile + "?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("page ?%s: %d, want 400", q, resp.StatusCode)
		}
	}
}
