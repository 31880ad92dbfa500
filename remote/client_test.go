package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// basePath is where the test stores live on their server. It is not "/", so
// a URL built from the host root instead of the store base reaches the guard
// in newTestServer and fails the test (as go-github's setup() does).
const basePath = "/team/"

// newTestServer starts an HTTP server on 127.0.0.1 whose handlers are
// registered on mux with full paths ("/team/x"). Requests outside basePath
// fail the test.
func newTestServer(t *testing.T) (*http.ServeMux, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, basePath) {
			t.Errorf("request outside the store base %s: %s %s", basePath, r.Method, r.URL)
			http.Error(w, "outside the store", http.StatusTeapot)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return mux, srv
}

// newTestStore returns a Store for basePath on a new test server. The base is
// given without its trailing slash on purpose.
func newTestStore(t *testing.T, opt Options) (*Store, *http.ServeMux) {
	t.Helper()
	mux, srv := newTestServer(t)
	s, err := NewStore(srv.URL+strings.TrimSuffix(basePath, "/"), opt)
	if err != nil {
		t.Fatal(err)
	}
	return s, mux
}

// fastOptions keeps every wait of a test short.
func fastOptions() Options {
	return Options{
		ConnectTimeout: 2 * time.Second,
		HeaderTimeout:  2 * time.Second,
		StallTimeout:   2 * time.Second,
		Backoff:        time.Millisecond,
		MaxBackoff:     5 * time.Millisecond,
	}
}

// testContext is canceled when the test ends and after 5s at the latest.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// counter counts the requests that reach a handler.
type counter struct{ n atomic.Int64 }

func (c *counter) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		h(w, r)
	}
}

func (c *counter) get() int64 { return c.n.Load() }

// rawResponse writes resp as the whole answer, byte for byte, and closes the
// connection: for answers net/http would not produce.
func rawResponse(t *testing.T, w http.ResponseWriter, resp string) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	defer conn.Close()
	_, _ = buf.WriteString(resp)
	_ = buf.Flush()
}

