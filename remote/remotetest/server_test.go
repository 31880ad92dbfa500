package remotetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote"
)

func do(t *testing.T, s *Server, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, body
}

func TestServerBasics(t *testing.T) {
	data := []byte("0123456789abcdef")
	s := New(map[string][]byte{"m/f.bin": data}, Options{Prefix: "team"})
	defer s.Close()
	if want := "/team/"; !bytes.HasSuffix([]byte(s.URL), []byte(want)) {
		t.Fatalf("URL %q does not end in %q", s.URL, want)
	}

	resp, body := do(t, s, "GET", "m/f.bin", nil)
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp.StatusCode != 200 || !bytes.Equal(body, data) || etag != s.ETag("m/f.bin") || etag == "" || lm == "" {
		t.Fatalf("GET: %d %q etag %q lm %q", resp.StatusCode, body, etag, lm)
	}
	if etag[0] != '"' {
		t.Errorf("ETag %q is not strong", etag)
	}

	for _, tt := range serverBasicsCases(data, etag) {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, tt.method, "m/f.bin", tt.hdr)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if tt.wantLen != -2 && resp.ContentLength != tt.wantLen {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, tt.wantLen)
			}
		})
	}

	// If-Modified-Since when there is no ETag.
	checkIfModifiedSince(t, data)

	// Outside the prefix and missing files are 404.
	if resp, _ := do(t, s, "GET", "../other", nil); resp.StatusCode != 404 {
		t.Errorf("outside prefix: %d", resp.StatusCode)
	}
	if resp, _ := do(t, s, "GET", "m/nope", nil); resp.StatusCode != 404 {
		t.Errorf("missing: %d", resp.StatusCode)
	}

	checkServerCounts(t, s, etag)
}

// serverBasicsCase is one request for m/f.bin and the answer it wants
// (wantBody "": any body; wantLen -2: any Content-Length).
type serverBasicsCase struct {
	name       string
	method     string
	hdr        map[string]string
	wantStatus int
	wantBody   string
	wantLen    int64
}

// serverBasicsCases is the table of TestServerBasics' requests for a file
// holding data whose ETag is etag.
func serverBasicsCases(data []byte, etag string) []serverBasicsCase {
	return []serverBasicsCase{
		{"head", "HEAD", nil, 200, "", int64(len(data))},
		{"range", "GET", map[string]string{"Range": "bytes=2-5"}, 206, "2345", 4},
		{"open range", "GET", map[string]string{"Range": "bytes=10-"}, 206, "abcdef", 6},
		{"bad range", "GET", map[string]string{"Range": "bytes=100-"}, 416, "", -2},
		{"if-none-match", "GET", map[string]string{"If-None-Match": etag}, 304, "", -2},
		{"if-none-match head", "HEAD", map[string]string{"If-None-Match": etag}, 304, "", -2},
		{"if-none-match other", "GET", map[string]string{"If-None-Match": `"x"`}, 200, string(data), int64(len(data))},
		{"post", "POST", nil, 405, "", -2},
	}
}

// checkIfModifiedSince checks that a server with NoETag sends no ETag and
// answers If-Modified-Since with 304.
func checkIfModifiedSince(t *testing.T, data []byte) {
	t.Helper()
	s2 := New(map[string][]byte{"f": data}, Options{NoETag: true})
	defer s2.Close()
	resp, _ := do(t, s2, "GET", "f", nil)
	if resp.Header.Get("ETag") != "" {
		t.Fatal("NoETag sent an ETag")
	}
	resp, _ = do(t, s2, "GET", "f", map[string]string{"If-Modified-Since": resp.Header.Get("Last-Modified")})
	if resp.StatusCode != 304 {
		t.Fatalf("If-Modified-Since: status %d, want 304", resp.StatusCode)
	}
}

