package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelstorefs/modelstorefs/digits"
)

// pythonListing is what python3 -m http.server serves for a store directory
// at /team/ (same shape as testdata/listings/python3-http-server.html).
const pythonListing = `<!DOCTYPE HTML>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Directory listing for /team/</title>
</head>
<body>
<h1>Directory listing for /team/</h1>
<hr>
<ul>
<li><a href="../">../</a></li>
<li><a href="100%25pure/">100%pure/</a></li>
<li><a href="a%20model%20with%20spaces/">a model with spaces/</a></li>
<li><a href="alexnet/">alexnet/</a></li>
<li><a href="caff%C3%A9/">caffé/</a></li>
<li><a href="lenet/">lenet/</a></li>
<li><a href="line%0Abreak/">line
break/</a></li>
<li><a href="master.json.bak">master.json.bak</a></li>
<li><a href="?C=N;O=D">Name</a></li>
</ul>
<hr>
</body>
</html>
`

var pythonListingModels = []string{"100%pure", "a model with spaces", "alexnet", "caffé", "lenet"}

// discoveryStore serves master.json with the given handler and pythonListing
// at the base. It counts the requests for the listing.
func discoveryStore(t *testing.T, master http.HandlerFunc) (*Store, *atomic.Int64) {
	t.Helper()
	s, mux := newTestStore(t, fastOptions())
	var listingHits atomic.Int64
	mux.HandleFunc("/team/master.json", master)
	mux.HandleFunc("/team/{$}", func(w http.ResponseWriter, r *http.Request) {
		listingHits.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, pythonListing)
	})
	return s, &listingHits
}

func serveJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
}

// masterJSONCase is a row of TestListModelsMasterJSON: a master.json body and
// the listing ListModels must make of it.
type masterJSONCase struct {
	name     string
	body     string
	msg      string
	models   []string
	rejected []string // each Rejected entry must contain the matching string
}

func TestListModelsMasterJSON(t *testing.T) {
	tests := masterJSONCases()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, listingHits := discoveryStore(t, serveJSON(tc.body))
			l, err := s.ListModels(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if l.Source != "master.json" {
				t.Errorf("Source %q, want master.json", l.Source)
			}
			if listingHits.Load() != 0 {
				t.Errorf("the HTML listing was fetched although master.json is valid")
			}
			if l.Msg != tc.msg {
				t.Errorf("Msg %q, want %q", l.Msg, tc.msg)
			}
			if !slices.Equal(l.Models, tc.models) {
				t.Errorf("Models %q, want %q", l.Models, tc.models)
			}
			if len(l.Rejected) != len(tc.rejected) {
				t.Fatalf("Rejected %q, want %d entries like %q", l.Rejected, len(tc.rejected), tc.rejected)
			}
			for i, r := range l.Rejected {
				if !strings.Contains(r, tc.rejected[i]) || !strings.Contains(r, ": ") {
					t.Errorf("Rejected[%d] = %q, want a \"name: reason\" mentioning %q", i, r, tc.rejected[i])
				}
			}
			for _, m := range l.Models {
				if err := digits.ValidName(m); err != nil {
					t.Errorf("model %q is not a valid name: %v", m, err)
				}
			}
			if s.Requests() != 1 {
				t.Errorf("Requests() = %d, want 1", s.Requests())
			}
		})
	}
}