// resetConnection closes the connection with a TCP RST and no answer.
func resetConnection(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// waitGone blocks until the client goes away, at most d.
func waitGone(r *http.Request, d time.Duration) bool {
	select {
	case <-r.Context().Done():
		return true
	case <-time.After(d):
		return false
	}
}

// catchPanic runs f and returns the value it panicked with, or its error.
func catchPanic(f func() error) (panicked any, err error) {
	defer func() { panicked = recover() }()
	return nil, f()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestParseBaseURL(t *testing.T) {
	ok := []struct{ in, want string }{
		{"http://127.0.0.1:8000", "http://127.0.0.1:8000/"},
		{"http://127.0.0.1:8001/team", "http://127.0.0.1:8001/team/"},
		{"https://host/a/b/", "https://host/a/b/"},
		{"  http://host/x \t", "http://host/x/"},
		{"HTTP://host/x", "http://host/x/"},
		{"http://host/a%20b", "http://host/a%20b/"},
		{"http://host/a%2Fb", "http://host/a%2Fb/"},
		{"http://host/caff%C3%A9", "http://host/caff%C3%A9/"},
		{"http://user:pw@host:81/s", "http://user:pw@host:81/s/"},
		{"http://[::1]:8000/s", "http://[::1]:8000/s/"},
	}
	for _, tc := range ok {
		u, err := ParseBaseURL(tc.in)
		if err != nil {
			t.Errorf("ParseBaseURL(%q): %v", tc.in, err)
			continue
		}
		if got := u.String(); got != tc.want {
			t.Errorf("ParseBaseURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !strings.HasSuffix(u.Path, "/") {
			t.Errorf("ParseBaseURL(%q).Path = %q, want a trailing slash", tc.in, u.Path)
		}
	}

	bad := []struct{ in, why string }{
		{"", "scheme"},
		{"ftp://host/models", "scheme"},
		{"file:///srv/models", "scheme"},
		{"gopher://host/", "scheme"},
		{"mailto:someone@example.com", "scheme"},
		{"javascript:alert(1)", "scheme"},
		{"host/models", "scheme"},
		{"//host/models", "scheme"},
		{"127.0.0.1:8000", ""},
		{"http:///models", "no host"},
		{"http://", "no host"},
		{"http:host", "no host"},
		{"http://host/?C=N;O=D", "query"},
		{"http://host/s?x", "query"},
		{"http://host/s#top", "fragment"},
		{"http://host/%zz", ""},
		{"http://host:port/", ""},
	}
	for _, tc := range bad {
		u, err := ParseBaseURL(tc.in)
		if err == nil {
			t.Errorf("ParseBaseURL(%q) = %v, want an error", tc.in, u)
			continue
		}
		if tc.why != "" && !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ParseBaseURL(%q) error %q does not say %q", tc.in, err, tc.why)
		}
		if s, err := NewStore(tc.in, Options{}); err == nil {
			t.Errorf("NewStore(%q) = %v, want an error", tc.in, s.Base())
		}
	}
}

// An empty query ("http://host/team?") is still a query: either it is refused
// or it must not survive into the base, where it would turn every path below
// the base into a query string.
func TestParseBaseURLEmptyQuery(t *testing.T) {
	for _, in := range []string{"http://host/team?", "http://host/team/?"} {
		u, err := ParseBaseURL(in)
		if err != nil {
			continue
		}
		if strings.Contains(u.String(), "?") {
			t.Errorf("ParseBaseURL(%q) = %q: an empty query (url.URL.ForceQuery) is kept, so Store.URL(\"lenet\") = %q requests the base with a query",
				in, u.String(), u.String()+"lenet")
		}
	}
}

func TestNewStoreBase(t *testing.T) {
	s, err := NewStore("http://127.0.0.1:8001/team", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Base().String(); got != "http://127.0.0.1:8001/team/" {
		t.Errorf("Base() = %q", got)
	}
	// Base returns a copy.
	s.Base().Path = "/elsewhere/"
	if got := s.Base().Path; got != "/team/" {
		t.Errorf("Base().Path after changing a copy = %q", got)
	}
	if s.Requests() != 0 {
		t.Errorf("Requests() = %d before any request", s.Requests())
	}
}

func TestStoreURL(t *testing.T) {
	s, err := NewStore("http://127.0.0.1:8001/team", Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:8001/team/"
	tests := []struct {
		segs []string
		want string // suffix after base; "" means only check the round trip
	}{
		{[]string{"lenet", "info.json"}, "lenet/info.json"},
		{[]string{"master.json"}, "master.json"},
		{[]string{"my model", "info.json"}, "my%20model/info.json"},
		{[]string{"100%pure"}, "100%25pure"},
		{[]string{"caffé"}, "caff%C3%A9"},
		{[]string{"a#b", "c"}, "a%23b/c"},
		{[]string{"a?b", "c"}, "a%3Fb/c"},
		{[]string{"?C=N;O=D"}, ""},
		{[]string{"#"}, "%23"},
		{[]string{"a;b,c=d&e+f@g:h"}, ""},
		{[]string{"模型", "文件 名.json"}, ""},
		{[]string{"%2F", "%00"}, "%252F/%2500"},
		{[]string{"tab\tand\x7f"}, ""},
	}
	for _, tc := range tests {
		got := s.URL(tc.segs...)
		if tc.want != "" && got != base+tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.segs, got, base+tc.want)
		}
		if !strings.HasPrefix(got, base) {
			t.Errorf("URL(%q) = %q, not below the base %q", tc.segs, got, base)
			continue
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Errorf("URL(%q) = %q does not parse: %v", tc.segs, got, err)
			continue
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			t.Errorf("URL(%q) = %q has a query or fragment", tc.segs, got)
		}
		if want := "/team/" + strings.Join(tc.segs, "/"); u.Path != want {
			t.Errorf("URL(%q) path = %q, want %q", tc.segs, u.Path, want)
		}
	}
}

// The escaped names arrive at the server as the right path below the base.
func TestURLEscapingReachesServer(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	var got atomic.Value
	mux.HandleFunc("/team/", func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Path)
		if r.URL.RawQuery != "" {
			t.Errorf("unexpected query %q in %s", r.URL.RawQuery, r.RequestURI)
		}
		fmt.Fprint(w, "ok")
	})
	for _, segs := range [][]string{
		{"my model", "info.json"},
		{"100%pure", "aux.json"},
		{"caffé", "logo.png"},
		{"a#b", "c?d"},
		{"?C=N;O=D"},
	} {
		if _, _, err := s.Fetch(testContext(t), nil, 100, segs...); err != nil {
			t.Errorf("Fetch(%q): %v", segs, err)
			continue
		}
		if want := "/team/" + strings.Join(segs, "/"); got.Load() != want {
			t.Errorf("Fetch(%q) reached the server as %q, want %q", segs, got.Load(), want)
		}
	}
}

func TestMeta(t *testing.T) {
	const lm = "Wed, 21 Oct 2015 07:28:00 GMT"
	if got := (Meta{LastModified: lm}).ModTime(); !got.Equal(time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)) {
		t.Errorf("ModTime() = %v", got)
	}
	for _, bad := range []string{"", "yesterday"} {
		if got := (Meta{LastModified: bad}).ModTime(); !got.IsZero() {
			t.Errorf("ModTime(%q) = %v, want zero", bad, got)
		}
	}

	tests := []struct {
		a, b Meta
		same bool
	}{
		{Meta{Size: 5, ETag: `"a"`}, Meta{Size: 5, ETag: `"a"`}, true},
		{Meta{Size: 5, ETag: `"a"`}, Meta{Size: 5, ETag: `"b"`}, false},
		{Meta{Size: 5, ETag: `"a"`}, Meta{Size: 6, ETag: `"a"`}, false},
		{Meta{Size: -1, ETag: `"a"`}, Meta{Size: 6, ETag: `"a"`}, true},
		{Meta{Size: 5, LastModified: lm}, Meta{Size: 5, LastModified: lm}, true},
		{Meta{Size: 5, LastModified: lm}, Meta{Size: 5, LastModified: "Thu, 22 Oct 2015 07:28:00 GMT"}, false},
		{Meta{Size: 5, ETag: `"a"`, LastModified: lm}, Meta{Size: 5, ETag: `"a"`, LastModified: "other"}, true},
		{Meta{Size: 5, ETag: `"a"`}, Meta{Size: 5, LastModified: lm}, true},
		{Meta{Size: -1}, Meta{Size: -1}, true},
	}
	for _, tc := range tests {
		if got := tc.a.SameVersion(tc.b); got != tc.same {
			t.Errorf("%+v.SameVersion(%+v) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
		if got := tc.b.SameVersion(tc.a); got != tc.same {
			t.Errorf("%+v.SameVersion(%+v) = %v, want %v", tc.b, tc.a, got, tc.same)
		}
	}
}

func TestFetch(t *testing.T) {
	const lm = "Wed, 21 Oct 2015 07:28:00 GMT"
	s, mux := newTestStore(t, fastOptions())
	var hits counter
	mux.HandleFunc("/team/lenet/info.json", hits.wrap(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("method %s", r.Method)
		}
		if ua := r.Header.Get("User-Agent"); ua != "modelstorefs" {
			t.Errorf("User-Agent %q", ua)
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", lm)
		fmt.Fprint(w, `{"name": "LeNet"}`)
	}))

	body, meta, err := s.Fetch(testContext(t), nil, 1<<10, "lenet", "info.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != `{"name": "LeNet"}` {
		t.Errorf("body %q", body)
	}
	want := Meta{Size: int64(len(body)), ETag: `"v1"`, LastModified: lm}
	if meta != want {
		t.Errorf("meta %+v, want %+v", meta, want)
	}
	if hits.get() != 1 || s.Requests() != 1 {
		t.Errorf("server saw %d requests, Requests() = %d, want 1 and 1", hits.get(), s.Requests())
	}
}

