package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The model folder listings in testdata/listings were captured with curl
// from nginx 1.22.1 (autoindex on; autoindex_format json; and
// autoindex_exact_size off) and python3 -m http.server, all serving one
// folder: info.json (12 bytes), labels.txt (3), empty.txt (0),
// snapshot_iter_28140.caffemodel (1234567), "a file & <b>.txt" (3), a
// 72-byte name of 3000 bytes and a subdirectory "sub".

const longFile = "a-very-long-file-name-that-exceeds-fifty-characters-for-sure.caffemodel"

// folderString renders a Folder as "name=size[~][/last-modified][/etag]",
// "~" for a Hint.
func folderString(f Folder) string {
	var parts []string
	for _, ff := range f {
		s := fmt.Sprintf("%s=%d", ff.Name, ff.Meta.Size)
		if ff.Meta.Hint {
			s += "~"
		}
		if ff.Meta.LastModified != "" {
			s += "/" + ff.Meta.LastModified
		}
		if ff.Meta.ETag != "" {
			s += "/" + ff.Meta.ETag
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestParseFolderCaptured(t *testing.T) {
	const lm = "/Sun, 06 Dec 2026 01:01:57 GMT"
	tests := []struct {
		file, ctype, base, want string
	}{
		// Exact sizes after the date; the long name's text is cut, its
		// href whole; "sub/" is a directory, left out.
		{"nginx-autoindex-folder.html", "text/html", "http://127.0.0.1:18944/lenet/",
			"a file & <b>.txt=3~ " + longFile + "=3000~ empty.txt=0~ info.json=12~ labels.txt=3~ snapshot_iter_28140.caffemodel=1234567~"},
		// "1M" is no size; below 10000 bytes nginx still writes them all.
		{"nginx-autoindex-folder-approx.html", "text/html", "http://127.0.0.1:18944/approx/lenet/",
			"a file & <b>.txt=3~ " + longFile + "=3000~ empty.txt=0~ info.json=12~ labels.txt=3~ snapshot_iter_28140.caffemodel=-1"},
		// The JSON listing's mtime is nginx's Last-Modified, to the byte.
		{"nginx-autoindex-folder.json", "application/json", "http://127.0.0.1:18944/json/lenet/",
			"a file & <b>.txt=3" + lm + " " + longFile + "=3000" + lm + " empty.txt=0" + lm + " info.json=12" + lm +
				" labels.txt=3" + lm + " snapshot_iter_28140.caffemodel=1234567" + lm},
		// No sizes at all: presence only.
		{"python3-http-server-folder.html", "text/html", "http://127.0.0.1:18945/lenet/",
			"a file & <b>.txt=-1 " + longFile + "=-1 empty.txt=-1 info.json=-1 labels.txt=-1 snapshot_iter_28140.caffemodel=-1"},
		// A JSON body without a JSON media type is still read as JSON.
		{"nginx-autoindex-folder.json", "", "http://127.0.0.1:18944/json/lenet/",
			"a file & <b>.txt=3" + lm + " " + longFile + "=3000" + lm + " empty.txt=0" + lm + " info.json=12" + lm +
				" labels.txt=3" + lm + " snapshot_iter_28140.caffemodel=1234567" + lm},
		// The store's root listing has no files but master.json.bak (2 bytes).
		{"nginx-autoindex-root.html", "text/html", "http://127.0.0.1:18933/", "master.json.bak=2~"},
		{"apache-fancy-htmltable.html", "text/html", "http://127.0.0.1:18932/store/", "master.json.bak=2~"},
		{"apache-fancy-pre.html", "text/html", "http://127.0.0.1:18932/pre/", "master.json.bak=2~"},
		{"apache-plain.html", "text/html", "http://127.0.0.1:18932/plain/", "master.json.bak=-1"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "listings", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFolder(body, tc.ctype, mustURL(t, tc.base))
			if err != nil {
				t.Fatal(err)
			}
			if got := folderString(f); got != tc.want {
				t.Errorf("ParseFolder =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestParseFolderSynthetic(t *testing.T) {
	const base = "http://h/m/"
	tests := []struct {
		name, ctype, body, want string
	}{
		{"apache table sizes", "text/html",
			`<tr><td><a href="a.bin">a.bin</a></td><td align="right">2026-11-25 19:25  </td><td align="right">512 </td><td>&nbsp;</td></tr>` +
				`<tr><td><a href="b.bin">b.bin</a></td><td align="right">2026-11-25 19:25  </td><td align="right">1.2K</td><td>&nbsp;</td></tr>`,
			"a.bin=512~ b.bin=-1"},
		{"a number that is not after a time is no size", "text/html", `<a href="a.bin">a.bin</a> 512<br><a href="b">b</a> 25-Nov-2026 7`, "a.bin=-1 b=-1"},
		{"seconds in the time", "text/html", `<a href="a">a</a> 2026-11-25 19:25:07 42`, "a=42~"},
		{"size is per line", "text/html", "<a href=\"a\">a</a>\n19:25 42 <a href=\"b\">b</a>", "a=-1 b=-1"},
		{"duplicates keep the first", "text/html", `<a href="a">a</a> 1-1-1 10:10 5` + "\n" + `<a href="./a">a</a> 1-1-1 10:10 6`, "a=5~"},
		{"no files, only parent and dirs", "text/html", `<a href="../">..</a><a href="sub/">sub/</a>`, ""},
		{"JSON, Caddy's form", "application/json",
			`[{"name":"w.bin","size":7,"mod_time":"2026-12-06T01:01:57Z","is_dir":false},{"name":"d/","size":0,"is_dir":true}]`, "w.bin=7~"},
		{"JSON, modelstorefs serve's ETag", "application/json",
			`[{"name":"w.bin","type":"file","size":7,"mtime":"Sun, 06 Dec 2026 01:01:57 GMT","etag":"\"e1\""}]`,
			`w.bin=7/Sun, 06 Dec 2026 01:01:57 GMT/"e1"`},
		{"JSON mtime that is no HTTP date is not a validator", "application/json",
			`[{"name":"w","type":"file","size":7,"mtime":"Sunday, 06-Dec-26 01:01:57 GMT"}]`, "w=7~"},
		{"JSON without size, unsafe names skipped", "application/json",
			`[{"name":"w","type":"file"},{"name":"..","type":"file"},{"name":"a/b","type":"file"},{"name":"","type":"file"}]`, "w=-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFolder([]byte(tc.body), tc.ctype, mustURL(t, base))
			if err != nil {
				t.Fatal(err)
			}
			if got := folderString(f); got != tc.want {
				t.Errorf("ParseFolder = %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`{"name":"w"}`, `[{"type":"file"}]`, `[1,2]`} {
		if _, err := ParseFolder([]byte(bad), "application/json", mustURL(t, base)); err == nil {
			t.Errorf("ParseFolder(%s): no error", bad)
		}
	}
}

// TestListFolder: the GET asks for JSON first; a server without folder
// listings gives ErrNoListing, a failing one its error.
func TestListFolder(t *testing.T) {
	var accept string
	mux := http.NewServeMux()
	mux.HandleFunc("/a%20b/", func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `[{"name":"info.json","type":"file","size":3}]`)
	})
	mux.HandleFunc("/html/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<a href="info.json">info.json</a> 06-Dec-2026 01:01  3`)
	})
	mux.HandleFunc("/forbidden/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	mux.HandleFunc("/broken/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusBadGateway) })
	mux.HandleFunc("/notalisting/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"not": "a listing"}`)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	s, err := NewStore(ts.URL, Options{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		model, want string
		err         error
	}{
		{"a b", "info.json=3~", nil},
		{"html", "info.json=3~", nil},
		{"missing", "", ErrNoListing},
		{"forbidden", "", ErrNoListing},
		{"notalisting", "", ErrNoListing},
		{"broken", "", &StatusError{}},
	}
	for _, tc := range tests {
		f, err := s.ListFolder(ctx, tc.model)
		var se *StatusError
		switch {
		case tc.err == nil && err != nil:
			t.Errorf("%s: %v", tc.model, err)
		case tc.err == ErrNoListing && !errors.Is(err, ErrNoListing):
			t.Errorf("%s: %v, want ErrNoListing", tc.model, err)
		case tc.err != nil && tc.err != ErrNoListing && (errors.Is(err, ErrNoListing) || !errors.As(err, &se)):
			t.Errorf("%s: %v, want an HTTP failure that is not ErrNoListing", tc.model, err)
		case folderString(f) != tc.want:
			t.Errorf("%s: %q, want %q", tc.model, folderString(f), tc.want)
		}
	}
	if !strings.HasPrefix(accept, "application/json") {
		t.Errorf("Accept %q: JSON is not asked for first", accept)
	}
}
