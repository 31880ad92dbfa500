package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/modelstorefs/modelstorefs/remote"
)

// fixture is a store directory served by an httptest server.
type fixture struct {
	parent, dir string
	weights     []byte
	ts          *httptest.Server
	logs        *observer.ObservedLogs
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

const infoJSON = `{"name": "m", "framework": "caffe", "snapshot file": "weights.bin", "model file": "net.prototxt"}`

// newFixture builds:
//
//	parent/secret.txt                  outside the store
//	parent/outdir/info.json            a model folder outside the store
//	parent/store/
//	  lenet/ info.json weights.bin net.prototxt .secret
//	  torch/ info.json
//	  notamodel/ readme.txt           (no info.json)
//	  sp ace&<b>/ info.json           (needs escaping)
//	  a:b/ info.json                  (":" must be escaped in hrefs)
//	  .hidden  .git/config  .hiddenmodel/info.json
//	  inside -> lenet                 (symlink inside: fine)
//	  inlink.bin -> lenet/weights.bin
//	  abs-in -> /abs/path/of/store/torch (absolute, still inside)
//	  out -> ../outdir                (escapes)
//	  outfile -> ../secret.txt        (escapes)
//	  outabs -> /abs/parent/secret.txt (escapes)
//	  tohidden -> .hiddenmodel        (resolves to a hidden folder)
//	  dangling -> nowhere
func newFixture(t *testing.T) *fixture {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	f := &fixture{parent: parent, dir: dir}
	rng := rand.New(rand.NewPCG(1, 2))
	f.weights = make([]byte, 100_000)
	for i := range f.weights {
		f.weights[i] = byte(rng.Uint32())
	}
	write(t, filepath.Join(parent, "secret.txt"), []byte("top secret\n"))
	write(t, filepath.Join(parent, "outdir", "info.json"), []byte(`{"name": "outside model"}`))
	write(t, filepath.Join(dir, "lenet", "info.json"), []byte(infoJSON))
	write(t, filepath.Join(dir, "lenet", "weights.bin"), f.weights)
	write(t, filepath.Join(dir, "lenet", "net.prototxt"), []byte("name: \"LeNet\"\n"))
	write(t, filepath.Join(dir, "lenet", ".secret"), []byte("hidden\n"))
	write(t, filepath.Join(dir, "torch", "info.json"), []byte(infoJSON))
	write(t, filepath.Join(dir, "notamodel", "readme.txt"), []byte("not a model\n"))
	write(t, filepath.Join(dir, "sp ace&<b>", "info.json"), []byte(infoJSON))
	write(t, filepath.Join(dir, "a:b", "info.json"), []byte(infoJSON))
	write(t, filepath.Join(dir, ".hidden"), []byte("hidden\n"))
	write(t, filepath.Join(dir, ".git", "config"), []byte("[core]\n"))
	write(t, filepath.Join(dir, ".hiddenmodel", "info.json"), []byte(infoJSON))
	symlink(t, "lenet", filepath.Join(dir, "inside"))
	symlink(t, "lenet/weights.bin", filepath.Join(dir, "inlink.bin"))
	symlink(t, filepath.Join(dir, "torch"), filepath.Join(dir, "abs-in"))
	symlink(t, "../outdir", filepath.Join(dir, "out"))
	symlink(t, "../secret.txt", filepath.Join(dir, "outfile"))
	symlink(t, filepath.Join(parent, "secret.txt"), filepath.Join(dir, "outabs"))
	symlink(t, ".hiddenmodel", filepath.Join(dir, "tohidden"))
	symlink(t, "nowhere", filepath.Join(dir, "dangling"))

	core, logs := observer.New(zapcore.DebugLevel)
	f.logs = logs
	h, err := Handler(dir, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(h)
	t.Cleanup(f.ts.Close)
	return f
}

// get sends one request and returns the response with its body read.
func (f *fixture) do(t *testing.T, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// raw sends a request line exactly as written (no client-side cleaning)
// and returns the status code.
func (f *fixture) raw(t *testing.T, target string) int {
	t.Helper()
	conn, err := net.Dial("tcp", f.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: store\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(body, []byte("top secret")) || bytes.Contains(body, []byte("outside model")) {
		t.Errorf("GET %s leaked a file from outside the store: %q", target, body)
	}
	return resp.StatusCode
}

func TestRange(t *testing.T) {
	f := newFixture(t)
	n := len(f.weights)
	tests := []struct {
		rng          string
		status       int
		contentRange string
		want         []byte
	}{
		{"bytes=10-19", 206, fmt.Sprintf("bytes 10-19/%d", n), f.weights[10:20]},
		{"bytes=99990-", 206, fmt.Sprintf("bytes 99990-99999/%d", n), f.weights[99990:]},
		{"bytes=-5", 206, fmt.Sprintf("bytes 99995-99999/%d", n), f.weights[n-5:]},
		{"bytes=0-999999", 206, fmt.Sprintf("bytes 0-99999/%d", n), f.weights},
		{"bytes=200000-", 416, fmt.Sprintf("bytes */%d", n), nil},
		{"", 200, "", f.weights},
	}
	for _, tc := range tests {
		t.Run(tc.rng, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.rng != "" {
				hdr["Range"] = tc.rng
			}
			resp, body := f.do(t, "GET", "/lenet/weights.bin", hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Content-Range"); got != tc.contentRange {
				t.Errorf("Content-Range %q, want %q", got, tc.contentRange)
			}
			if tc.want != nil && !bytes.Equal(body, tc.want) {
				t.Errorf("body: %d bytes, want %d", len(body), len(tc.want))
			}
			if got := resp.Header.Get("Accept-Ranges"); tc.status != 416 && got != "bytes" {
				t.Errorf("Accept-Ranges %q", got)
			}
		})
	}
}

func TestValidators(t *testing.T) {
	f := newFixture(t)
	resp, _ := f.do(t, "HEAD", "/lenet/weights.bin", nil)
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		t.Fatalf("ETag %q is not a strong ETag", etag)
	}
	if lastMod == "" {
		t.Fatal("no Last-Modified")
	}
	// Through a symlink inside the store: the same file, the same validators.
	resp, _ = f.do(t, "HEAD", "/inlink.bin", nil)
	if got := resp.Header.Get("ETag"); got != etag {
		t.Errorf("ETag via symlink %q, want %q", got, etag)
	}
	old := time.Now().Add(-48 * time.Hour).UTC().Format(http.TimeFormat)

	tests := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"If-Range matching ETag", map[string]string{"Range": "bytes=0-9", "If-Range": etag}, 206},
		{"If-Range stale ETag", map[string]string{"Range": "bytes=0-9", "If-Range": `"0-0-0"`}, 200},
		{"If-Range weak ETag", map[string]string{"Range": "bytes=0-9", "If-Range": "W/" + etag}, 200},
		{"If-Range matching date", map[string]string{"Range": "bytes=0-9", "If-Range": lastMod}, 206},
		{"If-Range stale date", map[string]string{"Range": "bytes=0-9", "If-Range": old}, 200},
		{"If-None-Match matching", map[string]string{"If-None-Match": etag}, 304},
		{"If-None-Match list", map[string]string{"If-None-Match": `"x", ` + etag}, 304},
		{"If-None-Match star", map[string]string{"If-None-Match": "*"}, 304},
		{"If-None-Match other", map[string]string{"If-None-Match": `"other"`}, 200},
		{"If-Modified-Since same", map[string]string{"If-Modified-Since": lastMod}, 304},
		{"If-Modified-Since older", map[string]string{"If-Modified-Since": old}, 200},
		{"If-None-Match wins over If-Modified-Since", map[string]string{"If-None-Match": `"other"`, "If-Modified-Since": lastMod}, 200},
		{"If-Match matching", map[string]string{"If-Match": etag}, 200},
		{"If-Match other", map[string]string{"If-Match": `"other"`}, 412},
		{"If-Unmodified-Since older", map[string]string{"If-Unmodified-Since": old}, 412},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do(t, "GET", "/lenet/weights.bin", tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			switch tc.status {
			case 206:
				if !bytes.Equal(body, f.weights[:10]) {
					t.Errorf("206 body %x", body)
				}
			case 200:
				if !bytes.Equal(body, f.weights) {
					t.Errorf("200 body: %d bytes", len(body))
				}
			case 304:
				if len(body) != 0 {
					t.Errorf("304 with a %d-byte body", len(body))
				}
				if got := resp.Header.Get("ETag"); got != etag {
					t.Errorf("304 ETag %q", got)
				}
			}
		})
	}

	// A rewrite gives a new ETag, and the old one no longer matches.
	time.Sleep(10 * time.Millisecond)
	write(t, filepath.Join(f.dir, "lenet", "weights.bin"), f.weights[:500])
	resp, body := f.do(t, "GET", "/lenet/weights.bin", map[string]string{"If-None-Match": etag, "Range": "bytes=0-9", "If-Range": etag})
	if resp.StatusCode != 200 || len(body) != 500 {
		t.Errorf("after a rewrite: status %d, %d bytes; want the whole new file", resp.StatusCode, len(body))
	}
	if resp.Header.Get("ETag") == etag {
		t.Error("the ETag did not change with the content")
	}
}