func TestFetchErrors(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	big := strings.Repeat("x", 100)
	mux.HandleFunc("/team/missing", http.NotFound)
	mux.HandleFunc("/team/gone", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusGone)
	})
	mux.HandleFunc("/team/big", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, big) // small enough for net/http to send a Content-Length
	})
	mux.HandleFunc("/team/big-chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 10 {
			fmt.Fprint(w, big[:10])
			http.NewResponseController(w).Flush()
		}
	})
	mux.HandleFunc("/team/short", func(w http.ResponseWriter, r *http.Request) {
		rawResponse(t, w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"+big[:50])
	})
	mux.HandleFunc("/team/exact-limit", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, big[:50])
	})

	tests := []struct {
		path    string
		limit   int64
		is      error
		code    int    // wanted StatusError code, 0 for none
		mention string // the error must say this
	}{
		{"missing", 1000, ErrNotFound, 404, "404"},
		{"gone", 1000, ErrNotFound, 410, "410"},
		{"big", 50, ErrTooLarge, 0, "limit 50"},
		{"big-chunked", 50, ErrTooLarge, 0, "limit 50"},
		{"short", 1000, nil, 0, "/team/short"},
		{"exact-limit", 49, ErrTooLarge, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			body, _, err := s.Fetch(testContext(t), nil, tc.limit, tc.path)
			if err == nil {
				t.Fatalf("Fetch(%s) = %q, want an error", tc.path, body)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Fetch(%s) error %v, want errors.Is %v", tc.path, err, tc.is)
			}
			var se *StatusError
			if tc.code != 0 {
				if !errors.As(err, &se) || se.Code != tc.code || se.Method != http.MethodGet || se.URL != s.URL(tc.path) {
					t.Errorf("Fetch(%s) error %v (%#v), want a *StatusError GET %s %d", tc.path, err, se, s.URL(tc.path), tc.code)
				}
			} else if errors.As(err, &se) {
				t.Errorf("Fetch(%s) error %v is a *StatusError", tc.path, err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Fetch(%s) error %q does not mention %q", tc.path, err, tc.mention)
			}
			if !errors.Is(tc.is, ErrNotFound) && errors.Is(err, ErrNotFound) {
				t.Errorf("Fetch(%s) error %v is ErrNotFound", tc.path, err)
			}
		})
	}

	// The limit is inclusive.
	if body, _, err := s.Fetch(testContext(t), nil, 50, "exact-limit"); err != nil || len(body) != 50 {
		t.Errorf("Fetch(exact-limit, 50) = %d bytes, %v", len(body), err)
	}
}

