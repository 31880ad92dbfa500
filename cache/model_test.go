package cache

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/digits"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// lenetFiles is the lenet folder: DIGITS job names, the extras info.json
// names that the store has, aux.json's license and logo, and the weights'
// remote name as a symlink. solver.prototxt and train_val.prototxt are named
// in info.json but not on the store.
var lenetFiles = []string{
	"aux.json", "deploy.prototxt", "info.json", "labels.txt", "license.txt", "logo.png",
	"mean.binaryproto", "model.caffemodel", "original.prototxt",
	"snapshot_iter_28140.caffemodel", "status.pickle",
}

// checkServed checks every entry of m against the store: data files
// byte-exact, remote files with the served size and ETag.
func checkServed(t *testing.T, srv *remotetest.Server, m *Model, etags bool) {
	t.Helper()
	for _, f := range m.Files() {
		switch f.Kind {
		case KindRemote:
			want, ok := srv.Data(m.Name + "/" + f.Remote)
			if !ok {
				t.Errorf("%s: listed, but the store has no %s", f.Name, f.Remote)
				continue
			}
			if f.Size() != int64(len(want)) {
				t.Errorf("%s: size %d, the store serves %d bytes", f.Name, f.Size(), len(want))
			}
			if etags && f.Meta.ETag != srv.ETag(m.Name+"/"+f.Remote) {
				t.Errorf("%s: ETag %q, the store sends %q", f.Name, f.Meta.ETag, srv.ETag(m.Name+"/"+f.Remote))
			}
			if f.ModTime.IsZero() {
				t.Errorf("%s: no ModTime", f.Name)
			}
		case KindData:
			if f.Name == digits.InfoFile || f.Name == digits.AuxFile {
				want, _ := srv.Data(m.Name + "/" + f.Name)
				if !bytes.Equal(f.Data, want) {
					t.Errorf("%s is not byte-exact", f.Name)
				}
			}
			if b := f.Bytes(); f.Size() != int64(len(b)) || len(b) == 0 {
				t.Errorf("%s: size %d, %d bytes of data", f.Name, f.Size(), len(b))
			}
			// status.pickle is made again when read, the same each time.
			if f.Generated() != (f.Name == digits.StatusFile) || !bytes.Equal(f.Bytes(), f.Bytes()) {
				t.Errorf("%s: generated %v", f.Name, f.Generated())
			}
		case KindSymlink:
			target, ok := m.File(f.Target)
			if !ok || target.Kind != KindRemote || target.Remote != f.Name {
				t.Errorf("symlink %s -> %s does not point to the job file made from it", f.Name, f.Target)
			}
		}
	}
}

