package cache

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// TestResolveRequests: what resolving lenet asks the store, per kind of
// store: master.json that says what each folder holds (modelstorefs
// serve) asks nothing more; a folder listing (python's: names only) is
// one more GET and no HEAD, the sizes waiting for Sized; a store that
// lists no folders gets a HEAD per file.
func TestResolveRequests(t *testing.T) {
	tests := []struct {
		name     string
		opt      remotetest.Options
		master   bool // keep the sample's own master.json
		requests int  // for lenet
		heads    int
		sized    bool // sizes known without Sized
	}{
		{"master.json with folders", remotetest.Options{Master: true, Folders: true}, false, 0, 0, true},
		{"master.json with folder pages", remotetest.Options{Master: true, Folders: true, FolderPages: true}, false, 0, 0, true},
		{"folder listing, names only", remotetest.Options{Listing: true}, true, 3, 0, false},
		{"no folder listing (learned on the first model)", remotetest.Options{}, true, 2 + 9, 9, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sample []storetest.SampleOption
			if !tc.master {
				sample = append(sample, storetest.WithoutMaster())
			}
			srv := storetest.NewServer(t, storetest.SampleFiles(t, sample...), tc.opt)
			e := newEnv(t, srv, Config{Prefetch: 1})
			ctx := testutil.Ctx(t)
			e.resolveAll(t)
			m, err := e.cat.Model(ctx, e.st, "lenet")
			if err != nil {
				t.Fatal(err)
			}
			var got, heads int
			for _, r := range srv.Requests() {
				if strings.HasPrefix(r.Path, "lenet/") {
					got++
					if r.Method == http.MethodHead {
						heads++
					}
				}
			}
			if got != tc.requests || heads != tc.heads {
				t.Errorf("%d requests (%d HEAD) for lenet, want %d (%d HEAD): %v", got, heads, tc.requests, tc.heads, srv.Requests())
			}
			if m.Sized() != tc.sized || !m.Importable {
				t.Errorf("sized %v importable %v, want sized %v and importable", m.Sized(), m.Importable, tc.sized)
			}
			if got := fileNames(m); !slices.Equal(got, lenetFiles) {
				t.Errorf("files %q, want %q", got, lenetFiles)
			}
			sized, err := e.cat.Sized(ctx, e.st, "lenet")
			if err != nil {
				t.Fatal(err)
			}
			checkServed(t, srv, sized, true)
		})
	}
}

// TestFolderPageFails: a folder page the store cannot give is said once
// in the log, and its folders are asked about one by one: every model is
// still resolved, whole.
func TestFolderPageFails(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t, storetest.WithoutMaster()), remotetest.Options{Master: true, Folders: true, FolderPages: true})
	srv.SetStatus(digits.FolderPageFile, http.StatusNotFound)
	core, logs := observer.New(zapcore.WarnLevel)
	e := newEnv(t, srv, Config{Prefetch: 1, Logger: zap.New(core)})
	e.resolveAll(t)
	for _, name := range storetest.SampleModels(t) {
		m, err := e.cat.Model(testutil.Ctx(t), e.st, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if srv.Count(http.MethodHead, name+"/"+digits.InfoFile) == 0 && len(srv.Requests(name+"/"+digits.InfoFile)) == 0 {
			t.Errorf("%s resolved without asking the store about its files", name)
		}
		if len(m.Files()) == 0 {
			t.Errorf("%s: no files", name)
		}
	}
	if got, pages := logs.FilterMessage("folder page failed, asking its folders one by one").Len(), len(srv.Requests(digits.FolderPageFile)); got == 0 || got > pages {
		t.Errorf("%d warnings for %d failed page requests, want one per page", got, pages)
	}
}

// TestSizedSettlesVerdict: a weights file a listing names without a size
// is empty: the model shows importable until its sizes are asked for,
// then not, and the filesystem is told its folder changed.
func TestSizedSettlesVerdict(t *testing.T) {
	files := storetest.SampleFiles(t)
	files["lenet/snapshot_iter_28140.caffemodel"] = nil
	srv := storetest.NewServer(t, files, remotetest.Options{Listing: true})
	e := newEnv(t, srv, Config{})
	var mu sync.Mutex
	var changed []string
	e.cat.OnModelChanged(func(st *Store, model string) {
		mu.Lock()
		defer mu.Unlock()
		changed = append(changed, model)
	})
	ctx := testutil.Ctx(t)
	m, err := e.cat.Model(ctx, e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Importable || m.Sized() {
		t.Fatalf("before sizes: importable %v sized %v, want importable on presence alone", m.Importable, m.Sized())
	}
	sized, err := e.cat.Sized(ctx, e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	if sized.Importable || !sized.Sized() {
		t.Errorf("an empty weights file: importable %v sized %v", sized.Importable, sized.Sized())
	}
	if _, ok := sized.File(digits.StatusFile); ok {
		t.Error("status.pickle still shown")
	}
	if ef, ok := sized.File(digits.ErrorFile); !ok || !strings.Contains(string(ef.Data), "empty") {
		t.Errorf("error.txt does not say the weights are empty: %v %+v", ok, ef)
	}
	if cached, _ := e.cat.CachedModel(e.st, "lenet"); cached != sized {
		t.Error("the sized model is not the one cached")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(changed, []string{"lenet"}) {
		t.Errorf("models changed: %q, want lenet once", changed)
	}
}

// TestListingDistrusted: a folder "listing" that does not name the
// info.json the store has (an index page) is no listing: every file is
// asked about, and the store is asked for no more listings.
func TestListingDistrusted(t *testing.T) {
	files := storetest.SampleFiles(t)
	srv := storetest.NewServer(t, files, remotetest.Options{})
	for _, m := range storetest.SampleModels(t) {
		srv.Intercept(m+"/", func(w http.ResponseWriter, r *http.Request, _ http.HandlerFunc) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`<html><body><a href="index.html">welcome</a></body></html>`))
		})
	}
	e := newEnv(t, srv, Config{Prefetch: 1})
	e.resolveAll(t)
	listings := 0
	for _, m := range storetest.SampleModels(t) {
		listings += srv.Count("GET", m+"/")
	}
	if listings != 1 {
		t.Errorf("%d folder listings asked for, want 1 (then none)", listings)
	}
	m, err := e.cat.Model(testutil.Ctx(t), e.st, "lenet")
	if err != nil || !slices.Equal(fileNames(m), lenetFiles) || !m.Sized() {
		t.Errorf("lenet from HEADs: %q sized %v, %v", fileNames(m), m != nil && m.Sized(), err)
	}
}