// checkServerCounts checks the counts and request log of TestServerBasics'
// requests for m/f.bin (whose ETag is etag), and that ResetCounts clears
// them.
func checkServerCounts(t *testing.T, s *Server, etag string) {
	t.Helper()
	if got := s.Count("GET", "m/f.bin"); got != 6 {
		t.Errorf("GET count %d, want 6", got)
	}
	if got := s.Count("HEAD", "m/f.bin"); got != 2 {
		t.Errorf("HEAD count %d, want 2", got)
	}
	var n304 int
	for _, r := range s.Requests("m/f.bin") {
		if r.Status == 304 {
			n304++
			if r.IfNoneMatch != etag {
				t.Errorf("logged If-None-Match %q", r.IfNoneMatch)
			}
		}
	}
	if n304 != 2 {
		t.Errorf("%d answers 304, want 2", n304)
	}
	s.ResetCounts()
	if s.Total() != 0 || len(s.Requests()) != 0 {
		t.Error("ResetCounts left counts")
	}
}

func TestServerMutationAndFailures(t *testing.T) {
	s := New(map[string][]byte{"m/f": []byte("one")}, Options{})
	defer s.Close()
	old := s.ETag("m/f")
	s.Set("m/f", []byte("two"))
	if s.ETag("m/f") == old {
		t.Error("ETag did not change with the content")
	}
	if _, body := do(t, s, "GET", "m/f", nil); string(body) != "two" {
		t.Errorf("body %q after Set", body)
	}

	s.SetHead(false)
	if resp, _ := do(t, s, "HEAD", "m/f", nil); resp.StatusCode != 405 {
		t.Errorf("HEAD off: %d, want 405", resp.StatusCode)
	}
	s.SetHead(true)
	if resp, _ := do(t, s, "HEAD", "m/f", nil); resp.StatusCode != 200 {
		t.Errorf("HEAD on: %d, want 200", resp.StatusCode)
	}

	s.SetStatus("m/f", 500)
	if resp, _ := do(t, s, "GET", "m/f", nil); resp.StatusCode != 500 {
		t.Errorf("SetStatus: %d", resp.StatusCode)
	}
	s.SetStatus("m/f", 0)
	s.SetStatusAll(503)
	if resp, _ := do(t, s, "GET", "m/f", nil); resp.StatusCode != 503 {
		t.Errorf("SetStatusAll: %d", resp.StatusCode)
	}
	s.SetStatusAll(0)

	if !s.Remove("m/f") || s.Remove("m/f") {
		t.Error("Remove")
	}
	if resp, _ := do(t, s, "GET", "m/f", nil); resp.StatusCode != 404 {
		t.Errorf("removed: %d", resp.StatusCode)
	}
	s.Set("a/1", nil)
	s.Set("a/2", nil)
	s.Set("b/1", nil)
	if n := s.RemoveDir("a"); n != 2 {
		t.Errorf("RemoveDir removed %d", n)
	}
}

func TestServerTruncateAndChunked(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100<<10)
	s := New(map[string][]byte{"f": data}, Options{})
	defer s.Close()
	s.Truncate("f", 10)
	resp, err := s.Client().Get(s.URL + "f")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ContentLength != int64(len(data)) || err == nil || len(body) != 10 {
		t.Fatalf("truncated: Content-Length %d, read %d bytes, err %v", resp.ContentLength, len(body), err)
	}

	nr := New(map[string][]byte{"f": []byte("0123456789")}, Options{NoRange: true})
	defer nr.Close()
	resp, body = do(t, nr, "GET", "f", map[string]string{"Range": "bytes=2-3"})
	if resp.StatusCode != 200 || string(body) != "0123456789" {
		t.Errorf("NoRange: %d %q", resp.StatusCode, body)
	}

	c := New(map[string][]byte{"f": []byte("small")}, Options{Chunked: true})
	defer c.Close()
	for _, m := range []string{"GET", "HEAD"} {
		resp, body := do(t, c, m, "f", nil)
		if resp.ContentLength != -1 {
			t.Errorf("%s chunked: Content-Length %d", m, resp.ContentLength)
		}
		if m == "GET" && string(body) != "small" {
			t.Errorf("chunked body %q", body)
		}
	}
}