// masterJSONCases are master.json bodies, plain and odd (duplicates, names
// that are not strings or not safe, unknown fields, unicode).
func masterJSONCases() []masterJSONCase {
	long := strings.Repeat("x", 300)
	return []masterJSONCase{
		{
			name:   "plain",
			body:   `{"msg": "Welcome to the team store", "children": ["lenet", "alexnet"]}`,
			msg:    "Welcome to the team store",
			models: []string{"lenet", "alexnet"},
		},
		{
			name:   "trailing slashes",
			body:   `{"msg": "m", "children": ["lenet/", "alexnet"]}`,
			msg:    "m",
			models: []string{"lenet", "alexnet"},
		},
		{
			name:   "duplicates",
			body:   `{"children": ["b", "a", "b", "a/", "c", "a"]}`,
			models: []string{"b", "a", "c"},
		},
		{
			name:     "not strings",
			body:     `{"msg": "m", "children": ["lenet", 3, {"name": "x"}, ["y"], true, "alexnet"]}`,
			msg:      "m",
			models:   []string{"lenet", "alexnet"},
			rejected: []string{"3", "name", "y", "true"},
		},
		{
			name:     "null child",
			body:     `{"children": [null, "lenet"]}`,
			models:   []string{"lenet"},
			rejected: []string{""},
		},
		{
			name: "hostile names",
			body: `{"children": ["..", ".", "a/b", "", "/", "../etc", "a\\b", "nul\u0000byte", "new\nline", "` +
				long + `", "ok", "..hidden-but-fine", "with space"]}`,
			models:   []string{"ok", "..hidden-but-fine", "with space"},
			rejected: []string{"..", ".", "a/b", "empty", "empty", "../etc", `a\\b`, "nul", "new", "300 bytes"},
		},
		{
			name:   "empty children",
			body:   `{"msg": "nothing yet", "children": []}`,
			msg:    "nothing yet",
			models: nil,
		},
		{
			name:   "msg not a string",
			body:   `{"msg": 42, "children": ["lenet"]}`,
			models: []string{"lenet"},
		},
		{
			name:   "unknown fields",
			body:   `{"msg": "m", "version": 2, "children": ["lenet"], "extra": {"a": 1}}`,
			msg:    "m",
			models: []string{"lenet"},
		},
		{
			name:   "unicode",
			body:   `{"children": ["caffé", "模型", "100%pure"]}`,
			models: []string{"caffé", "模型", "100%pure"},
		},
	}
}

func TestListModelsFallsBackToListing(t *testing.T) {
	tests := []struct {
		name   string
		master http.HandlerFunc
	}{
		{"404", http.NotFound},
		{"403", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "forbidden", http.StatusForbidden) }},
		{"410", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) }},
		{"invalid JSON", serveJSON(`{"msg": "x", "children": ["lenet"`)},
		{"HTML error page with 200", serveJSON("<html><body>Not here</body></html>")},
		{"children is a string", serveJSON(`{"msg": "x", "children": "x"}`)},
		{"children is an object", serveJSON(`{"msg": "x", "children": {"lenet": 1}}`)},
		{"children is null", serveJSON(`{"msg": "x", "children": null}`)},
		{"no children", serveJSON(`{"msg": "x"}`)},
		{"a JSON list", serveJSON(`["lenet"]`)},
		{"a JSON string", serveJSON(`"lenet"`)},
		{"empty body", serveJSON(``)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, listingHits := discoveryStore(t, tc.master)
			l, err := s.ListModels(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if l.Source != "listing" || listingHits.Load() != 1 {
				t.Errorf("Source %q after %d listing requests, want the listing", l.Source, listingHits.Load())
			}
			if want := "Thanks for visiting " + s.Base().String(); l.Msg != want {
				t.Errorf("Msg %q, want %q", l.Msg, want)
			}
			if !slices.Equal(l.Models, pythonListingModels) {
				t.Errorf("Models %q, want %q", l.Models, pythonListingModels)
			}
			// "line\nbreak/" is a child directory link; its name is refused.
			if len(l.Rejected) != 1 || !strings.Contains(l.Rejected[0], "control character") {
				t.Errorf("Rejected %q, want the name with a newline", l.Rejected)
			}
		})
	}
}