func TestFetchConditional(t *testing.T) {
	const lm = "Wed, 21 Oct 2015 07:28:00 GMT"
	s, mux := newTestStore(t, fastOptions())
	var inm, ims atomic.Value
	mux.HandleFunc("/team/info.json", func(w http.ResponseWriter, r *http.Request) {
		inm.Store(r.Header.Get("If-None-Match"))
		ims.Store(r.Header.Get("If-Modified-Since"))
		if r.Header.Get("If-None-Match") == `"v1"` || r.Header.Get("If-Modified-Since") == lm {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v2"`)
		fmt.Fprint(w, "new")
	})

	t.Run("etag", func(t *testing.T) {
		prev := Meta{Size: 3, ETag: `"v1"`, LastModified: lm}
		body, meta, err := s.Fetch(testContext(t), &prev, 100, "info.json")
		if !errors.Is(err, ErrNotModified) {
			t.Fatalf("Fetch = %q, %v, want ErrNotModified", body, err)
		}
		if meta != prev {
			t.Errorf("meta %+v, want prev %+v", meta, prev)
		}
		if inm.Load() != `"v1"` {
			t.Errorf("If-None-Match %q", inm.Load())
		}
		if !strings.Contains(err.Error(), s.URL("info.json")) {
			t.Errorf("error %q does not name the URL", err)
		}
	})
	t.Run("last-modified", func(t *testing.T) {
		prev := Meta{Size: 3, LastModified: lm}
		_, meta, err := s.Fetch(testContext(t), &prev, 100, "info.json")
		if !errors.Is(err, ErrNotModified) {
			t.Fatalf("Fetch: %v, want ErrNotModified", err)
		}
		if meta != prev {
			t.Errorf("meta %+v, want prev %+v", meta, prev)
		}
		if ims.Load() != lm || inm.Load() != "" {
			t.Errorf("If-Modified-Since %q, If-None-Match %q", ims.Load(), inm.Load())
		}
	})
	t.Run("changed", func(t *testing.T) {
		prev := Meta{Size: 3, ETag: `"v0"`}
		body, meta, err := s.Fetch(testContext(t), &prev, 100, "info.json")
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != "new" || meta.ETag != `"v2"` || meta.Size != 3 {
			t.Errorf("Fetch = %q, %+v", body, meta)
		}
	})
	t.Run("unconditional", func(t *testing.T) {
		if _, _, err := s.Fetch(testContext(t), nil, 100, "info.json"); err != nil {
			t.Fatal(err)
		}
		if inm.Load() != "" || ims.Load() != "" {
			t.Errorf("conditional headers without prev: If-None-Match %q, If-Modified-Since %q", inm.Load(), ims.Load())
		}
	})
}

// A 304 the client did not ask for (no prev) must be an error, not a crash
// of the daemon.
func TestUnsolicited304(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	mux.HandleFunc("/team/x", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	})
	calls := []struct {
		name string
		call func() error
	}{
		{"Fetch", func() error { _, _, err := s.Fetch(testContext(t), nil, 100, "x"); return err }},
		{"Stat", func() error { _, err := s.Stat(testContext(t), nil, "x"); return err }},
		{"Download", func() error {
			_, err := s.Download(testContext(t), io.Discard, Meta{Size: 5, ETag: `"a"`}, "x")
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			p, err := catchPanic(c.call)
			if p != nil {
				t.Errorf("%s(prev=nil) panics on a 304 answer (dereferences the nil prev): %v", c.name, p)
			}
			if err == nil {
				t.Errorf("%s succeeded on an unsolicited 304", c.name)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		retries   int
		statuses  []int // answers in order; the last one repeats
		wantHits  int64
		wantCode  int // 0: success wanted
		wantNotFd bool
	}{
		{"503 twice then 200", 0, []int{503, 503, 200}, 3, 0, false},
		{"500 forever, 2 retries", 2, []int{500}, 3, 500, false},
		{"500 forever, default retries", 0, []int{500}, 4, 500, false},
		{"502 forever, no retries", -1, []int{502}, 1, 502, false},
		{"429 then 200", 0, []int{429, 200}, 2, 0, false},
		{"408 then 200", 0, []int{408, 200}, 2, 0, false},
		{"404 not retried", 0, []int{404}, 1, 404, true},
		{"403 not retried", 0, []int{403}, 1, 403, false},
		{"400 not retried", 0, []int{400}, 1, 400, false},
		{"405 not retried", 0, []int{405}, 1, 405, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt := fastOptions()
			opt.Retries = tc.retries
			s, mux := newTestStore(t, opt)
			var hits atomic.Int64
			mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
				i := int(hits.Add(1)) - 1
				code := tc.statuses[min(i, len(tc.statuses)-1)]
				if code != 200 {
					http.Error(w, "nope", code)
					return
				}
				fmt.Fprint(w, "body")
			})
			body, _, err := s.Fetch(testContext(t), nil, 100, "f")
			if hits.Load() != tc.wantHits || s.Requests() != tc.wantHits {
				t.Errorf("server saw %d requests, Requests() = %d, want %d", hits.Load(), s.Requests(), tc.wantHits)
			}
			if tc.wantCode == 0 {
				if err != nil || string(body) != "body" {
					t.Errorf("Fetch = %q, %v", body, err)
				}
				return
			}
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("Fetch error %v, want a *StatusError", err)
			}
			if se.Code != tc.wantCode || se.URL != s.URL("f") || se.Method != "GET" {
				t.Errorf("StatusError %+v, want GET %s %d", se, s.URL("f"), tc.wantCode)
			}
			msg := err.Error()
			if !strings.Contains(msg, s.URL("f")) || !strings.Contains(msg, strconv.Itoa(tc.wantCode)) {
				t.Errorf("error %q does not name the URL and the status", msg)
			}
			if errors.Is(err, ErrNotFound) != tc.wantNotFd {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v", err, !tc.wantNotFd)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Run("capped by MaxBackoff", func(t *testing.T) {
		opt := fastOptions()
		opt.MaxBackoff = 100 * time.Millisecond
		s, mux := newTestStore(t, opt)
		var hits atomic.Int64
		mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
			if hits.Add(1) == 1 {
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, "ok")
		})
		start := time.Now()
		body, _, err := s.Fetch(testContext(t), nil, 100, "f")
		elapsed := time.Since(start)
		if err != nil || string(body) != "ok" {
			t.Fatalf("Fetch = %q, %v", body, err)
		}
		// Backoff alone would wait about 1ms; Retry-After (capped to 100ms,
		// jittered to at least half) waits at least 50ms, never 30s.
		if elapsed < 45*time.Millisecond || elapsed > 2*time.Second {
			t.Errorf("retry after Retry-After: 30 with MaxBackoff 100ms took %v", elapsed)
		}
		if hits.Load() != 2 {
			t.Errorf("server saw %d requests, want 2", hits.Load())
		}
	})
	t.Run("HTTP date", func(t *testing.T) {
		opt := fastOptions()
		opt.MaxBackoff = 100 * time.Millisecond
		s, mux := newTestStore(t, opt)
		var hits atomic.Int64
		mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
			if hits.Add(1) == 1 {
				w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			fmt.Fprint(w, "ok")
		})
		start := time.Now()
		if _, _, err := s.Fetch(testContext(t), nil, 100, "f"); err != nil {
			t.Fatal(err)
		}
		if elapsed := time.Since(start); elapsed < 45*time.Millisecond || elapsed > 2*time.Second {
			t.Errorf("retry after a Retry-After date one hour ahead with MaxBackoff 100ms took %v", elapsed)
		}
	})
	t.Run("not on a final status", func(t *testing.T) {
		s, mux := newTestStore(t, fastOptions())
		var hits atomic.Int64
		mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusNotFound)
		})
		_, _, err := s.Fetch(testContext(t), nil, 100, "f")
		if !errors.Is(err, ErrNotFound) || hits.Load() != 1 {
			t.Errorf("Fetch: %v after %d requests, want ErrNotFound after 1", err, hits.Load())
		}
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 404 {
			t.Errorf("Fetch error %v is not a *StatusError 404", err)
		}
	})
}