func TestHead(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		path  string
		ctype string
	}{
		{"/lenet/weights.bin", "application/octet-stream"},
		{"/lenet/info.json", "application/json"},
		{"/master.json", "application/json"},
		{"/", "text/html; charset=utf-8"},
		{"/lenet/", "text/html; charset=utf-8"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			_, getBody := f.do(t, "GET", tc.path, nil)
			resp, body := f.do(t, "HEAD", tc.path, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("HEAD status %d", resp.StatusCode)
			}
			if len(body) != 0 {
				t.Errorf("HEAD returned a %d-byte body", len(body))
			}
			if resp.ContentLength != int64(len(getBody)) {
				t.Errorf("HEAD Content-Length %d, GET gave %d bytes", resp.ContentLength, len(getBody))
			}
			if got := resp.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if resp.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
		})
	}
}

func TestMasterJSON(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(t, "GET", "/master.json", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Folders with info.json, sorted; not notamodel, not the hidden one,
	// not the folder behind the escaping "out" symlink, not "tohidden";
	// symlinks to model folders inside the store are models too.
	var got struct {
		Msg      string
		Children []string
		Folders  map[string]map[string][]any
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("master.json %q: %v", body, err)
	}
	wantChildren := []string{"a:b", "abs-in", "inside", "lenet", "sp ace&<b>", "torch"}
	if got.Msg != Msg || !slices.Equal(got.Children, wantChildren) {
		t.Errorf("generated master.json: msg %q children %q, want %q", got.Msg, got.Children, wantChildren)
	}
	if names, err := ModelFolders(f.dir); err != nil || !slices.Equal(names, got.Children) {
		t.Errorf("ModelFolders() = %q, %v; served %q", names, err, got.Children)
	}
	checkMasterFolders(t, f, body)
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if lastMod == "" {
		t.Error("generated master.json has no Last-Modified")
	}
	resp, _ = f.do(t, "GET", "/master.json", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 304 {
		t.Errorf("If-None-Match on the generated master.json: %d", resp.StatusCode)
	}
	resp, _ = f.do(t, "GET", "/master.json", map[string]string{"If-Modified-Since": lastMod})
	if resp.StatusCode != 304 {
		t.Errorf("If-Modified-Since on the generated master.json: %d", resp.StatusCode)
	}

	// A new model shows up at once, with a new ETag.
	write(t, filepath.Join(f.dir, "zeta", "info.json"), []byte(infoJSON))
	resp, body = f.do(t, "GET", "/master.json", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"zeta"]`) {
		t.Errorf("after adding zeta: %d %s", resp.StatusCode, body)
	}
	checkOwnMasterJSON(t, f)
}

// checkMasterFolders: the generated master.json's "folders" says what each
// model holds, as a HEAD of each file would.
func checkMasterFolders(t *testing.T, f *fixture, body []byte) {
	t.Helper()
	l, err := remote.ParseMaster(body)
	if err != nil {
		t.Fatal(err)
	}
	st, err := remote.NewStore(f.ts.URL, remote.Options{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	for model, files := range map[string][]string{"lenet": {"info.json", "net.prototxt", "weights.bin"}, "torch": {"info.json"}, "inside": {"info.json", "net.prototxt", "weights.bin"}} {
		var names []string
		folder, _, _ := l.Folders.Folder(context.Background(), model)
		for _, ff := range folder {
			names = append(names, ff.Name)
			head, err := st.Stat(context.Background(), nil, model, ff.Name)
			if err != nil || head != ff.Meta {
				t.Errorf("%s/%s: master.json says %+v, HEAD %+v %v", model, ff.Name, ff.Meta, head, err)
			}
		}
		if !slices.Equal(names, files) {
			t.Errorf("master.json folder %s holds %q, want %q (no hidden file)", model, names, files)
		}
	}
}

// checkOwnMasterJSON: the directory's own master.json wins, byte for byte,
// unless it leads outside the store.
func checkOwnMasterJSON(t *testing.T, f *fixture) {
	t.Helper()
	// The directory's own master.json wins, byte for byte.
	own := []byte(`{"msg": "mine", "children": ["lenet"]}`)
	write(t, filepath.Join(f.dir, "master.json"), own)
	resp, body := f.do(t, "GET", "/master.json", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, own) {
		t.Errorf("own master.json: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("Last-Modified") == "" {
		t.Errorf("own master.json is not served as a file: %v", resp.Header)
	}
	// Listed once in the root listing.
	_, listing := f.do(t, "GET", "/", nil)
	if n := strings.Count(string(listing), `href="master.json"`); n != 1 {
		t.Errorf("master.json listed %d times", n)
	}

	// An own master.json that leads outside is refused, not replaced.
	os.Remove(filepath.Join(f.dir, "master.json"))
	symlink(t, "../secret.txt", filepath.Join(f.dir, "master.json"))
	if resp, _ := f.do(t, "GET", "/master.json", nil); resp.StatusCode != 403 {
		t.Errorf("master.json symlinked outside: status %d, want 403", resp.StatusCode)
	}
}

func TestListing(t *testing.T) {
	f := newFixture(t)
	checkRootListing(t, f)
	checkJSONListing(t, f)
	checkModelListing(t, f)
	// Directories without the slash are redirected, as python does.
	resp, _ := f.do(t, "GET", "/sp%20ace&%3Cb%3E?x=1", nil)
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "/sp%20ace%26%3Cb%3E/?x=1" {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A file with a trailing slash is not found.
	if resp, _ := f.do(t, "GET", "/lenet/info.json/", nil); resp.StatusCode != 404 {
		t.Errorf("file with a slash: %d", resp.StatusCode)
	}
}

// checkRootListing: the store's HTML listing shows its folders and files,
// escaped, and never hidden ones or symlinks leading out; ParseListing
// reads the folders back.
func checkRootListing(t *testing.T, f *fixture) {
	t.Helper()
	resp, body := f.do(t, "GET", "/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	page := string(body)
	for _, want := range []string{
		"<title>Directory listing for /</title>",
		`<li><a href="lenet/">lenet/</a></li>`,
		`<li><a href="inlink.bin">inlink.bin</a></li>`,
		`<li><a href="master.json">master.json</a></li>`,
		`<li><a href="sp%20ace%26%3Cb%3E/">sp ace&amp;&lt;b&gt;/</a></li>`,
		`<li><a href="a%3Ab/">a:b/</a></li>`,
		`<li><a href="inside/">inside/</a></li>`, // a symlink to a directory shows as one
	} {
		if !strings.Contains(page, want) {
			t.Errorf("listing lacks %s:\n%s", want, page)
		}
	}
	for _, never := range []string{".hidden", ".git", ".hiddenmodel", "tohidden", "outfile", "outabs", `"out/"`, "dangling"} {
		if strings.Contains(page, never) {
			t.Errorf("listing shows %s:\n%s", never, page)
		}
	}

	base, _ := url.Parse(f.ts.URL + "/")
	names, err := remote.ParseListing(bytes.NewReader(body), base)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a:b", "abs-in", "inside", "lenet", "notamodel", "sp ace&<b>", "torch"}
	if !slices.Equal(names, want) {
		t.Errorf("ParseListing = %q, want %q", names, want)
	}
}

// checkJSONListing: to a client that asks for JSON first, nginx's JSON
// listing, with each file's size, Last-Modified and ETag as a HEAD tells
// them; other clients get HTML.
func checkJSONListing(t *testing.T, f *fixture) {
	t.Helper()
	resp, body := f.do(t, "GET", "/lenet/", map[string]string{"Accept": "application/json, text/html;q=0.9"})
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || resp.Header.Get("Vary") != "Accept" {
		t.Errorf("JSON listing: Content-Type %q, Vary %q", ct, resp.Header.Get("Vary"))
	}
	sub, _ := url.Parse(f.ts.URL + "/lenet/")
	folder, err := remote.ParseFolder(body, "application/json", sub)
	if err != nil {
		t.Fatal(err)
	}
	st, err := remote.NewStore(f.ts.URL, remote.Options{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, ff := range folder {
		files = append(files, ff.Name)
		if head, err := st.Stat(context.Background(), nil, "lenet", ff.Name); err != nil || head != ff.Meta {
			t.Errorf("JSON listing says %s is %+v, HEAD %+v %v", ff.Name, ff.Meta, head, err)
		}
	}
	if want := []string{"info.json", "net.prototxt", "weights.bin"}; !slices.Equal(files, want) {
		t.Errorf("JSON listing of lenet: %q, want %q", files, want)
	}
	for _, accept := range []string{"", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "*/*"} {
		if resp, _ := f.do(t, "GET", "/lenet/", map[string]string{"Accept": accept}); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("Accept %q: %s, want the HTML listing", accept, resp.Header.Get("Content-Type"))
		}
	}
}

// checkModelListing: a model folder's listing shows its files, not the
// hidden one.
func checkModelListing(t *testing.T, f *fixture) {
	t.Helper()
	_, body := f.do(t, "GET", "/lenet/", nil)
	sub, _ := url.Parse(f.ts.URL + "/lenet/")
	if names, _ := remote.ParseListing(bytes.NewReader(body), sub); len(names) != 0 {
		t.Errorf("lenet has no subdirectories, ParseListing = %q", names)
	}
	for _, want := range []string{`<a href="info.json">info.json</a>`, `<a href="weights.bin">weights.bin</a>`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("lenet listing lacks %s", want)
		}
	}
	if strings.Contains(string(body), ".secret") || strings.Contains(string(body), "master.json") {
		t.Errorf("lenet listing:\n%s", body)
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	if err := syscall.Mkfifo(filepath.Join(f.dir, "lenet", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target string
		status []int
	}{
		// Traversal, written so that no client cleans it first.
		{"/../secret.txt", []int{403, 404}},
		{"/%2e%2e/secret.txt", []int{403, 404}},
		{"/%2E%2E/secret.txt", []int{403, 404}},
		{"/lenet/../../secret.txt", []int{403, 404}},
		{"/lenet/%2e%2e/%2e%2e/secret.txt", []int{403, 404}},
		{"/..%2fsecret.txt", []int{403, 404}},
		{"/lenet/..", []int{403, 404}},
		{"//../secret.txt", []int{403, 404}},
		// Symlinks leading outside.
		{"/outfile", []int{403}},
		{"/outabs", []int{403}},
		{"/out/", []int{403}},
		{"/out/info.json", []int{403}},
		{"/out", []int{403}},
		// Hidden files, directly or through a symlink.
		{"/.hidden", []int{404}},
		{"/.git/config", []int{404}},
		{"/.git/", []int{404}},
		{"/lenet/.secret", []int{404}},
		{"/inside/.secret", []int{404}},
		{"/%2ehidden", []int{404}},
		{"/tohidden/info.json", []int{404}},
		{"/./lenet/info.json", []int{404}},
		// Missing, dangling, special.
		{"/nothere", []int{404}},
		{"/dangling", []int{404}},
		{"/lenet/info.json/x", []int{404}},
		{"/lenet/fifo", []int{403}},
		{"/lenet/%00", []int{400}},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			if got := f.raw(t, tc.target); !slices.Contains(tc.status, got) {
				t.Errorf("GET %s: status %d, want one of %v", tc.target, got, tc.status)
			}
		})
	}

	// Symlinks that stay inside the store work.
	for _, ok := range []string{"/inside/info.json", "/inlink.bin", "/abs-in/info.json", "/inside/", "/lenet/info.json"} {
		if got := f.raw(t, ok); got != 200 {
			t.Errorf("GET %s: status %d, want 200", ok, got)
		}
	}
	_, body := f.do(t, "GET", "/inlink.bin", nil)
	if !bytes.Equal(body, f.weights) {
		t.Error("inlink.bin is not the weights")
	}

	// Only GET and HEAD.
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		resp, _ := f.do(t, m, "/lenet/info.json", nil)
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow=%q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	// The fifo is not listed either.
	_, body = f.do(t, "GET", "/lenet/", nil)
	if strings.Contains(string(body), "fifo") {
		t.Error("the fifo is listed")
	}
}

func TestRequestLog(t *testing.T) {
	f := newFixture(t)
	f.do(t, "GET", "/lenet/info.json", map[string]string{"Range": "bytes=0-4"})
	f.raw(t, "/../secret.txt")
	var reqs []observer.LoggedEntry
	for _, e := range f.logs.All() {
		if e.Message == "request" {
			reqs = append(reqs, e)
		}
	}
	if len(reqs) != 2 {
		t.Fatalf("%d request log lines, want 2: %v", len(reqs), f.logs.All())
	}
	m := reqs[0].ContextMap()
	if m["method"] != "GET" || m["path"] != "/lenet/info.json" || m["status"] != int64(206) || m["bytes"] != int64(5) {
		t.Errorf("request log %v", m)
	}
	if _, ok := m["duration"]; !ok {
		t.Errorf("no duration in %v", m)
	}
	if m := reqs[1].ContextMap(); m["status"] != int64(403) || m["path"] != "/../secret.txt" {
		t.Errorf("refusal log %v", m)
	}
	if f.logs.FilterMessage("refused: outside the store directory").Len() != 1 {
		t.Error("the refusal was not logged as a warning")
	}
}

// TestRemoteClient reads the served store with the mount's own client.
func TestRemoteClient(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st, err := remote.NewStore(f.ts.URL, remote.Options{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "master.json" || l.Msg != Msg || !slices.Equal(l.Models, []string{"a:b", "abs-in", "inside", "lenet", "sp ace&<b>", "torch"}) {
		t.Errorf("ListModels = %+v", l)
	}

	info, meta, err := st.Fetch(ctx, nil, 1<<20, "sp ace&<b>", "info.json")
	if err != nil || string(info) != infoJSON {
		t.Fatalf("Fetch info.json of an escaped name: %q %v", info, err)
	}
	if _, _, err := st.Fetch(ctx, &meta, 1<<20, "sp ace&<b>", "info.json"); !errors.Is(err, remote.ErrNotModified) {
		t.Errorf("conditional Fetch: %v, want ErrNotModified", err)
	}

	m, err := st.Stat(ctx, nil, "lenet", "weights.bin")
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != int64(len(f.weights)) || m.ETag == "" || m.LastModified == "" {
		t.Errorf("Stat = %+v", m)
	}
	if _, err := st.Stat(ctx, &m, "lenet", "weights.bin"); !errors.Is(err, remote.ErrNotModified) {
		t.Errorf("conditional Stat: %v, want ErrNotModified", err)
	}
	if _, err := st.Stat(ctx, nil, "lenet", "missing.bin"); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("Stat of a missing file: %v", err)
	}

	for _, rg := range []struct{ off, n int64 }{{0, 100}, {12345, 4096}, {99_000, 0}, {0, 0}} {
		b, err := st.GetRange(ctx, m, rg.off, rg.n, "lenet", "weights.bin")
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", rg.off, rg.n, err)
		}
		got, err := io.ReadAll(b)
		b.Close()
		end := rg.off + rg.n
		if rg.n == 0 {
			end = int64(len(f.weights))
		}
		if err != nil || !bytes.Equal(got, f.weights[rg.off:end]) {
			t.Errorf("GetRange(%d, %d): %d bytes, %v", rg.off, rg.n, len(got), err)
		}
	}
	if st.RangeSupport() != remote.RangeYes {
		t.Error("the client did not see Range support")
	}

	// A changed file is detected by If-Range.
	time.Sleep(10 * time.Millisecond)
	write(t, filepath.Join(f.dir, "lenet", "weights.bin"), f.weights[:len(f.weights)-1])
	if _, err := st.GetRange(ctx, m, 10, 10, "lenet", "weights.bin"); !errors.Is(err, remote.ErrChanged) {
		t.Errorf("GetRange of a changed file: %v, want ErrChanged", err)
	}

	var buf bytes.Buffer
	m2, _ := st.Stat(ctx, nil, "lenet", "net.prototxt")
	if n, err := st.Download(ctx, &buf, m2, "lenet", "net.prototxt"); err != nil || n != m2.Size {
		t.Errorf("Download: %d %v", n, err)
	}

	// An invalid own master.json: the client falls back to the listing.
	write(t, filepath.Join(f.dir, "master.json"), []byte("{not json"))
	l, err = st.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "listing" || !slices.Equal(l.Models, []string{"a:b", "abs-in", "inside", "lenet", "notamodel", "sp ace&<b>", "torch"}) {
		t.Errorf("ListModels from the listing = %+v", l)
	}
}

func TestHandlerErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	write(t, file, []byte("x"))
	for _, d := range []string{filepath.Join(dir, "missing"), file} {
		if _, err := Handler(d, nil); err == nil {
			t.Errorf("Handler(%s) succeeded", d)
		}
	}
	// A store directory reached through a symlink is fine.
	write(t, filepath.Join(dir, "real", "m", "info.json"), []byte(infoJSON))
	symlink(t, "real", filepath.Join(dir, "link"))
	h, err := Handler(filepath.Join(dir, "link"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/m/info.json", nil))
	if rec.Code != 200 || rec.Body.String() != infoJSON {
		t.Errorf("through a symlinked root: %d %q", rec.Code, rec.Body)
	}
}

func TestListenAndServe(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "m", "info.json"), []byte(infoJSON))
	h, err := Handler(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, "127.0.0.1:0", h, zap.New(core)) }()

	var u string
	for deadline := time.Now().Add(5 * time.Second); u == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if e := logs.FilterMessage("serving").All(); len(e) > 0 {
			u, _ = e[0].ContextMap()["url"].(string)
		}
	}
	if !strings.HasPrefix(u, "http://127.0.0.1:") {
		cancel()
		t.Fatalf("no URL logged: %v", logs.All())
	}
	resp, err := http.Get(u + "master.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"children":["m"]`) {
		t.Errorf("master.json %q", body)
	}

	// A slow download in flight does not keep the server up for ever.
	conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /m/info.json HTTP/1.1\r\nHost: x\r\n\r\n") // keep-alive, never read

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ListenAndServe after cancel: %v", err)
		}
	case <-time.After(ShutdownTimeout + 5*time.Second):
		t.Fatal("ListenAndServe did not return after its context ended")
	}
	if _, err := http.Get(u); err == nil {
		t.Error("still serving after shutdown")
	}

	// A busy address is an error, at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := ListenAndServe(context.Background(), ln.Addr().String(), h, nil); err == nil {
		t.Error("ListenAndServe on a busy address succeeded")
	}
}