func TestListModelsErrors(t *testing.T) {
	t.Run("master.json 500", func(t *testing.T) {
		var hits atomic.Int64
		s, listingHits := discoveryStore(t, func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.Error(w, "boom", http.StatusInternalServerError)
		})
		l, err := s.ListModels(testContext(t))
		if err == nil {
			t.Fatalf("ListModels = %+v, want an error: a failing store must not look like one without master.json", l)
		}
		if listingHits.Load() != 0 {
			t.Errorf("the listing was fetched after master.json failed with 500")
		}
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 500 || se.URL != s.URL("master.json") {
			t.Errorf("error %v, want a *StatusError 500 for %s", err, s.URL("master.json"))
		}
		if hits.Load() != 4 {
			t.Errorf("master.json requested %d times, want 4 (3 retries)", hits.Load())
		}
	})
	t.Run("server down", func(t *testing.T) {
		_, srv := newTestServer(t)
		srv.Close()
		s, err := NewStore(srv.URL+basePath, fastOptions())
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.ListModels(testContext(t))
		if err == nil {
			t.Fatalf("ListModels of a closed port = %+v", l)
		}
		if !strings.Contains(err.Error(), s.URL("master.json")) {
			t.Errorf("error %q does not name the URL", err)
		}
	})
	for _, code := range []int{http.StatusNotFound, http.StatusForbidden, http.StatusInternalServerError} {
		t.Run(fmt.Sprintf("listing %d", code), func(t *testing.T) {
			s, mux := newTestStore(t, fastOptions())
			mux.HandleFunc("/team/master.json", http.NotFound)
			mux.HandleFunc("/team/{$}", func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, http.StatusText(code), code)
			})
			l, err := s.ListModels(testContext(t))
			if err == nil {
				t.Fatalf("ListModels = %+v, want an error", l)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Code != code || se.URL != s.Base().String() {
				t.Errorf("error %v, want a *StatusError %d for %s", err, code, s.Base())
			}
		})
	}
	t.Run("listing too large", func(t *testing.T) {
		s, mux := newTestStore(t, fastOptions())
		mux.HandleFunc("/team/master.json", http.NotFound)
		mux.HandleFunc("/team/{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(MaxListing+1))
			// No body: the length alone must be refused.
		})
		if _, err := s.ListModels(testContext(t)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("ListModels error %v, want ErrTooLarge", err)
		}
	})
}

// A 304 for master.json that nobody asked for is a broken server, not a
// reason to crash.
func TestListModelsUnsolicited304(t *testing.T) {
	s, _ := discoveryStore(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	})
	var l *Listing
	p, err := catchPanic(func() error {
		var err error
		l, err = s.ListModels(testContext(t))
		return err
	})
	if p != nil {
		t.Errorf("ListModels panics when master.json is answered 304 (Fetch dereferences its nil prev): %v", p)
	}
	if err == nil && l.Source != "listing" {
		t.Errorf("ListModels = %+v, %v", l, err)
	}
}

// TestListModelsMasterCap: master.json "children" is held to the cap of
// an HTML listing (maxListingNames entries); beyond it the listing is
// refused as too large, as a body over the byte limit is, without falling
// back to the HTML listing.
func TestListModelsMasterCap(t *testing.T) {
	children := func(n int, entry func(i int) string) string {
		var b strings.Builder
		b.WriteString(`{"msg": "big", "children": [`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(entry(i))
		}
		b.WriteString("]}")
		return b.String()
	}
	valid := func(i int) string { return fmt.Sprintf(`"m%06d"`, i) }
	tests := []struct {
		name     string
		body     string
		models   int
		rejected int
		tooLarge bool
	}{
		{"at the cap", children(maxListingNames, valid), maxListingNames, 0, false},
		{"at the cap, all refused", children(maxListingNames, func(int) string { return `".."` }), 0, maxListingNames, false},
		{"one over", children(maxListingNames+1, valid), 0, 0, true},
		{"one over, duplicates", children(maxListingNames+1, func(int) string { return `"lenet"` }), 0, 0, true},
		{"one over, not strings", children(maxListingNames+1, func(i int) string { return strconv.Itoa(i) }), 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, listingHits := discoveryStore(t, serveJSON(tt.body))
			l, err := s.ListModels(testContext(t))
			if listingHits.Load() != 0 {
				t.Errorf("the HTML listing was fetched")
			}
			if tt.tooLarge {
				if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "100000") {
					t.Fatalf("ListModels = %v, want ErrTooLarge naming the cap", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Models) != tt.models || len(l.Rejected) != tt.rejected {
				t.Errorf("%d models and %d refused, want %d and %d", len(l.Models), len(l.Rejected), tt.models, tt.rejected)
			}
		})
	}
}