func TestRetryConnectionReset(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	var hits atomic.Int64
	mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			resetConnection(t, w)
			return
		}
		fmt.Fprint(w, "ok")
	})
	body, _, err := s.Fetch(testContext(t), nil, 100, "f")
	if err != nil || string(body) != "ok" {
		t.Fatalf("Fetch = %q, %v", body, err)
	}
	if s.Requests() != 3 || hits.Load() != 3 {
		t.Errorf("Requests() = %d, server saw %d, want 3 and 3", s.Requests(), hits.Load())
	}

	// Always reset: the error names the URL after Retries+1 attempts.
	opt := fastOptions()
	opt.Retries = 2
	s2, mux2 := newTestStore(t, opt)
	mux2.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) { resetConnection(t, w) })
	_, _, err = s2.Fetch(testContext(t), nil, 100, "f")
	if err == nil || !strings.Contains(err.Error(), s2.URL("f")) {
		t.Errorf("Fetch from a resetting server: %v, want an error naming %s", err, s2.URL("f"))
	}
	if s2.Requests() != 3 {
		t.Errorf("Requests() = %d, want 3", s2.Requests())
	}
}

func TestCancelStopsRetries(t *testing.T) {
	t.Run("during backoff", func(t *testing.T) {
		opt := fastOptions()
		opt.Retries = 100
		opt.Backoff, opt.MaxBackoff = 10*time.Second, 10*time.Second
		s, mux := newTestStore(t, opt)
		mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, _, err := s.Fetch(ctx, nil, 100, "f")
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("Fetch returned %v after the cancel", elapsed-100*time.Millisecond)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Fetch error %v, want context.Canceled", err)
		}
		if err != nil && !strings.Contains(err.Error(), s.URL("f")) {
			t.Errorf("error %q does not name the URL", err)
		}
		if s.Requests() > 2 {
			t.Errorf("Requests() = %d", s.Requests())
		}
	})
	t.Run("waiting for headers", func(t *testing.T) {
		opt := fastOptions()
		opt.Retries = 100
		s, mux := newTestStore(t, opt)
		mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
			waitGone(r, 3*time.Second)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := s.Fetch(ctx, nil, 100, "f")
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("Fetch took %v with a 100ms deadline", elapsed)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Fetch error %v, want context.DeadlineExceeded", err)
		}
		if s.Requests() != 1 {
			t.Errorf("Requests() = %d, want 1", s.Requests())
		}
	})
	t.Run("already canceled", func(t *testing.T) {
		s, mux := newTestStore(t, fastOptions())
		mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("request sent with a canceled context")
		})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Stat(ctx, nil, "f"); !errors.Is(err, context.Canceled) {
			t.Errorf("Stat error %v, want context.Canceled", err)
		}
		if s.Requests() > 1 {
			t.Errorf("Requests() = %d, want at most 1", s.Requests())
		}
	})
}

// stallingHandler sends the headers and part of the body, then stalls until
// the client goes away.
func stallingHandler(gone chan<- bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Header().Set("ETag", `"s"`)
		w.Write(make([]byte, 1000))
		http.NewResponseController(w).Flush()
		gone <- waitGone(r, 4*time.Second)
	}
}

func TestStall(t *testing.T) {
	opt := fastOptions()
	opt.StallTimeout = 200 * time.Millisecond
	s, mux := newTestStore(t, opt)
	gone := make(chan bool, 10)
	mux.HandleFunc("/team/stall", stallingHandler(gone))

	calls := []struct {
		name string
		call func() error
	}{
		{"Fetch", func() error { _, _, err := s.Fetch(testContext(t), nil, 1<<20, "stall"); return err }},
		{"Download", func() error {
			_, err := s.Download(testContext(t), io.Discard, Meta{Size: 100000, ETag: `"s"`}, "stall")
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			err := c.call()
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("%s of a stalled body succeeded", c.name)
			}
			if elapsed > 2*time.Second {
				t.Errorf("%s took %v with StallTimeout 200ms", c.name, elapsed)
			}
			if !strings.Contains(err.Error(), "stalled") {
				t.Errorf("%s error %q does not mention the stall", c.name, err)
			}
			if !strings.Contains(err.Error(), s.URL("stall")) {
				t.Errorf("%s error %q does not name the URL", c.name, err)
			}
			select {
			case ok := <-gone:
				if !ok {
					t.Errorf("the client did not close the stalled connection")
				}
			case <-time.After(3 * time.Second):
				t.Errorf("handler did not finish")
			}
		})
	}
}