// TestOpenConfirmsListedSize: a size known only from a listing (no
// validator), or no size at all, is confirmed with a HEAD before any byte
// is read: the same size opens the file by the validators the store
// sends; another size is a file changed since the listing, refused, and
// its model dropped. A version named by validators is opened as it is.
func TestOpenConfirmsListedSize(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	e := newEnv(t, srv, Config{})
	ctx := testutil.Ctx(t)
	const weights = "snapshot_iter_28140.caffemodel"
	data, _ := srv.Data("lenet/" + weights)
	size := int64(len(data))
	var dropped []string
	e.cat.OnModelChanged(func(_ *Store, model string) { dropped = append(dropped, model) })
	tests := []struct {
		name  string
		meta  remote.Meta
		heads int
		err   error
	}{
		{"same size", remote.Meta{Size: size, Hint: true}, 1, nil},
		{"no size", remote.Meta{Size: -1}, 1, nil},
		{"validators", remote.Meta{Size: size, ETag: srv.ETag("lenet/" + weights)}, 0, nil},
		{"other size", remote.Meta{Size: size + 1, Hint: true}, 1, remote.ErrChanged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.cat.Model(ctx, e.st, "lenet"); err != nil {
				t.Fatal(err)
			}
			heads := srv.Count("HEAD", "lenet/"+weights)
			ref := Ref{Store: e.st, Model: "lenet", Name: weights, Meta: tc.meta}
			h, opened, err := e.cat.Open(ctx, ref)
			if got := srv.Count("HEAD", "lenet/"+weights) - heads; got != tc.heads {
				t.Errorf("%d HEADs before the open, want %d", got, tc.heads)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Open: %v, want %v", err, tc.err)
			}
			if err != nil {
				if _, ok := e.cat.CachedModel(e.st, "lenet"); ok || !slices.Contains(dropped, "lenet") {
					t.Errorf("a changed file: model still cached %v, dropped %q", ok, dropped)
				}
				return
			}
			defer h.Close()
			if opened.Meta.ETag != srv.ETag("lenet/"+weights) || opened.Meta.Hint || opened.Meta.Size != size {
				t.Errorf("opened as %+v, want the store's validators", opened.Meta)
			}
			if got := storetest.ReadAll(t, h); len(got) != len(data) {
				t.Errorf("read %d bytes, want %d", len(got), len(data))
			}
		})
	}
}

// TestRefreshWithMasterFolders: after a refresh, master.json's validators
// say which info.json changed: only that one is fetched again.
func TestRefreshWithMasterFolders(t *testing.T) {
	files := storetest.SampleFiles(t, storetest.WithoutMaster())
	srv := storetest.NewServer(t, files, remotetest.Options{Master: true, Folders: true})
	e := newEnv(t, srv, Config{})
	e.resolveAll(t)
	srv.SetFile("lenet/info.json", remotetest.File{Data: append(files["lenet/info.json"][:len(files["lenet/info.json"]):len(files["lenet/info.json"])], ' '),
		ModTime: time.Now().Add(time.Hour)})
	srv.ResetCounts()
	e.cat.Refresh(e.st)
	e.resolveAll(t)
	e.cat.sumsOf(e.st, true) // asked in the background
	var got []string
	// Arrivals, not Requests: a request is in Requests once its handler
	// returns, which may be after the client has read the answer.
	for _, r := range srv.Arrivals() {
		got = append(got, r.Method+" "+r.Path)
	}
	slices.Sort(got)
	// SHA256SUMS is asked for with every listing (this store has none).
	if !slices.Equal(got, []string{"GET SHA256SUMS", "GET master.json"}) {
		t.Errorf("after a refresh: %q, want master.json and SHA256SUMS alone (master.json carries the changed info.json): %+v", got, srv.Arrivals())
	}
	m, err := e.cat.Model(testutil.Ctx(t), e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := m.File(digits.InfoFile); len(f.Data) != len(files["lenet/info.json"])+1 {
		t.Errorf("lenet's info.json is not the new one: %d bytes", len(f.Data))
	}
}
