package cache

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// TestMetadataKeptAcrossRestart: a catalog started while its store fails
// serves the metadata a previous one kept on disk (stale), and one started
// once the store is back revalidates it with conditional requests.
func TestMetadataKeptAcrossRestart(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{Master: true})
	meta := filepath.Join(t.TempDir(), "meta")

	first := newEnv(t, srv, Config{MetaDir: meta})
	want, err := first.cat.Model(testutil.Ctx(t), first.st, "lenet")
	if err != nil {
		t.Fatal(err)
	}
	first.resolveAll(t)
	first.cat.Close() // as a daemon that stops: what it knows is written

	srv.SetStatusAll(http.StatusServiceUnavailable)
	down := newEnv(t, srv, Config{MetaDir: meta, NegativeTTL: time.Millisecond})
	l, err := down.cat.Listing(testutil.Ctx(t), down.st)
	if err != nil || l.Stale == nil || !l.Has("lenet") {
		t.Fatalf("listing while down after a restart: %+v, %v", l, err)
	}
	m, err := down.cat.Model(testutil.Ctx(t), down.st, "lenet")
	if err != nil {
		t.Fatalf("model while down after a restart: %v", err)
	}
	if !slices.Equal(fileNames(m), fileNames(want)) || !m.Importable || m.Info == nil || m.Info.Name != "LeNet (MNIST)" || m.Aux == nil {
		t.Errorf("kept model = %q importable %v info %+v", fileNames(m), m.Importable, m.Info)
	}

	srv.SetStatusAll(0)
	srv.ResetCounts()
	back := newEnv(t, srv, Config{MetaDir: meta})
	if _, err := back.cat.Model(testutil.Ctx(t), back.st, "lenet"); err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.Requests("lenet/info.json") {
		if r.Status != http.StatusNotModified {
			t.Errorf("info.json after a restart: %+v, want a conditional request answered 304", r)
		}
	}
}

// TestModelLog: lines are kept in batches in one file, the last of a name
// wins, a second log on the file finds them (a torn last line cut off),
// new names stop at the bound while kept ones may still be replaced, and
// a file mostly superseded is written again with the winning lines only.
func TestModelLog(t *testing.T) {
	type op struct {
		name, data string // data "" flushes
	}
	tests := []struct {
		name     string
		maxBytes int64
		ops      []op
		torn     string            // appended to the file before reopening
		want     map[string]string // what a reopened log loads ("" absent)
	}{
		{"last line wins", 1 << 20, []op{{"a", `1`}, {"b", `2`}, {"a", `3`}, {"", ""}},
			"", map[string]string{"a": `3`, "b": `2`, "c": ""}},
		{"pending lines are written at close", 1 << 20, []op{{"a", `1`}},
			"", map[string]string{"a": `1`}},
		{"torn last line", 1 << 20, []op{{"a", `1`}, {"", ""}},
			`"b"` + "\t{\"x\":", map[string]string{"a": `1`, "b": ""}},
		{"names with tabs and quotes", 1 << 20, []op{{"a\t\"b\"", `{"k":"v\tw"}`}},
			"", map[string]string{"a\t\"b\"": `{"k":"v\tw"}`}},
		{"bound: new names refused, kept ones replaced", 25, []op{{"a", `11111`}, {"", ""}, {"b", `22222`}, {"", ""}, {"c", `33333`}, {"a", `44444`}},
			"", map[string]string{"a": `44444`, "b": `22222`, "c": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m", "models.log")
			l := &modelLog{path: path, maxBytes: tc.maxBytes, log: zap.NewNop()}
			for _, o := range tc.ops {
				if o.name == "" {
					l.flush()
					continue
				}
				data := []byte(o.data)
				l.save(o.name, func() ([]byte, error) { return data, nil })
				if got, ok := l.load(o.name); tc.want[o.name] != "" && (!ok || string(got) != o.data) {
					t.Errorf("load(%q) right after save = %q %v", o.name, got, ok)
				}
			}
			l.close()
			if tc.torn != "" {
				f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString(tc.torn)
				f.Close()
			}
			again := &modelLog{path: path, maxBytes: tc.maxBytes, log: zap.NewNop()}
			defer again.close()
			for name, want := range tc.want {
				got, ok := again.load(name)
				if want == "" && ok || want != "" && string(got) != want {
					t.Errorf("reopened: load(%q) = %q %v, want %q", name, got, ok, want)
				}
			}
		})
	}
}

// TestModelLogBatchesAndCompacts: a thousand saves make a few writes, not
// a thousand files; rewriting them all many times keeps the file near the
// size of one copy.
func TestModelLogBatchesAndCompacts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "models.log")
	l := &modelLog{path: path, maxBytes: 1 << 30, log: zap.NewNop()}
	data := []byte(`{"info":"` + strings.Repeat("x", 1000) + `"}`)
	for round := range 6 {
		for i := range 1000 {
			l.save(fmt.Sprintf("model-%04d", i), func() ([]byte, error) { return data, nil })
		}
		l.flush()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		one := int64(1000 * (len(data) + len(`"model-0000"`) + 2))
		if fi.Size() < one || fi.Size() > 2*one+(1<<20) {
			t.Errorf("round %d: file of %d bytes, one copy is %d", round, fi.Size(), one)
		}
	}
	l.close()
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want the log alone", len(entries))
	}
	again := &modelLog{path: path, maxBytes: 1 << 30, log: zap.NewNop()}
	defer again.close()
	for _, i := range []int{0, 500, 999} {
		if got, ok := again.load(fmt.Sprintf("model-%04d", i)); !ok || !bytes.Equal(got, data) {
			t.Errorf("model-%04d after compaction: %d bytes %v", i, len(got), ok)
		}
	}
}