// A slow body that keeps making progress is not a stall, however long it
// takes in total.
func TestSlowBodyIsNotAStall(t *testing.T) {
	opt := fastOptions()
	opt.StallTimeout = 500 * time.Millisecond
	s, mux := newTestStore(t, opt)
	mux.HandleFunc("/team/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "12")
		for i := range 12 {
			fmt.Fprint(w, i%10)
			http.NewResponseController(w).Flush()
			time.Sleep(50 * time.Millisecond) // 600ms in all, more than the stall timeout
		}
	})
	body, _, err := s.Fetch(testContext(t), nil, 100, "slow")
	if err != nil || string(body) != "012345678901" {
		t.Errorf("Fetch = %q, %v", body, err)
	}
}

func TestHeaderTimeout(t *testing.T) {
	opt := fastOptions()
	opt.HeaderTimeout = 100 * time.Millisecond
	opt.Retries = 1
	s, mux := newTestStore(t, opt)
	var hits atomic.Int64
	mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		waitGone(r, 3*time.Second)
	})
	start := time.Now()
	_, _, err := s.Fetch(testContext(t), nil, 100, "f")
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Fetch took %v with HeaderTimeout 100ms and 1 retry", elapsed)
	}
	if err == nil {
		t.Fatal("Fetch succeeded without response headers")
	}
	if !strings.Contains(err.Error(), s.URL("f")) {
		t.Errorf("error %q does not name the URL", err)
	}
	if s.Requests() != 2 {
		t.Errorf("Requests() = %d, want 2 (a header timeout is retried)", s.Requests())
	}
}

func TestConnectRefused(t *testing.T) {
	_, srv := newTestServer(t)
	addr := srv.URL
	srv.Close()
	opt := fastOptions()
	opt.Retries = 2
	s, err := NewStore(addr+"/team/", opt)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = s.Fetch(testContext(t), nil, 100, "f")
	if err == nil || !strings.Contains(err.Error(), s.URL("f")) {
		t.Errorf("Fetch from a closed port: %v, want an error naming the URL", err)
	}
	if s.Requests() != 3 {
		t.Errorf("Requests() = %d, want 3", s.Requests())
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v", elapsed)
	}
}

// statLM and statBigSize are what TestStat's server says of its files:
// their Last-Modified, and the length of the ones answered by a GET.
const (
	statLM      = "Wed, 21 Oct 2015 07:28:00 GMT"
	statBigSize = 64 << 20
)

func TestStat(t *testing.T) {
	ss := newStatServer(t)
	t.Run("HEAD", ss.head)
	for _, path := range []string{"nohead405", "nohead501", "nolength"} {
		t.Run(path, func(t *testing.T) { ss.fallback(t, path) })
	}
	t.Run("missing", ss.missing)
}

// statServer is TestStat's store: /team/head answers HEAD with a length;
// /team/nohead405 and /team/nohead501 refuse HEAD; /team/nolength answers
// HEAD without a length; those three answer GET with statBigSize bytes;
// /team/missing is 404.
type statServer struct {
	s *Store
	// requests gets every request's "METHOD path", in order; seen drains it.
	requests chan string
	// aborted gets how each big GET ended: "complete", "client gone" or
	// "write error".
	aborted chan string
}

func newStatServer(t *testing.T) *statServer {
	s, mux := newTestStore(t, fastOptions())
	ss := &statServer{s: s, requests: make(chan string, 100), aborted: make(chan string, 10)}
	// HEAD works and gives a length.
	mux.HandleFunc("/team/head", func(w http.ResponseWriter, r *http.Request) {
		ss.record(r)
		w.Header().Set("Content-Length", "12345")
		w.Header().Set("ETag", `"h"`)
		w.Header().Set("Last-Modified", statLM)
		if r.Method != http.MethodHead {
			t.Errorf("%s /team/head: Stat must not GET when HEAD works", r.Method)
		}
	})
	// HEAD refused (405 or 501): the GET is aborted after the headers.
	for _, code := range []int{http.StatusMethodNotAllowed, http.StatusNotImplemented} {
		mux.HandleFunc(fmt.Sprintf("/team/nohead%d", code), func(w http.ResponseWriter, r *http.Request) {
			ss.record(r)
			if r.Method == http.MethodHead {
				w.Header().Set("Allow", "GET")
				w.WriteHeader(code)
				return
			}
			ss.bigGET(w, r)
		})
	}
	// HEAD without a length: GET fallback.
	mux.HandleFunc("/team/nolength", func(w http.ResponseWriter, r *http.Request) {
		ss.record(r)
		if r.Method == http.MethodHead {
			w.Header().Set("ETag", `"big"`)
			return // nothing written: net/http sends no Content-Length
		}
		ss.bigGET(w, r)
	})
	mux.HandleFunc("/team/missing", func(w http.ResponseWriter, r *http.Request) {
		ss.record(r)
		http.NotFound(w, r)
	})
	return ss
}

func (ss *statServer) record(r *http.Request) { ss.requests <- r.Method + " " + r.URL.Path }