// TestParseMasterMemory: the largest master.json read (16 MiB) of tiny
// entries is refused without allocating for each of its 8 million entries.
func TestParseMasterMemory(t *testing.T) {
	body := make([]byte, 0, MaxMasterJSON)
	body = append(body, `{"children": [1`...)
	for len(body) < MaxMasterJSON-4 {
		body = append(body, ",1"...)
	}
	body = append(body, "]}"...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := parseMaster(body)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("parseMaster allocated %d MiB for a %d MiB master.json", allocated>>20, len(body)>>20)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("parseMaster of %d entries: %v, want ErrTooLarge", len(body)/2, err)
	}
	// What is allocated is for the 100000 entries read, not for the body.
	if allocated > 64<<20 {
		t.Errorf("parseMaster allocated %d MiB, want under 64 MiB", allocated>>20)
	}
}

// TestParseMasterFolders: "folders" (modelstorefs serve's) tells what each
// listed folder holds; a malformed folder is left undescribed, a
// "folders" that is not ours is ignored, and master.json stays usable.
func TestParseMasterFolders(t *testing.T) {
	const lm = "Sun, 06 Dec 2026 01:01:57 GMT" // Unix 1796518917
	tests := []struct {
		name, folders string
		want          map[string]string // model -> folderString
	}{
		{"described", `{"a": {"info.json": [12, 1796518917, "\"e1\""], "w.bin": [0, 1796518917, ""]}, "b": {}}`,
			map[string]string{"a": `info.json=12/` + lm + `/"e1" w.bin=0/` + lm, "b": ""}},
		{"no etag", `{"a": {"info.json": [12, 1796518917]}}`, map[string]string{"a": "info.json=12/" + lm}},
		{"a folder not in children is described all the same", `{"zz": {"info.json": [1, 0, ""]}}`,
			map[string]string{"zz": "info.json=1/Thu, 01 Jan 1970 00:00:00 GMT"}},
		{"a malformed entry leaves its folder out", `{"a": {"info.json": [12, 1796518917, ""], "w": [-1, 0, ""]}, "b": {"x": "big"}, "c": {"x/y": [1, 1, ""]}, "d": {"x": [1, 1, ""]}}`,
			map[string]string{"d": "x=1/Thu, 01 Jan 1970 00:00:01 GMT"}},
		{"not an object", `["a"]`, map[string]string{}},
		{"a folder that is no object", `{"a": 3, "d": {"x": [1, 1, ""]}}`, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseMaster([]byte(`{"msg": "m", "children": ["a", "b", "c", "d"], "folders": ` + tc.folders + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.Models, []string{"a", "b", "c", "d"}) {
				t.Errorf("Models %q", l.Models)
			}
			got := map[string]string{}
			for _, m := range []string{"a", "b", "c", "d", "zz"} {
				if f, ok, _ := l.Folders.Folder(context.Background(), m); ok {
					got[m] = folderString(f)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Folders %q, want %q", got, tc.want)
			}
		})
	}
	// digits.MasterJSONFolders writes what ParseMaster reads.
	body := digits.MasterJSONFolders("m", []string{"a", "b"}, [][]digits.MasterEntry{
		{{Name: "info.json", Size: 12, MTime: 1796518917, ETag: `"e1"`}}, nil}, 1<<20, 0)
	l, err := ParseMaster(body)
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := l.Folders.Folder(context.Background(), "a")
	if _, b, _ := l.Folders.Folder(context.Background(), "b"); folderString(a) != `info.json=12/`+lm+`/"e1"` || b {
		t.Errorf("round trip: a %q, b described %v", folderString(a), b)
	}
}

// TestListModelsJSONListing: a store without master.json whose listing is
// nginx's JSON (autoindex_format json) is listed from it.
func TestListModelsJSONListing(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	mux.HandleFunc("/team/master.json", http.NotFound)
	mux.HandleFunc("/team/{$}", serveJSON(`[{"name":"lenet","type":"directory","mtime":"Sun, 06 Dec 2026 01:01:57 GMT"},
{"name":"notes.txt","type":"file","mtime":"Sun, 06 Dec 2026 01:01:57 GMT","size":3},{"name":"a b","type":"directory"}]`))
	l, err := s.ListModels(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "listing" || !slices.Equal(l.Models, []string{"lenet", "a b"}) {
		t.Errorf("ListModels = %+v", l)
	}
}