func TestModelLenet(t *testing.T) {
	tests := []struct {
		name  string
		files func(t *testing.T) map[string][]byte
		opt   remotetest.Options
		etags bool
	}{
		{"master.json", func(t *testing.T) map[string][]byte { return storetest.SampleFiles(t) }, remotetest.Options{}, true},
		{"html listing below a prefix", func(t *testing.T) map[string][]byte { return storetest.SampleFiles(t, storetest.WithoutMaster()) },
			remotetest.Options{Listing: true, Prefix: "/team/"}, true},
		{"no HEAD", func(t *testing.T) map[string][]byte { return storetest.SampleFiles(t) }, remotetest.Options{NoHead: true}, true},
		{"Last-Modified only", func(t *testing.T) map[string][]byte { return storetest.SampleFiles(t) }, remotetest.Options{NoETag: true}, false},
		{"no Content-Length", func(t *testing.T) map[string][]byte { return storetest.SampleFiles(t) }, remotetest.Options{Chunked: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := storetest.NewServer(t, tt.files(t), tt.opt)
			e := newEnv(t, srv, Config{})
			m, err := e.cat.Model(testutil.Ctx(t), e.st, "lenet")
			if err != nil {
				t.Fatal(err)
			}
			// A folder listing (python's: names only) says what the folder
			// holds, not the sizes: they are asked for when needed.
			if listed := tt.opt.Listing; m.Sized() == listed || (srv.CountMethod("HEAD") > 0) == listed {
				t.Errorf("sized %v after %d HEADs, want sizes only without a folder listing", m.Sized(), srv.CountMethod("HEAD"))
			}
			presence := fileNames(m)
			if m, err = e.cat.Sized(testutil.Ctx(t), e.st, "lenet"); err != nil {
				t.Fatal(err)
			}
			if got := fileNames(m); !slices.Equal(got, presence) || !m.Sized() {
				t.Errorf("sized, the folder shows %q, before %q", got, presence)
			}
			if got := fileNames(m); !slices.Equal(got, lenetFiles) {
				t.Errorf("files %q\nwant  %q\nproblems: %q", got, lenetFiles, m.Problems)
			}
			if !m.Importable || len(m.Problems) != 0 {
				t.Errorf("Importable %v, problems %q", m.Importable, m.Problems)
			}
			if _, ok := m.File(digits.ErrorFile); ok {
				t.Error("an importable model without problems has error.txt")
			}
			for _, absent := range []string{"solver.prototxt", "train_val.prototxt"} {
				if _, ok := m.File(absent); ok {
					t.Errorf("%s is listed, but the store does not have it", absent)
				}
			}
			checkServed(t, srv, m, tt.etags)

			weights, _ := m.File("model.caffemodel")
			if weights.Kind != KindRemote || weights.Remote != "snapshot_iter_28140.caffemodel" {
				t.Errorf("model.caffemodel: %+v", weights)
			}
			link, _ := m.File("snapshot_iter_28140.caffemodel")
			if link.Kind != KindSymlink || link.Target != "model.caffemodel" {
				t.Errorf("snapshot_iter_28140.caffemodel: kind %v target %q", link.Kind, link.Target)
			}
			pickle, _ := m.File(digits.StatusFile)
			if pickle.Kind != KindData || len(pickle.Bytes()) < 2 || pickle.Bytes()[0] != 0x80 {
				t.Errorf("status.pickle: kind %v, %d bytes", pickle.Kind, len(pickle.Bytes()))
			}
			// Synthesized files carry the info.json "creation time".
			if want := time.Date(2017, 1, 24, 10, 10, 10, 123456000, time.UTC); !pickle.ModTime.Equal(want) {
				t.Errorf("status.pickle ModTime %v, want %v", pickle.ModTime, want)
			}
			if m.Info == nil || m.Info.Name != "LeNet (MNIST)" || m.Info.Framework != "caffe" {
				t.Errorf("Info %+v", m.Info)
			}
			if m.Aux == nil || m.Aux.Dataset != "MNIST" || m.Aux.Logo != "logo.png" {
				t.Errorf("Aux %+v", m.Aux)
			}
			if m.Name != "lenet" || m.Store != e.st || !slices.IsSortedFunc(m.Files(), func(a, b File) int { return strings.Compare(a.Name, b.Name) }) {
				t.Errorf("model %q of %p, files sorted %v", m.Name, m.Store, fileNames(m))
			}
		})
	}
}

const (
	torchInfo = `{"framework": "torch", "name": "t", "snapshot file": "snap.t7", "model file": "model.lua"}`
	caffeInfo = `{"framework": "caffe", "name": "c", "snapshot file": "snap_1.caffemodel",
	              "model file": "original.prototxt", "labels file": "labels.txt"}`
)

// modelFolderCase is a row of TestModelFolders: a model and the folder
// the catalog must make of it.
type modelFolderCase struct {
	model      string
	importable bool
	files      []string // exact folder content
	errorText  []string // substrings of error.txt; nil: no error.txt
}