func TestServerMasterAndListing(t *testing.T) {
	files := map[string][]byte{
		"lenet/info.json":           []byte("{}"),
		"a model/info.json":         []byte("{}"),
		"100%pure/x":                []byte("x"),
		"toplevel.txt":              []byte("t"),
		"nested/deeper/info.json":   []byte("{}"),
		"Zeta/info.json":            []byte("{}"),
		"alexnet-torch/labels.txt":  []byte("l"),
		"alexnet-torch/model.lua":   []byte("l"),
		"alexnet-torch/aux.json":    []byte("{}"),
		"alexnet-torch/info.json":   []byte("{}"),
		"alexnet-torch/snapshot.t7": []byte("w"),
	}
	want := []string{"100%pure", "a model", "alexnet-torch", "lenet", "nested", "Zeta"}

	m := New(files, Options{Master: true, Msg: "hello", Prefix: "/team/"})
	defer m.Close()
	_, body := do(t, m, "GET", "master.json", nil)
	var mj struct {
		Msg      string   `json:"msg"`
		Children []string `json:"children"`
	}
	if err := json.Unmarshal(body, &mj); err != nil {
		t.Fatal(err)
	}
	if mj.Msg != "hello" || !slices.Equal(mj.Children, want) {
		t.Errorf("master.json %+v, want children %q", mj, want)
	}
	if resp, _ := do(t, m, "GET", "", nil); resp.StatusCode != 404 {
		t.Errorf("no Listing option, base answered %d", resp.StatusCode)
	}
	// An explicit master.json wins.
	m.Set("master.json", MasterJSON("x", "only"))
	if _, body := do(t, m, "GET", "master.json", nil); !bytes.Equal(body, MasterJSON("x", "only")) {
		t.Errorf("explicit master.json not served: %s", body)
	}

	l := New(files, Options{Listing: true, Prefix: "/team/"})
	defer l.Close()
	if resp, _ := do(t, l, "GET", "master.json", nil); resp.StatusCode != 404 {
		t.Errorf("no Master option, master.json answered %d", resp.StatusCode)
	}
	resp, body := do(t, l, "GET", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("listing: %d", resp.StatusCode)
	}
	base, _ := url.Parse(l.URL)
	names, err := remote.ParseListing(bytes.NewReader(body), base)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, want) {
		t.Errorf("listing names %q, want %q\n%s", names, want, body)
	}

	// The real discovery client agrees, with and without master.json.
	for _, srv := range []*Server{l, New(files, Options{Master: true})} {
		st, err := remote.NewStore(srv.URL, remote.Options{Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		rl, err := st.ListModels(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rl.Models, want) {
			t.Errorf("%s: ListModels %q, want %q", rl.Source, rl.Models, want)
		}
		if srv != l {
			srv.Close()
		}
	}
}

func TestServerHold(t *testing.T) {
	s := New(map[string][]byte{"f": []byte("held")}, Options{})
	defer s.Close()
	g := s.Hold("f")
	done := make(chan []byte, 1)
	go func() {
		resp, err := s.Client().Get(s.URL + "f")
		if err != nil {
			done <- nil
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- b
	}()
	select {
	case <-g.Arrived():
	case <-time.After(2 * time.Second):
		t.Fatal("request never arrived")
	}
	select {
	case <-done:
		t.Fatal("held request finished before Release")
	case <-time.After(50 * time.Millisecond):
	}
	g.Release()
	select {
	case b := <-done:
		if string(b) != "held" {
			t.Errorf("body %q", b)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("released request did not finish")
	}

	// A held request whose client gives up is let go.
	s.Hold("f")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"f", nil)
	_, err := s.Client().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("abandoned request: %v", err)
	}
}