// seen drains the requests recorded so far.
func (ss *statServer) seen() []string {
	var out []string
	for {
		select {
		case m := <-ss.requests:
			out = append(out, m)
		default:
			return out
		}
	}
}

// bigGET answers a GET with statBigSize bytes, stopping when the client
// goes, and reports how it ended on aborted.
func (ss *statServer) bigGET(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(statBigSize))
	w.Header().Set("ETag", `"big"`)
	w.Header().Set("Last-Modified", statLM)
	chunk := make([]byte, 32<<10)
	for sent := 0; sent < statBigSize; sent += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			ss.aborted <- "write error"
			return
		}
		if r.Context().Err() != nil {
			ss.aborted <- "client gone"
			return
		}
	}
	ss.aborted <- "complete"
}

// head: a HEAD that gives a length is all Stat sends.
func (ss *statServer) head(t *testing.T) {
	ss.seen()
	m, err := ss.s.Stat(testContext(t), nil, "head")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Meta{Size: 12345, ETag: `"h"`, LastModified: statLM}); m != want {
		t.Errorf("Stat = %+v, want %+v", m, want)
	}
	if got := ss.seen(); len(got) != 1 || got[0] != "HEAD /team/head" {
		t.Errorf("requests %q, want one HEAD", got)
	}
}

// fallback: a HEAD refused or without a length is followed by one GET,
// aborted after its headers.
func (ss *statServer) fallback(t *testing.T, path string) {
	ss.seen()
	before := ss.s.Requests()
	start := time.Now()
	m, err := ss.s.Stat(testContext(t), nil, path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Meta{Size: statBigSize, ETag: `"big"`, LastModified: statLM}); m != want {
		t.Errorf("Stat = %+v, want %+v", m, want)
	}
	select {
	case how := <-ss.aborted:
		if how == "complete" {
			t.Errorf("the fallback GET read the whole %d-byte body instead of aborting after the headers", statBigSize)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("the fallback GET was not aborted: the handler is still sending")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Stat took %v", elapsed)
	}
	got := ss.seen()
	if n := ss.s.Requests() - before; n != 2 {
		if path == "nohead501" && n > 2 {
			t.Errorf("a HEAD answered 501 Not Implemented is retried like a transient 5xx before the GET fallback (%d requests: %q); with the default backoff that is about 1.75s lost per file", n, got)
		}
		t.Errorf("Stat sent %d requests, want 2 (a refused HEAD is not retried)", n)
	}
	if len(got) != 2 || got[0] != "HEAD /team/"+path || got[1] != "GET /team/"+path {
		t.Errorf("requests %q, want HEAD then GET", got)
	}
}

// missing: a 404 to the HEAD is ErrNotFound, without a GET.
func (ss *statServer) missing(t *testing.T) {
	ss.seen()
	_, err := ss.s.Stat(testContext(t), nil, "missing")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat error %v, want ErrNotFound", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Method != http.MethodHead || se.URL != ss.s.URL("missing") {
		t.Errorf("Stat error %#v, want a *StatusError for HEAD %s", err, ss.s.URL("missing"))
	}
	if got := ss.seen(); len(got) != 1 {
		t.Errorf("requests %q, want one HEAD (no GET fallback on 404)", got)
	}
}