func TestModelFolders(t *testing.T) {
	files := storetest.SampleFiles(t, storetest.WithoutMaster())
	maps.Copy(files, oddModelFiles())
	srv := storetest.NewServer(t, files, remotetest.Options{Master: true})
	// A file the store refuses is left out with a note, not a failure.
	srv.SetStatus("forbidden/model.lua", http.StatusForbidden)
	e := newEnv(t, srv, Config{})
	for _, tt := range modelFolderCases(t) {
		t.Run(tt.model, func(t *testing.T) { checkModelFolder(t, e, srv, tt) })
	}

	t.Run("not in the listing", func(t *testing.T) {
		_, err := e.cat.Model(testutil.Ctx(t), e.st, "no-such-model")
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
		// A file of a model that exists is not a model.
		if _, err := e.cat.Model(testutil.Ctx(t), e.st, "lenet/info.json"); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
}

// oddModelFiles are the folders TestModelFolders adds to the sample store:
// models missing a part, of an unknown framework, with a bad aux.json or a
// file the store refuses.
func oddModelFiles() map[string][]byte {
	files := map[string][]byte{}
	for p, d := range map[string]string{
		// No info.json at all.
		"noinfo/aux.json":   `{"dataset": "x"}`,
		"noinfo/labels.txt": "a\nb\n",
		// The weights info.json names are not on the store.
		"noweights/info.json":         caffeInfo,
		"noweights/original.prototxt": "net",
		"noweights/labels.txt":        "a\n",
		// An unknown framework.
		"mxnet/info.json": `{"framework": "mxnet", "name": "m", "snapshot file": "s", "model file": "m"}`,
		// Importable, but aux.json names an unsafe logo.
		"badlogo/info.json":   torchInfo,
		"badlogo/snap.t7":     "weights",
		"badlogo/model.lua":   "lua",
		"badlogo/aux.json":    `{"logo": "../../etc/passwd", "license": "MIT"}`,
		"badlogo/evil.png":    "x",
		"badaux/info.json":    torchInfo,
		"badaux/snap.t7":      "weights",
		"badaux/model.lua":    "lua",
		"badaux/aux.json":     `[1, 2`,
		"forbidden/info.json": torchInfo,
		"forbidden/snap.t7":   "weights",
		"forbidden/model.lua": "lua",
	} {
		files[p] = []byte(d)
	}
	return files
}

// modelFolderCases are the sample's and oddModelFiles' models, and
// inception-tf when the sample store has it.
func modelFolderCases(t *testing.T) []modelFolderCase {
	tests := []modelFolderCase{
		{"alexnet-torch", true,
			[]string{"_Model.t7", "aux.json", "info.json", "labels.txt", "model.lua", "original.lua", "snapshot_30_Model.t7", "status.pickle"},
			nil},
		{"noinfo", false, []string{"aux.json", "error.txt"}, []string{"noinfo cannot be imported", "info.json"}},
		{"noweights", false,
			[]string{"error.txt", "info.json", "labels.txt", "original.prototxt"},
			[]string{"snap_1.caffemodel", "model.caffemodel"}},
		{"broken", false, []string{"error.txt", "info.json"}, []string{"info.json", "JSON"}},
		{"mxnet", false, []string{"error.txt", "info.json"}, []string{"mxnet"}},
		{"badlogo", true,
			[]string{"_Model.t7", "aux.json", "error.txt", "info.json", "model.lua", "original.lua", "snap.t7", "status.pickle"},
			[]string{"logo", "../../etc/passwd"}},
		{"badaux", true,
			[]string{"_Model.t7", "aux.json", "error.txt", "info.json", "model.lua", "original.lua", "snap.t7", "status.pickle"},
			[]string{"aux.json"}},
		{"forbidden", false,
			[]string{"_Model.t7", "error.txt", "info.json", "snap.t7"},
			[]string{"model.lua", "403"}},
	}
	if slices.Contains(storetest.SampleModels(t), "inception-tf") {
		tests = append(tests, modelFolderCase{"inception-tf", true, []string{
			"aux.json", "info.json", "labels.txt", "license.txt", "network.py",
			"snapshot.ckpt.data-00000-of-00001", "snapshot.ckpt.index", "snapshot.ckpt.meta",
			"snapshot_5.ckpt.data-00000-of-00001", "snapshot_5.ckpt.index", "snapshot_5.ckpt.meta",
			"status.pickle",
		}, nil})
	}
	return tests
}

// checkModelFolder resolves tt's model and checks its folder, error.txt
// and what the store served.
func checkModelFolder(t *testing.T, e *env, srv *remotetest.Server, tt modelFolderCase) {
	t.Helper()
	m, err := e.cat.Model(testutil.Ctx(t), e.st, tt.model)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileNames(m); !slices.Equal(got, tt.files) {
		t.Errorf("files %q\nwant  %q\nproblems %q", got, tt.files, m.Problems)
	}
	if m.Importable != tt.importable {
		t.Errorf("Importable = %v, problems %q", m.Importable, m.Problems)
	}
	_, hasPickle := m.File(digits.StatusFile)
	if hasPickle != tt.importable {
		t.Errorf("status.pickle present = %v, importable %v", hasPickle, tt.importable)
	}
	ef, hasErr := m.File(digits.ErrorFile)
	if hasErr != (tt.errorText != nil) || hasErr != (len(m.Problems) > 0) {
		t.Fatalf("error.txt present = %v, problems %q", hasErr, m.Problems)
	}
	if hasErr {
		if ef.Kind != KindData || !strings.HasSuffix(string(ef.Data), "\n") {
			t.Errorf("error.txt %+v", ef)
		}
		for _, want := range tt.errorText {
			if !strings.Contains(string(ef.Data), want) {
				t.Errorf("error.txt does not mention %q:\n%s", want, ef.Data)
			}
		}
	}
	checkServed(t, srv, m, true)
}

func TestModelFetchErrors(t *testing.T) {
	files := storetest.SampleFiles(t)
	srv := storetest.NewServer(t, files, remotetest.Options{})
	srv.SetStatus("lenet/mean.binaryproto", http.StatusInternalServerError)
	srv.SetStatus("alexnet-torch/info.json", http.StatusBadGateway)
	e := newEnv(t, srv, Config{NegativeTTL: time.Minute})
	ctx := testutil.Ctx(t)
	// A server error is not "the file is missing": the model fails (to be
	// retried later) instead of being shown without the file.
	for _, name := range []string{"lenet", "alexnet-torch"} {
		m, err := e.cat.Model(ctx, e.st, name)
		if err == nil {
			t.Errorf("%s: resolved despite a 5xx: files %q", name, fileNames(m))
			continue
		}
		if !strings.Contains(err.Error(), "50") {
			t.Errorf("%s: error does not name the status: %v", name, err)
		}
	}
	// The failure is remembered for NegativeTTL.
	before := srv.Count("", "alexnet-torch/info.json")
	if _, err := e.cat.Model(ctx, e.st, "alexnet-torch"); err == nil {
		t.Error("second call succeeded")
	}
	if n := srv.Count("", "alexnet-torch/info.json"); n != before {
		t.Errorf("failure not remembered: %d more requests", n-before)
	}
	if _, ok := e.cat.CachedModel(e.st, "lenet"); ok {
		t.Error("a failed model is cached")
	}
	// Refresh forgets it.
	srv.SetStatus("lenet/mean.binaryproto", 0)
	e.cat.Refresh(e.st)
	if _, err := e.cat.Model(ctx, e.st, "lenet"); err != nil {
		t.Errorf("after Refresh: %v", err)
	}
}

// TestModelStaleWhileError: once a model resolved, a later failure (after
// Refresh or expiry) keeps serving the last good folder, like listings do.
func TestModelStaleWhileError(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	e := newEnv(t, srv, Config{NegativeTTL: time.Minute})
	ctx := testutil.Ctx(t)
	good, err := e.cat.Model(ctx, e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	e.waitPrefetched(t, storetest.SampleModels(t)...)
	e.cat.Refresh(e.st)
	srv.SetStatus("lenet/info.json", http.StatusInternalServerError)
	m, err := e.cat.Model(ctx, e.st, "lenet")
	if err != nil || m != good {
		t.Fatalf("first call after the failure: %v (same model %v), want the last good model", err, m == good)
	}
	m, err = e.cat.Model(ctx, e.st, "lenet")
	if err != nil || m != good {
		// The failure is remembered for NegativeTTL; serving it from that
		// memory must not skip the last good model (a bug Catalog.Model
		// once had: stale-while-error lasted one call).
		t.Errorf("second call after the failure, within NegativeTTL: %v (same model %v), want the last good model again", err, m == good)
	}
}

// revalidation is TestRefreshRevalidates' store after a first resolution
// of every model, with lenet's weights (w) in the content cache.
type revalidation struct {
	e     *env
	srv   *remotetest.Server
	ctx   context.Context
	files map[string][]byte
	names []string // the sample's models
	w     *File    // lenet's weights as first resolved
}

func TestRefreshRevalidates(t *testing.T) {
	r := newRevalidation(t)
	t.Run("unchanged: conditional requests only", r.unchanged)
	t.Run("changed info.json is picked up", r.changedInfo)
	t.Run("added and removed models", r.addedAndRemoved)
}

// newRevalidation resolves every model and reads lenet's weights once.
func newRevalidation(t *testing.T) *revalidation {
	files := storetest.SampleFiles(t, storetest.WithoutMaster())
	srv := storetest.NewServer(t, files, remotetest.Options{Master: true})
	e := newEnv(t, srv, Config{})
	ctx := testutil.Ctx(t)
	names := storetest.SampleModels(t)
	first, err := e.cat.Model(ctx, e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	e.waitPrefetched(t, names...)

	// Cached content of a resolved file.
	w, _ := first.File("model.caffemodel")
	ref := Ref{Store: e.st, Model: "lenet", Name: w.Remote, Meta: w.Meta}
	h, err := e.content.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := srv.Data("lenet/" + w.Remote); !bytes.Equal(storetest.ReadAll(t, h), want) {
		t.Fatal("cached content differs")
	}
	h.Close()
	// The reader is answered as soon as the bytes are on disk, which can be
	// before the server's handler has returned and logged the GET.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if rs := srv.Requests("lenet/" + w.Remote); len(rs) > 0 && rs[len(rs)-1].Method == http.MethodGet || time.Now().After(deadline) {
			break
		}
	}
	return &revalidation{e: e, srv: srv, ctx: ctx, files: files, names: names, w: w}
}

// unchanged: after Refresh an unchanged model costs conditional requests
// only, and its content stays cached under the same version.
func (r *revalidation) unchanged(t *testing.T) {
	r.srv.ResetCounts()
	r.e.cat.Refresh(r.e.st)
	if _, ok := r.e.cat.CachedModel(r.e.st, "lenet"); ok {
		t.Fatal("Refresh left the model cached")
	}
	m, err := r.e.cat.Model(r.ctx, r.e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	r.e.waitPrefetched(t, r.names...)
	if !slices.Equal(fileNames(m), lenetFiles) || !m.Importable {
		t.Errorf("after revalidation: files %q, importable %v", fileNames(m), m.Importable)
	}
	reqs := r.srv.Requests()
	var lenetReqs int
	for _, req := range reqs {
		if !strings.HasPrefix(req.Path, "lenet/") {
			continue
		}
		lenetReqs++
		if req.Status == http.StatusOK && req.Method == http.MethodGet {
			t.Errorf("full GET of %s after Refresh of an unchanged model", req.Path)
		}
		if req.Status == http.StatusOK && req.IfNoneMatch == "" {
			t.Errorf("%s %s without If-None-Match", req.Method, req.Path)
		}
	}
	info := r.srv.Requests("lenet/info.json")
	if len(info) != 1 || info[0].Status != http.StatusNotModified || info[0].IfNoneMatch != r.srv.ETag("lenet/info.json") {
		t.Errorf("lenet/info.json requests after Refresh: %+v, want one answered 304", info)
	}
	for _, f := range []string{"aux.json", "snapshot_iter_28140.caffemodel", "logo.png"} {
		rs := r.srv.Requests("lenet/" + f)
		if len(rs) != 1 || rs[0].Status != http.StatusNotModified {
			t.Errorf("lenet/%s after Refresh: %+v, want one 304", f, rs)
		}
	}
	if lenetReqs == 0 {
		t.Fatal("no revalidation at all")
	}
	// The file content is still cached under the same version.
	w2, _ := m.File("model.caffemodel")
	if w2.Meta != r.w.Meta {
		t.Errorf("revalidated Meta %+v, was %+v", w2.Meta, r.w.Meta)
	}
	before := r.srv.Count("GET", "lenet/"+r.w.Remote)
	h, err := r.e.content.Open(r.ctx, Ref{Store: r.e.st, Model: "lenet", Name: w2.Remote, Meta: w2.Meta})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if n := r.srv.Count("GET", "lenet/"+r.w.Remote); n != before {
		t.Errorf("unchanged content fetched again after Refresh")
	}
}

// changedInfo: a changed info.json shows after Refresh, not before.
func (r *revalidation) changedInfo(t *testing.T) {
	newInfo := bytes.Replace(r.files["lenet/info.json"], []byte("tiny sample weights"), []byte("retrained"), 1)
	if bytes.Equal(newInfo, r.files["lenet/info.json"]) {
		t.Fatal("sample lenet note changed; update the test")
	}
	r.srv.Set("lenet/info.json", newInfo)
	// Not before a refresh (within the TTL).
	m, _ := r.e.cat.Model(r.ctx, r.e.st, "lenet")
	if strings.Contains(m.Info.Note, "retrained") {
		t.Error("changed info.json visible before Refresh")
	}
	r.e.cat.Refresh(r.e.st)
	m, err := r.e.cat.Model(r.ctx, r.e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	r.e.waitPrefetched(t, r.names...)
	f, _ := m.File(digits.InfoFile)
	if !bytes.Equal(f.Data, newInfo) || !strings.Contains(m.Info.Note, "retrained") {
		t.Errorf("info.json after Refresh: note %q", m.Info.Note)
	}
	if f.Meta.ETag != r.srv.ETag("lenet/info.json") || f.Size() != int64(len(newInfo)) {
		t.Errorf("info.json meta %+v", f.Meta)
	}
}

// addedAndRemoved: models added to and removed from the store show after
// Refresh, not before.
func (r *revalidation) addedAndRemoved(t *testing.T) {
	r.srv.Set("zz-new/info.json", []byte(torchInfo))
	r.srv.Set("zz-new/snap.t7", []byte("w"))
	r.srv.Set("zz-new/model.lua", []byte("m"))
	if r.srv.RemoveDir("alexnet-torch") == 0 {
		t.Fatal("sample has no alexnet-torch")
	}
	// Within the TTL nothing changes.
	l, _ := r.e.cat.Listing(r.ctx, r.e.st)
	if l.Has("zz-new") || !l.Has("alexnet-torch") {
		t.Errorf("listing changed before Refresh: %q", l.Models)
	}
	if _, err := r.e.cat.Model(r.ctx, r.e.st, "zz-new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("new model before Refresh: %v, want ErrNotFound", err)
	}

	r.e.cat.Refresh(nil)
	l, err := r.e.cat.Listing(r.ctx, r.e.st)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Has("zz-new") || l.Has("alexnet-torch") {
		t.Errorf("listing after Refresh: %q", l.Models)
	}
	m, err := r.e.cat.Model(r.ctx, r.e.st, "zz-new")
	if err != nil || !m.Importable {
		t.Fatalf("new model: %v, %+v", err, m)
	}
	if _, err := r.e.cat.Model(r.ctx, r.e.st, "alexnet-torch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed model: %v, want ErrNotFound", err)
	}
	ms, err := r.e.cat.Models(r.ctx, r.e.st)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name)
	}
	if slices.Contains(got, "alexnet-torch") || !slices.Contains(got, "zz-new") || !slices.IsSorted(got) {
		t.Errorf("Models after Refresh: %q", got)
	}
}

// TestModelCancelledCaller: a caller that gives up does not stop the shared
// fetch; another caller still gets the model from that one fetch.
func TestModelCancelledCaller(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	gate := srv.Hold("lenet/info.json")
	e := newEnv(t, srv, Config{})
	if _, err := e.cat.Listing(testutil.Ctx(t), e.st); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.Arrived(): // the prefetch is fetching lenet
	case <-time.After(3 * time.Second):
		t.Fatal("lenet not being fetched")
	}
	// Only the stuck fetch of lenet is left waiting for.
	var others []string
	for _, n := range storetest.SampleModels(t) {
		if n != "lenet" {
			others = append(others, n)
		}
	}
	e.waitPrefetched(t, others...)
	testutil.WaitFor(t, "the prefetch alone waiting", func() bool { return e.cat.waiters.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.cat.Model(ctx, e.st, "lenet")
		errc <- err
	}()
	testutil.WaitFor(t, "the caller to join the fetch", func() bool { return e.cat.waiters.Load() == 2 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("cancelled caller still waiting")
	}
	gate.Release()
	m, err := e.cat.Model(testutil.Ctx(t), e.st, "lenet")
	if err != nil || !m.Importable {
		t.Fatalf("after release: %v", err)
	}
	if n := srv.Count("", "lenet/info.json"); n != 1 {
		t.Errorf("lenet/info.json requested %d times, want 1", n)
	}
}

// TestChangedFileDropsModel: a download that finds a file changed on the
// server (without a refresh) makes the catalog forget the model's metadata,
// so the next lookup sees the new version.
func TestChangedFileDropsModel(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	e := newEnv(t, srv, Config{})
	ctx := testutil.Ctx(t)
	m, err := e.cat.Model(ctx, e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	e.waitPrefetched(t, storetest.SampleModels(t)...)
	labels, _ := m.File("labels.txt")
	newLabels := []byte("zero\none\ntwo\nthree\nfour\n")
	srv.Set("lenet/labels.txt", newLabels)

	h, err := e.content.Open(ctx, Ref{Store: e.st, Model: "lenet", Name: labels.Remote, Meta: labels.Meta})
	if err == nil {
		_, err = h.ReadAt(ctx, make([]byte, labels.Size()), 0)
		h.Close()
	}
	if err == nil {
		t.Fatal("reading a file that changed on the server succeeded")
	}
	testutil.WaitFor(t, "the model to be dropped", func() bool {
		_, ok := e.cat.CachedModel(e.st, "lenet")
		return !ok
	})
	m2, err := e.cat.Model(ctx, e.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := m2.File("labels.txt")
	if l2.Size() != int64(len(newLabels)) || l2.Meta.ETag != srv.ETag("lenet/labels.txt") {
		t.Errorf("labels.txt after the change: %+v", l2.Meta)
	}
	h, err = e.content.Open(ctx, Ref{Store: e.st, Model: "lenet", Name: l2.Remote, Meta: l2.Meta})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := storetest.ReadAll(t, h); !bytes.Equal(got, newLabels) {
		t.Errorf("labels.txt reads %q", got)
	}
}
