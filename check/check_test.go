package check

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
	"github.com/modelstorefs/modelstorefs/serve"
)

// fast keeps failing requests from being retried.
var fast = WithRemoteOptions(remote.Options{Retries: -1})

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func infoJSON(kv map[string]any) string {
	b, err := json.Marshal(kv)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// caffe returns a complete caffe info.json, with overrides (nil deletes).
func caffe(over map[string]any) string {
	m := map[string]any{
		"name": "m", "framework": "caffe",
		"snapshot file": "w.caffemodel", "model file": "net.prototxt",
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return infoJSON(m)
}

// want is one expected problem: its severity and a part of its message.
type want struct {
	sev  Severity
	text string
}

// defects is one model per kind of defect, with what check must say.
var defects = []struct {
	model      string
	files      map[string]string // below the model folder
	importable bool
	want       []want
}{
	{"good", map[string]string{
		"info.json":    caffe(map[string]any{"labels file": "labels.txt", "mean file": "mean.binaryproto"}),
		"w.caffemodel": "weights", "net.prototxt": "net", "labels.txt": "a\nb\n", "mean.binaryproto": "mean",
		"aux.json":    `{"license": "BSD", "logo": "logo.png", "dataset": "MNIST"}`,
		"license.txt": "BSD license", "logo.png": "PNG",
	}, true, nil},
	{"noinfo", map[string]string{"w.caffemodel": "weights"}, false,
		[]want{{Error, "the store has no info.json for this model"}}},
	{"badjson", map[string]string{"info.json": `{"name": "m", "framework": `}, false,
		[]want{{Error, "info.json is not valid JSON: unexpected end of JSON input: DIGITS cannot list any model of this store"}}},
	{"notobject", map[string]string{"info.json": `["name"]`}, false,
		[]want{{Error, "info.json is array, want a JSON object"}}},
	{"nokey", map[string]string{"info.json": caffe(map[string]any{"snapshot file": nil}), "net.prototxt": "net"}, false,
		[]want{{Error, `info.json has no "snapshot file"`}}},
	{"twokeys", map[string]string{"info.json": caffe(map[string]any{"name": nil, "model file": nil}), "w.caffemodel": "w"}, false,
		[]want{{Error, `info.json has no "name"`}, {Error, `info.json has no "model file" (nor "network file")`}}},
	{"keras", map[string]string{"info.json": caffe(map[string]any{"framework": "keras"}), "w.caffemodel": "w", "net.prototxt": "n"}, false,
		[]want{{Error, `info.json "framework" is "keras", want one of caffe, torch, tensorflow`}}},
	{"upper", map[string]string{"info.json": caffe(map[string]any{"framework": "Caffe"}), "w.caffemodel": "w", "net.prototxt": "n"}, true,
		[]want{{Warning, `info.json "framework" is "Caffe": DIGITS keeps it as written`}}},
	{"noweights", map[string]string{"info.json": caffe(nil), "net.prototxt": "net"}, false,
		[]want{{Error, `w.caffemodel is not on the store (info.json "snapshot file", needed as model.caffemodel)`}}},
	{"emptyweights", map[string]string{"info.json": caffe(nil), "w.caffemodel": "", "net.prototxt": "net"}, false,
		[]want{{Error, `w.caffemodel is empty (info.json "snapshot file", needed as model.caffemodel)`}}},
	{"nomodeldef", map[string]string{"info.json": caffe(nil), "w.caffemodel": "w"}, false,
		[]want{{Error, `net.prototxt is not on the store (info.json "model file", needed as original.prototxt)`}}},
	{"tfpart", map[string]string{
		"info.json":                     infoJSON(map[string]any{"name": "tf", "framework": "tensorflow", "snapshot file": "snap.ckpt", "model file": "network.py"}),
		"snap.ckpt.data-00000-of-00001": "d", "snap.ckpt.meta": "m", "network.py": "n",
	}, false, []want{{Error, `snap.ckpt.index is not on the store (info.json "snapshot file", needed as snapshot.ckpt.index; a TensorFlow checkpoint has three parts: .data-00000-of-00001, .index, .meta)`}}},
	{"tfgood", map[string]string{
		"info.json":                     infoJSON(map[string]any{"name": "tf", "framework": "tensorflow", "snapshot file": "snap.ckpt.index", "model file": "network.py"}),
		"snap.ckpt.data-00000-of-00001": "d", "snap.ckpt.index": "i", "snap.ckpt.meta": "m", "network.py": "n",
	}, true, nil},
	{"torchgood", map[string]string{
		"info.json": infoJSON(map[string]any{"name": "t", "framework": "torch", "snapshot file": "s.t7", "network file": "model.lua"}),
		"s.t7":      "w", "model.lua": "m",
	}, true, nil},
	// aux.json only feeds the license, logo and dataset: the model imports
	// (as the mount, ls and import say); the store page is a store-level error.
	{"badaux", map[string]string{"info.json": caffe(nil), "w.caffemodel": "w", "net.prototxt": "n", "aux.json": `{"license": "BSD",`}, true,
		[]want{{Warning, "aux.json is not valid JSON: unexpected end of JSON input: modelstorefs ignores aux.json"}}},
	{"typedaux", map[string]string{"info.json": caffe(nil), "w.caffemodel": "w", "net.prototxt": "n", "aux.json": `{"logo": 5}`}, true,
		[]want{{Warning, `aux.json "logo" is a number, want a string: modelstorefs ignores aux.json`}}},
	{"nolicense", map[string]string{"info.json": caffe(nil), "w.caffemodel": "w", "net.prototxt": "n", "aux.json": `{"license": "BSD"}`}, true,
		[]want{{Warning, `aux.json names the license "BSD" but license.txt is not on the store`}}},
	{"emptylicense", map[string]string{"info.json": caffe(nil), "w.caffemodel": "w", "net.prototxt": "n", "aux.json": `{"license": "BSD"}`, "license.txt": ""}, true,
		[]want{{Warning, `license.txt is empty (aux.json names the license "BSD")`}}},
	{"nologo", map[string]string{"info.json": caffe(nil), "w.caffemodel": "w", "net.prototxt": "n", "aux.json": `{"logo": "logo.png"}`}, true,
		[]want{{Warning, `aux.json names the logo "logo.png" but it is not on the store`}}},
	{"unsafelogo", map[string]string{"info.json": caffe(nil), "w.caffemodel": "w", "net.prototxt": "n", "aux.json": `{"logo": "../logo.png"}`}, true,
		[]want{{Warning, `aux.json logo refused: unsafe file name "../logo.png"`}}},
	{"nolabels", map[string]string{"info.json": caffe(map[string]any{"labels file": "labels.txt"}), "w.caffemodel": "w", "net.prototxt": "n"}, true,
		[]want{{Warning, `labels.txt is not on the store (info.json "labels file"): left out of the folder`}}},
	{"emptylabels", map[string]string{"info.json": caffe(map[string]any{"labels file": "l.txt"}), "w.caffemodel": "w", "net.prototxt": "n", "l.txt": ""}, true,
		[]want{{Warning, `l.txt is empty (info.json "labels file", needed as labels.txt)`}}},
	{"noextra", map[string]string{"info.json": caffe(map[string]any{"solver file": "solver.prototxt"}), "w.caffemodel": "w", "net.prototxt": "n"}, true,
		[]want{{Warning, `solver.prototxt is not on the store (info.json "solver file"): left out of the folder`}}},
	{"unsafeextra", map[string]string{"info.json": caffe(map[string]any{"deploy file": "../deploy.prototxt"}), "w.caffemodel": "w", "net.prototxt": "n"}, true,
		[]want{{Warning, `info.json "deploy file": unsafe file name "../deploy.prototxt": contains "/": left out of the folder`}}},
	{"unsafeweights", map[string]string{"info.json": caffe(map[string]any{"snapshot file": "/etc/passwd"}), "net.prototxt": "n"}, false,
		[]want{{Error, `info.json "snapshot file": unsafe file name "/etc/passwd"`}}},
}

// defectStore writes the defect models into a new directory with a
// master.json listing them all.
func defectStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var names []string
	for _, d := range defects {
		names = append(names, d.model)
		files := map[string]string{}
		for p, data := range d.files {
			files[d.model+"/"+p] = data
		}
		testutil.WriteTree(t, dir, files)
	}
	testutil.WriteTree(t, dir, map[string]string{"master.json": string(remotetest.MasterJSON("defects", names...))})
	return dir
}

// expectModels compares the report's problems for the defect models.
func expectModels(t *testing.T, rep Report) {
	t.Helper()
	byModel := map[string][]Problem{}
	for _, p := range rep.Problems {
		byModel[p.Model] = append(byModel[p.Model], p)
	}
	// The one store-level problem: badaux's aux.json breaks DIGITS' page.
	if st := byModel[""]; len(st) != 1 || st[0].Severity != DIGITSError ||
		!strings.Contains(st[0].Message, "model badaux: aux.json is not valid JSON") || !strings.Contains(st[0].Message, "DIGITS' own store page fails") {
		t.Errorf("store problems: %v, want one error for badaux's aux.json", st)
	}
	if len(rep.Models) != len(defects) {
		t.Fatalf("%d models, want %d", len(rep.Models), len(defects))
	}
	for i, d := range defects {
		t.Run(d.model, func(t *testing.T) {
			if rep.Models[i].Name != d.model || rep.Models[i].Importable != d.importable {
				t.Errorf("model %+v, want %s importable=%v", rep.Models[i], d.model, d.importable)
			}
			got := byModel[d.model]
			if len(got) != len(d.want) {
				t.Fatalf("%d problems, want %d:\n%s", len(got), len(d.want), lines(rep, got))
			}
			for j, w := range d.want {
				if got[j].Severity != w.sev || !strings.Contains(got[j].Message, w.text) {
					t.Errorf("problem %d:\n got %s\nwant %s: ...%s...", j, rep.Line(got[j]), w.sev, w.text)
				}
			}
		})
	}
}

func lines(rep Report, ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + rep.Line(p) + "\n")
	}
	return b.String()
}