// TestDocCache: a generated master.json is made once for the requests
// that come while it is made, and served again for a moment while the
// store directory is unchanged; a changed directory makes it again. Other
// documents (folder pages) are made apart, and no more than maxKeptDocs
// are kept.
func TestDocCache(t *testing.T) {
	var c docCache
	var gens atomic.Int32
	release := make(chan struct{})
	gen := func() ([]byte, time.Time, error) {
		n := gens.Add(1)
		if n == 1 {
			<-release
		}
		return []byte(fmt.Sprint(n)), time.Time{}, nil
	}
	t0 := time.Unix(1000, 0)
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _, _ := c.get("m", t0, gen)
			got[i] = string(b)
		}()
	}
	for gens.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the others wait for the one running
	close(release)
	wg.Wait()
	for i, g := range got {
		if g != "1" {
			t.Errorf("request %d got generation %q, want the shared first", i, g)
		}
	}
	if b, _, _ := c.get("m", t0, gen); string(b) != "1" || gens.Load() != 1 {
		t.Errorf("right after: generation %q (%d made), want the first again", b, gens.Load())
	}
	if b, _, _ := c.get("m", t0.Add(time.Nanosecond), gen); string(b) != "2" {
		t.Errorf("store directory changed: generation %q, want a new one", b)
	}
	for i := range 3 * maxKeptDocs {
		c.get(fmt.Sprint("page", i), t0, gen)
	}
	if b, _, _ := c.get("page0", t0, gen); string(b) == "3" {
		t.Error("the first page was kept past maxKeptDocs")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.docs) > maxKeptDocs {
		t.Errorf("%d documents kept, want at most %d", len(c.docs), maxKeptDocs)
	}
}