func TestStatConditional(t *testing.T) {
	const lm = "Wed, 21 Oct 2015 07:28:00 GMT"
	s, mux := newTestStore(t, fastOptions())
	handler := func(headOK bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead && !headOK {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			if r.Header.Get("If-None-Match") == `"v1"` || r.Header.Get("If-Modified-Since") == lm {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", `"v2"`)
			w.Header().Set("Content-Length", "7")
			if r.Method == http.MethodGet {
				fmt.Fprint(w, "changed")
			}
		}
	}
	mux.HandleFunc("/team/head", handler(true))
	mux.HandleFunc("/team/get", handler(false))

	for _, path := range []string{"head", "get"} {
		for _, prev := range []Meta{{Size: 3, ETag: `"v1"`}, {Size: 3, LastModified: lm}} {
			t.Run(fmt.Sprintf("%s/%+v", path, prev), func(t *testing.T) {
				m, err := s.Stat(testContext(t), &prev, path)
				if !errors.Is(err, ErrNotModified) {
					t.Fatalf("Stat = %+v, %v, want ErrNotModified", m, err)
				}
				if m != prev {
					t.Errorf("Stat meta %+v, want prev %+v", m, prev)
				}
			})
		}
		t.Run(path+"/changed", func(t *testing.T) {
			prev := Meta{Size: 3, ETag: `"v0"`}
			m, err := s.Stat(testContext(t), &prev, path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Size != 7 || m.ETag != `"v2"` {
				t.Errorf("Stat = %+v", m)
			}
		})
	}
}

func TestDownload(t *testing.T) {
	content := randomBytes(300 << 10)
	s, mux := newTestStore(t, fastOptions())
	mux.HandleFunc("/team/m/model.caffemodel", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
	})
	// Chunked answers (no Content-Length) of the wrong length.
	mux.HandleFunc("/team/longer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Write(content[:1000])
		http.NewResponseController(w).Flush()
		w.Write([]byte("extra"))
	})
	mux.HandleFunc("/team/shorter", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Write(content[:500])
		http.NewResponseController(w).Flush()
	})
	// A Content-Length the body does not live up to.
	mux.HandleFunc("/team/truncated", func(w http.ResponseWriter, r *http.Request) {
		rawResponse(t, w, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 1000\r\n\r\n"+string(content[:600]))
	})

	t.Run("exact bytes", func(t *testing.T) {
		want, err := s.Stat(testContext(t), nil, "m", "model.caffemodel")
		if err != nil {
			t.Fatal(err)
		}
		if want.Size != int64(len(content)) || want.ETag != `"v1"` {
			t.Fatalf("Stat = %+v", want)
		}
		var buf bytes.Buffer
		n, err := s.Download(testContext(t), &buf, want, "m", "model.caffemodel")
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(content)) || !bytes.Equal(buf.Bytes(), content) {
			t.Errorf("Download wrote %d bytes (buffer %d), content equal: %v", n, buf.Len(), bytes.Equal(buf.Bytes(), content))
		}
	})
	t.Run("unknown size", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := s.Download(testContext(t), &buf, Meta{Size: -1}, "m", "model.caffemodel")
		if err != nil || n != int64(len(content)) || !bytes.Equal(buf.Bytes(), content) {
			t.Errorf("Download = %d, %v", n, err)
		}
	})

	tests := []struct {
		name    string
		want    Meta
		segs    []string
		changed bool
	}{
		{"etag differs", Meta{Size: int64(len(content)), ETag: `"v0"`}, []string{"m", "model.caffemodel"}, true},
		{"size differs", Meta{Size: 10, ETag: `"v1"`}, []string{"m", "model.caffemodel"}, true},
		{"body longer than want.Size", Meta{Size: 1000, ETag: `"v1"`}, []string{"longer"}, false},
		{"body shorter than want.Size", Meta{Size: 1000, ETag: `"v1"`}, []string{"shorter"}, false},
		{"Content-Length lies", Meta{Size: 1000, ETag: `"v1"`}, []string{"truncated"}, false},
		{"missing", Meta{Size: 1000}, []string{"nothing-here"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.Download(testContext(t), io.Discard, tc.want, tc.segs...)
			if err == nil {
				t.Fatalf("Download = %d bytes, no error", n)
			}
			if errors.Is(err, ErrChanged) != tc.changed {
				t.Errorf("Download error %v: errors.Is ErrChanged = %v, want %v", err, !tc.changed, tc.changed)
			}
			if tc.changed && n != 0 {
				t.Errorf("Download wrote %d bytes of the wrong version", n)
			}
			if !strings.Contains(err.Error(), s.URL(tc.segs...)) {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestRedirects(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	var hits counter
	mux.HandleFunc("/team/moved", hits.wrap(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/team/real", http.StatusFound)
	}))
	mux.HandleFunc("/team/real", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "real")
	})
	for _, target := range []string{"file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/"} {
		mux.HandleFunc("/team/to-"+strings.SplitN(target, ":", 2)[0], hits.wrap(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", target)
			w.WriteHeader(http.StatusFound)
		}))
	}
	mux.HandleFunc("/team/loop", hits.wrap(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/team/loop", http.StatusMovedPermanently)
	}))

	t.Run("followed below the store", func(t *testing.T) {
		body, _, err := s.Fetch(testContext(t), nil, 100, "moved")
		if err != nil || string(body) != "real" {
			t.Errorf("Fetch = %q, %v", body, err)
		}
	})
	for _, scheme := range []string{"file", "ftp", "gopher"} {
		t.Run("to "+scheme, func(t *testing.T) {
			h0, r0 := hits.get(), s.Requests()
			body, _, err := s.Fetch(testContext(t), nil, 100, "to-"+scheme)
			if err == nil {
				t.Fatalf("redirect to %s: followed, got %q", scheme, body)
			}
			if !strings.Contains(err.Error(), "redirect") {
				t.Errorf("error %q does not say redirect", err)
			}
			if h, r := hits.get()-h0, s.Requests()-r0; h != 1 || r != 1 {
				t.Errorf("server saw %d requests, Requests() grew by %d: a refused redirect must not be retried", h, r)
			}
			if !strings.Contains(err.Error(), s.URL("to-"+scheme)) {
				t.Errorf("the error for a refused redirect names only the redirect target, not the store URL that was requested: %q", err)
			}
		})
	}
	t.Run("loop", func(t *testing.T) {
		h0, r0 := hits.get(), s.Requests()
		start := time.Now()
		_, err := s.Stat(testContext(t), nil, "loop")
		if err == nil {
			t.Fatal("redirect loop: no error")
		}
		if !strings.Contains(err.Error(), "redirect") {
			t.Errorf("error %q does not say redirect", err)
		}
		if h := hits.get() - h0; h < 2 || h > 11 {
			t.Errorf("server saw %d requests for a redirect loop", h)
		}
		if r := s.Requests() - r0; r != 1 {
			t.Errorf("Requests() grew by %d: a redirect loop must not be retried", r)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("took %v", elapsed)
		}
	})
}

// Credentials in a store URL are sent to the server but must not be written
// into error messages, which end up in logs and error.txt.
func TestErrorsHidePassword(t *testing.T) {
	_, srv := newTestServer(t)
	u, _ := url.Parse(srv.URL + basePath)
	u.User = url.UserPassword("alice", "s3cret")
	s, err := NewStore(u.String(), fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Fetch(testContext(t), nil, 100, "missing")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch: %v, want ErrNotFound", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the password of the store URL appears in error messages: %q", err)
	}
}