// checkDir checks dir as the command does: served by serve.Handler.
func checkDir(t *testing.T, dir string) (Report, error) {
	t.Helper()
	h, err := serve.Handler(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	folders, err := serve.ModelFolders(dir)
	if err != nil {
		t.Fatal(err)
	}
	return Dir(ctx(t), dir, h, folders, fast)
}

func TestDefectsDir(t *testing.T) {
	dir := defectStore(t)
	rep, err := checkDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Target != dir || rep.Source != "master.json" || rep.Msg != "defects" {
		t.Errorf("report header %q %q %q", rep.Target, rep.Source, rep.Msg)
	}
	expectModels(t, rep)
	if !rep.Failed() {
		t.Error("Failed() is false with errors")
	}
	// Lines name the model and severity; the summary closes.
	out := rep.String()
	for _, l := range []string{
		"noinfo: error: the store has no info.json for this model\n",
		`nolicense: warning: aux.json names the license "BSD" but license.txt is not on the store` + "\n",
	} {
		if !strings.Contains(out, l) {
			t.Errorf("report lacks %q:\n%s", l, out)
		}
	}
	nerr, nwarn, nimp := 0, 0, 0
	for _, d := range defects {
		for _, w := range d.want {
			if w.sev == Error {
				nerr++
			} else {
				nwarn++
			}
		}
		if d.importable {
			nimp++
		}
	}
	summary := rep.Summary()
	// and the store-level digits-error for badaux's aux.json
	wantSummary := fmt.Sprintf("%d models, %d importable, %d problems (%d errors, 1 digits-error, %d warnings)", len(defects), nimp, nerr+nwarn+1, nerr, nwarn)
	if summary != wantSummary {
		t.Errorf("summary %q, want %q", summary, wantSummary)
	}
	if !strings.HasSuffix(out, "\n"+summary+"\n") {
		t.Errorf("the report does not end with the summary:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n != len(rep.Problems)+1 {
		t.Errorf("%d lines for %d problems", n, len(rep.Problems))
	}
}

// TestDefectsURL checks the same store over HTTP: the same verdicts, and
// the report names the URL.
func TestDefectsURL(t *testing.T) {
	dir := defectStore(t)
	h, err := serve.Handler(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	rep, err := Store(ctx(t), ts.URL+"/", fast)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Target != ts.URL+"/" {
		t.Errorf("Target %q", rep.Target)
	}
	expectModels(t, rep)
}

// TestDefectsChunked reads the store from a server that sends no
// Content-Length: emptiness is learned from the bodies.
func TestDefectsChunked(t *testing.T) {
	files, err := remotetest.LoadDir(defectStore(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := remotetest.New(files, remotetest.Options{Chunked: true})
	defer srv.Close()
	rep, err := Store(ctx(t), srv.URL, fast)
	if err != nil {
		t.Fatal(err)
	}
	expectModels(t, rep)
}

func TestSampleStore(t *testing.T) {
	rep, err := checkDir(t, "../integration/testdata/store")
	if err != nil {
		t.Fatal(err)
	}
	var broken []string
	for _, m := range rep.Models {
		if !m.Importable {
			broken = append(broken, m.Name)
		}
	}
	if !slices.Equal(broken, []string{"broken"}) {
		t.Errorf("not importable: %q, want [broken]\n%s", broken, rep)
	}
	names := make([]string, len(rep.Models))
	for i, m := range rep.Models {
		names[i] = m.Name
	}
	if !slices.Equal(names, []string{"lenet", "alexnet-torch", "broken", "inception-tf"}) {
		t.Errorf("models %q", names)
	}
	for _, p := range rep.Problems {
		if p.Severity == Error && p.Model != "broken" {
			t.Errorf("unexpected error: %s", rep.Line(p))
		}
	}
	// lenet's info.json names a solver and a train_val file the sample
	// store does not have.
	if !strings.HasPrefix(rep.Summary(), "4 models, 3 importable, 3 problems (1 error, 2 warnings)") {
		t.Errorf("summary %q\n%s", rep.Summary(), rep)
	}
	if !rep.Failed() {
		t.Error("Failed() is false")
	}
	if !strings.Contains(rep.String(), "broken: error: info.json is not valid JSON") {
		t.Errorf("report:\n%s", rep)
	}
}

// storeLevelCase is a row of TestStoreLevel: a store directory, the source and
// models check must find in it, and its store-level problems.
type storeLevelCase struct {
	name   string
	files  map[string]string
	source string
	models []string
	want   []want // store-level problems
}

func TestStoreLevel(t *testing.T) {
	tests := storeLevelCases()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			testutil.WriteTree(t, dir, tc.files)
			rep, err := checkDir(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range rep.Models {
				names = append(names, m.Name)
			}
			if rep.Source != tc.source || !slices.Equal(names, tc.models) {
				t.Errorf("source %q models %q, want %q %q", rep.Source, names, tc.source, tc.models)
			}
			var store []Problem
			for _, p := range rep.Problems {
				if p.Model == "" {
					store = append(store, p)
				} else {
					t.Errorf("model problem: %s", rep.Line(p))
				}
			}
			if len(store) != len(tc.want) {
				t.Fatalf("store problems:\n%swant %v", lines(rep, store), tc.want)
			}
			for i, w := range tc.want {
				if store[i].Severity != w.sev || !strings.Contains(store[i].Message, w.text) {
					t.Errorf("got %s\nwant %s: ...%s...", rep.Line(store[i]), w.sev, w.text)
				}
				// Store-level lines are prefixed with the target.
				if !strings.HasPrefix(rep.Line(store[i]), dir+": "+string(w.sev)+": ") {
					t.Errorf("line %q", rep.Line(store[i]))
				}
			}
			wantFailed := false
			for _, w := range tc.want {
				wantFailed = wantFailed || w.sev == Error || w.sev == DIGITSError
			}
			if rep.Failed() != wantFailed {
				t.Errorf("Failed() = %v", rep.Failed())
			}
		})
	}
}

// storeLevelCases are one good model (lenet) under master.json files good,
// missing, broken and misleading, and an empty store.
func storeLevelCases() []storeLevelCase {
	good := map[string]string{
		"lenet/info.json": caffe(nil), "lenet/w.caffemodel": "w", "lenet/net.prototxt": "n",
	}
	with := func(extra map[string]string) map[string]string {
		m := maps.Clone(good)
		maps.Copy(m, extra)
		return m
	}
	return []storeLevelCase{
		{"fine", with(map[string]string{"master.json": `{"msg": "hi", "children": ["lenet"]}`}), "master.json", []string{"lenet"}, nil},
		{"no master.json", good, "master.json", []string{"lenet"},
			[]want{{Warning, "no master.json in the directory: `modelstorefs serve` generates one"}}},
		{"invalid master.json", with(map[string]string{"master.json": `{"children": [`}), "listing", []string{"lenet"},
			[]want{{DIGITSError, "master.json is not valid JSON: DIGITS cannot list this store (HTTP 500); modelstorefs falls back to the directory listing"}}},
		{"no msg", with(map[string]string{"master.json": `{"children": ["lenet"]}`}), "master.json", []string{"lenet"},
			[]want{{DIGITSError, `master.json has no "msg"`}}},
		{"no children", with(map[string]string{"master.json": `{"msg": "x"}`}), "listing", []string{"lenet"},
			[]want{{DIGITSError, `master.json has no "children"`}}},
		{"folder not listed", with(map[string]string{"master.json": `{"msg": "x", "children": ["lenet"]}`, "other/info.json": caffe(nil)}), "master.json", []string{"lenet"},
			[]want{{Warning, `folder "other" has an info.json but master.json does not list it`}}},
		{"bad child name", with(map[string]string{"master.json": `{"msg": "x", "children": ["lenet", "a/b", ".."]}`}), "master.json", []string{"lenet"},
			[]want{{Error, `model "a/b": contains a path separator is refused`}, {Error, `model "..": refers to a directory itself is refused`}}},
		{"empty store", map[string]string{"master.json": `{"msg": "x", "children": []}`}, "master.json", nil,
			[]want{{Error, "no models found (master.json)"}}},
	}
}

// TestListingStore checks a URL store without master.json, read from its
// HTML listing, with files the server refuses.
func TestListingStore(t *testing.T) {
	files := map[string][]byte{
		"lenet/info.json":    []byte(caffe(map[string]any{"labels file": "labels.txt"})),
		"lenet/w.caffemodel": []byte("w"), "lenet/net.prototxt": []byte("n"), "lenet/labels.txt": []byte("l"),
		"other/info.json": []byte(caffe(nil)), "other/w.caffemodel": []byte("w"), "other/net.prototxt": []byte("n"),
	}
	srv := remotetest.New(files, remotetest.Options{Listing: true, Prefix: "/team/"})
	defer srv.Close()
	srv.SetStatus("lenet/labels.txt", 403)
	srv.SetStatus("other/w.caffemodel", 403)
	rep, err := Store(ctx(t), srv.URL, fast)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Source != "listing" || len(rep.Models) != 2 {
		t.Fatalf("report %+v", rep)
	}
	out := rep.String()
	for _, l := range []string{
		srv.URL + ": warning: no master.json: the models were found in the directory listing",
		`lenet: warning: labels.txt (info.json "labels file"): the store answered HTTP 403 Forbidden`,
		`other: error: w.caffemodel (info.json "snapshot file", needed as model.caffemodel): the store answered HTTP 403 Forbidden`,
		"2 models, 1 importable, 3 problems (1 error, 2 warnings)",
	} {
		if !strings.Contains(out, l) {
			t.Errorf("report lacks %q:\n%s", l, out)
		}
	}
}

func TestStoreErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	testutil.WriteTree(t, dir, map[string]string{"f": "x"})
	for _, target := range []string{filepath.Join(dir, "missing"), file, "ftp://host/store", "http://127.0.0.1:1/"} {
		if _, err := Store(ctx(t), target, fast); err == nil {
			t.Errorf("Store(%q) succeeded", target)
		}
	}
	for _, target := range []string{filepath.Join(dir, "missing"), file} {
		if _, err := Dir(ctx(t), target, http.NotFoundHandler(), nil, fast); err == nil {
			t.Errorf("Dir(%q) succeeded", target)
		}
	}
	// A cancelled context stops the check.
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Store(c, defectStore(t), fast); err == nil {
		t.Error("Store with a cancelled context succeeded")
	}
}

func TestCredentialsNotReported(t *testing.T) {
	srv := remotetest.New(map[string][]byte{"m/info.json": []byte("{")}, remotetest.Options{Master: true})
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1)
	rep, err := Store(ctx(t), u, fast)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rep.String(), "s3cret") || rep.Target != srv.URL {
		t.Errorf("credentials leak: target %q\n%s", rep.Target, rep)
	}
}

func TestIsURL(t *testing.T) {
	for s, want := range map[string]bool{
		"http://h/": true, "HTTPS://h": true, " https://h": true,
		"/srv/store": false, "store": false, "http:store": false, "ftp://h": false,
	} {
		if IsURL(s) != want {
			t.Errorf("IsURL(%q) = %v", s, !want)
		}
	}
}
