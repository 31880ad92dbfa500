package remote

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/digits"
)

// TestFolderPages: master.json's "folder_pages" are read when a folder of
// theirs is first asked about, once for every caller that asks at once; a
// page tells only of its own range; a page that fails is said once and
// its folders are then undescribed; one whose read was given up (the
// caller's context) is read by the next caller; a list that is not ours
// is ignored whole.
func TestFolderPages(t *testing.T) {
	const info = `{"info.json": [12, 1796518917, "\"e\""]}`
	master := func(pages string) string {
		return `{"msg": "m", "children": ["a", "b", "c", "d", "e", "f"], "folders": {"a": ` + info + `}, "folder_pages": ` + pages + `}`
	}
	tests := []struct {
		name      string
		pages     string
		described string // the folders described, in order
		pageReqs  int64
	}{
		{"pages read", `[["b", "c"], ["d", "e"], ["f", "f"]]`, "abcdef", 3},
		{"a failing page", `[["b", "c"], ["d", "d"], ["f", "f"]]`, "abcf", 3},
		{"out of order: ignored", `[["d", "e"], ["b", "c"]]`, "a", 0},
		{"overlapping: ignored", `[["b", "d"], ["d", "e"]]`, "a", 0},
		{"a range backwards: ignored", `[["c", "b"]]`, "a", 0},
		{"not a list: ignored", `{"b": "c"}`, "a", 0},
		{"too many: ignored", manyPages(digits.MaxFolderPages + 1), "a", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, mux := newTestStore(t, fastOptions())
			var pageReqs atomic.Int64
			mux.HandleFunc(basePath+"master.json", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, master(tc.pages)) })
			mux.HandleFunc(basePath+digits.FolderPageFile, func(w http.ResponseWriter, r *http.Request) {
				pageReqs.Add(1)
				from, to := r.URL.Query().Get("from"), r.URL.Query().Get("to")
				time.Sleep(20 * time.Millisecond) // callers asking at once wait for one read
				switch {
				case from == "b" && to == "c": // and two folders outside its range
					fmt.Fprint(w, `{"folders": {"a": {}, "b": `+info+`, "c": `+info+`, "e": `+info+`}}`)
				case from == "d" && to == "e", from == "f":
					fmt.Fprint(w, `{"folders": {"`+from+`": `+info+`, "e": `+info+`}}`)
				default:
					http.NotFound(w, r)
				}
			})
			l, err := s.ListModels(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			var (
				described [6]atomic.Bool
				errs      atomic.Int64
				wg        sync.WaitGroup
			)
			for i, m := range l.Models {
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						f, ok, err := l.Folders.Folder(testContext(t), m)
						if err != nil {
							errs.Add(1)
						}
						if ok && folderString(f) == `info.json=12/Sun, 06 Dec 2026 01:01:57 GMT/"e"` {
							described[i].Store(true)
						}
					}()
				}
			}
			wg.Wait()
			var got strings.Builder
			for i, m := range l.Models {
				if described[i].Load() {
					got.WriteString(m)
				}
			}
			if got.String() != tc.described {
				t.Errorf("described %q, want %q", got.String(), tc.described)
			}
			if pageReqs.Load() != tc.pageReqs {
				t.Errorf("%d page requests, want %d", pageReqs.Load(), tc.pageReqs)
			}
			if want := int64(strings.Count(tc.name, "failing")); errs.Load() != want {
				t.Errorf("%d callers told of a failed page, want %d", errs.Load(), want)
			}
		})
	}
}

// TestFolderPageGivenUp: a page read whose caller gives up is read again
// by the next caller, and the one that gave up is told nothing.
func TestFolderPageGivenUp(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	release := make(chan struct{})
	var pageReqs atomic.Int64
	mux.HandleFunc(basePath+"master.json", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"children": ["a"], "folder_pages": [["a", "a"]]}`)
	})
	mux.HandleFunc(basePath+digits.FolderPageFile, func(w http.ResponseWriter, r *http.Request) {
		if pageReqs.Add(1) == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		fmt.Fprint(w, `{"folders": {"a": {"info.json": [1, 0, ""]}}}`)
	})
	defer close(release)
	l, err := s.ListModels(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, ok, err := l.Folders.Folder(ctx, "a"); ok || err != nil {
		t.Errorf("given up: described %v, %v; want nothing", ok, err)
	}
	if f, ok, err := l.Folders.Take(testContext(t), "a"); !ok || err != nil || len(f) != 1 {
		t.Errorf("next caller: described %v (%v), %v", ok, f, err)
	}
	if pageReqs.Load() != 2 {
		t.Errorf("%d page requests, want 2", pageReqs.Load())
	}
	if _, ok, _ := l.Folders.Folder(testContext(t), "a"); ok {
		t.Error("a taken folder is still described")
	}
}

func manyPages(n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `["p%05d", "p%05d"]`, i, i)
	}
	return b.String() + "]"
}

// TestFolderPagesReadAhead: ReadAhead reads the first page once a folder
// of master.json is asked about, and each next one once a folder of the
// page before it is, so that callers in order find it read; it ends when
// every page is read, or when its context does while it waits.
func TestFolderPagesReadAhead(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	var pageReqs atomic.Int64
	mux.HandleFunc(basePath+"master.json", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"children": ["0", "a", "b", "c"], "folders": {"0": {"info.json": [1, 0, ""]}}, "folder_pages": [["a", "a"], ["b", "b"], ["c", "c"]]}`)
	})
	mux.HandleFunc(basePath+digits.FolderPageFile, func(w http.ResponseWriter, r *http.Request) {
		pageReqs.Add(1)
		fmt.Fprintf(w, `{"folders": {%q: {"info.json": [1, 0, ""]}}}`, r.URL.Query().Get("from"))
	})
	list := func() *Listing {
		l, err := s.ListModels(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	waitReqs := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); pageReqs.Load() < want && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(30 * time.Millisecond) // and no more than that
		if got := pageReqs.Load(); got != want {
			t.Fatalf("%d page requests, want %d", got, want)
		}
	}

	l := list()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Folders.ReadAhead(testContext(t))
	}()
	waitReqs(0) // no page before any folder is asked about
	for i, m := range []string{"0", "a", "b", "c"} {
		if _, ok, err := l.Folders.Folder(testContext(t), m); !ok || err != nil {
			t.Fatalf("%s: described %v, %v", m, ok, err)
		}
		waitReqs(int64(min(i+1, 3))) // the next page, read ahead
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ReadAhead did not return once every page was read")
	}

	// Ended while it waits for a page to be asked about.
	pageReqs.Store(0)
	l = list()
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() {
		defer close(done)
		l.Folders.ReadAhead(ctx)
	}()
	if _, ok, _ := l.Folders.Folder(ctx, "0"); !ok {
		t.Fatal("0 undescribed")
	}
	waitReqs(1)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ReadAhead did not return when its context ended")
	}
}
