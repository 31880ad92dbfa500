package remote

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// rangeData is the file the GetRange tests ask 20 bytes at 10 of.
var rangeData = []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz!?")

const (
	rangeOff, rangeN = 10, 20
	rangeETag        = `"v1"`
	rangeLM          = "Mon, 02 Jan 2006 15:04:05 GMT"
)

// rangeWant is the version the GetRange tests ask for.
func rangeWant() Meta {
	return Meta{Size: int64(len(rangeData)), ETag: rangeETag, LastModified: rangeLM}
}

// rawAnswer builds a raw HTTP/1.1 answer: status line, headers (in order,
// "Name: value"), and body. Without a Content-Length header the answer says
// "Connection: close" and its body ends when the connection closes.
func rawAnswer(status string, body []byte, headers ...string) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 " + status + "\r\n")
	if !slices.ContainsFunc(headers, func(h string) bool { return strings.HasPrefix(h, "Content-Length:") }) {
		b.WriteString("Connection: close\r\n")
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.String()
}

func cr(start, end, total int) string {
	return fmt.Sprintf("Content-Range: bytes %d-%d/%d", start, end, total)
}

func cl(n int) string { return fmt.Sprintf("Content-Length: %d", n) }

// chunkedAnswer answers with Transfer-Encoding: chunked (no Content-Length)
// and a well-terminated body: only the byte count can tell a lie.
func chunkedAnswer(status int, body []byte, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ": ")
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_ = http.NewResponseController(w).Flush() // forces chunked encoding
		_, _ = w.Write(body)
	}
}

func TestGetRangeValidation(t *testing.T) {
	part := rangeData[rangeOff : rangeOff+rangeN]
	etag := "ETag: " + rangeETag
	lm := "Last-Modified: " + rangeLM
	tests := []rangeCase{
		{name: "206 exact", raw: rawAnswer("206 Partial Content", part, cr(10, 29, 100), cl(20), etag, lm),
			wantBody: part, wantRange: RangeYes},
		{name: "206 without validators", raw: rawAnswer("206 Partial Content", part, cr(10, 29, 100), cl(20)),
			wantBody: part, wantRange: RangeYes},
		{name: "206 total unknown (*)", raw: rawAnswer("206 Partial Content", part, "Content-Range: bytes 10-29/*", cl(20), etag),
			wantBody: part, wantRange: RangeYes},
		{name: "206 without Content-Length, exact body", raw: rawAnswer("206 Partial Content", part, cr(10, 29, 100), etag),
			wantBody: part, wantRange: RangeYes},

		// Content-Range that is not what was asked: refused before any byte.
		{name: "wrong start", raw: rawAnswer("206 Partial Content", rangeData[0:20], cr(0, 19, 100), cl(20), etag), openErr: true},
		{name: "start shifted by one", raw: rawAnswer("206 Partial Content", rangeData[11:31], cr(11, 30, 100), cl(20), etag), openErr: true},
		{name: "wrong end, longer", raw: rawAnswer("206 Partial Content", rangeData[10:40], cr(10, 39, 100), cl(30), etag), openErr: true},
		{name: "wrong end, shorter", raw: rawAnswer("206 Partial Content", rangeData[10:20], cr(10, 19, 100), cl(10), etag), openErr: true},
		{name: "wrong total", raw: rawAnswer("206 Partial Content", part, cr(10, 29, 200), cl(20), etag), openErr: true, openIs: ErrChanged},
		{name: "total smaller than the file", raw: rawAnswer("206 Partial Content", part, cr(10, 29, 50), cl(20), etag), openErr: true, openIs: ErrChanged},
		{name: "no Content-Range", raw: rawAnswer("206 Partial Content", part, cl(20), etag), openErr: true},
		{name: "garbage Content-Range", raw: rawAnswer("206 Partial Content", part, "Content-Range: bytes=10-29", cl(20), etag), openErr: true},
		{name: "unsatisfied-range form", raw: rawAnswer("206 Partial Content", part, "Content-Range: bytes */100", cl(20), etag), openErr: true},
		{name: "end before start", raw: rawAnswer("206 Partial Content", part, "Content-Range: bytes 29-10/100", cl(20), etag), openErr: true},

		// Content-Length disagreeing with Content-Range.
		{name: "Content-Length longer than Content-Range", raw: rawAnswer("206 Partial Content", rangeData[10:40], cr(10, 29, 100), cl(30), etag), openErr: true},
		{name: "Content-Length shorter than Content-Range", raw: rawAnswer("206 Partial Content", rangeData[10:20], cr(10, 29, 100), cl(10), etag), openErr: true},

		// Bodies that are not as long as announced.
		{name: "short body, connection dropped", raw: rawAnswer("206 Partial Content", part[:5], cr(10, 29, 100), cl(20), etag),
			readErr: true, readIs: io.ErrUnexpectedEOF, wantRange: RangeYes},
		{name: "short body, no Content-Length", raw: rawAnswer("206 Partial Content", part[:5], cr(10, 29, 100), etag),
			readErr: true, readIs: io.ErrUnexpectedEOF, wantRange: RangeYes},
		{name: "short body, chunked and cleanly ended", h: chunkedAnswer(206, part[:5], cr(10, 29, 100), etag),
			readErr: true, readIs: io.ErrUnexpectedEOF, wantRange: RangeYes},
		{name: "long body, no Content-Length", raw: rawAnswer("206 Partial Content", rangeData[10:40], cr(10, 29, 100), etag),
			readErr: true, wantRange: RangeYes},
		{name: "long body, chunked", h: chunkedAnswer(206, rangeData[10:40], cr(10, 29, 100), etag),
			readErr: true, wantRange: RangeYes},

		// Validators of a 206.
		{name: "206 with another ETag", raw: rawAnswer("206 Partial Content", part, cr(10, 29, 100), cl(20), `ETag: "v2"`, lm),
			openErr: true, openIs: ErrChanged},
		{name: "206 with another Last-Modified", raw: rawAnswer("206 Partial Content", part, cr(10, 29, 100), cl(20), "Last-Modified: Tue, 03 Jan 2006 15:04:05 GMT"),
			openErr: true, openIs: ErrChanged,
			bug: "regression: remote/ranges.go GetRange (206 branch) once compared only the ETag, never Last-Modified: a server without ETags that ignores If-Range got bytes of a new version mixed into the old one"},

		// 200 to a ranged request: the whole body, from offset 0.
		{name: "200 same version", raw: rawAnswer("200 OK", rangeData, cl(100), etag, lm),
			whole: true, wantBody: rangeData, wantRange: RangeNo},
		{name: "200 without validators", raw: rawAnswer("200 OK", rangeData, cl(100)),
			whole: true, wantBody: rangeData, wantRange: RangeNo},
		{name: "200 chunked, exact", h: chunkedAnswer(200, rangeData, etag),
			whole: true, wantBody: rangeData, wantRange: RangeNo},
		{name: "200 with another ETag", raw: rawAnswer("200 OK", rangeData, cl(100), `ETag: "v2"`, lm), openErr: true, openIs: ErrChanged},
		{name: "200 with another Last-Modified, no ETag", raw: rawAnswer("200 OK", rangeData, cl(100), "Last-Modified: Tue, 03 Jan 2006 15:04:05 GMT"),
			openErr: true, openIs: ErrChanged},
		{name: "200 with another size", raw: rawAnswer("200 OK", rangeData[:90], cl(90), etag), openErr: true, openIs: ErrChanged},
		{name: "200 short body", raw: rawAnswer("200 OK", rangeData[:50], cl(100), etag),
			whole: true, readErr: true, readIs: io.ErrUnexpectedEOF, wantRange: RangeNo},
		{name: "200 chunked, long body", h: chunkedAnswer(200, append(bytes.Clone(rangeData), "more"...), etag),
			whole: true, readErr: true, wantRange: RangeNo},

		// Other statuses.
		{name: "416", raw: rawAnswer("416 Range Not Satisfiable", nil, "Content-Range: bytes */100", cl(0)), openErr: true},
		{name: "404", raw: rawAnswer("404 Not Found", nil, cl(0)), openErr: true, openIs: ErrNotFound},
		{name: "204", raw: rawAnswer("204 No Content", nil), openErr: true},
	}
	for _, path := range []string{"fast path", "net/http"} {
		t.Run(path, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { runRangeCase(t, tt, path == "net/http") })
			}
		})
	}
}

// rangeCase is one answer of TestGetRangeValidation and what GetRange must
// make of it.
type rangeCase struct {
	name string
	// raw is the whole answer (the connection is then closed); else h.
	raw string
	h   http.HandlerFunc
	// want: an error from GetRange (never a body), an error from
	// reading the body, or this body at this offset.
	openErr   bool
	openIs    error
	readErr   bool
	readIs    error
	whole     bool
	wantBody  []byte
	wantRange int32 // RangeSupport afterwards
	// bug, when set, names the bug the code once had that a failure of
	// the case means is back; the failure is reported with it (the case
	// runs and fails like any other, it is never skipped).
	bug string
}

// runRangeCase asks 20 bytes at 10 of a server answering tt, on the
// zero-copy path or (netHTTP) through net/http only.
func runRangeCase(t *testing.T, tt rangeCase, netHTTP bool) {
	var fails []string
	fail := func(format string, args ...any) { fails = append(fails, fmt.Sprintf(format, args...)) }
	defer func() {
		if len(fails) == 0 {
			return
		}
		if tt.bug != "" {
			t.Errorf("%s\n%s", tt.bug, strings.Join(fails, "\n"))
		}
		for _, f := range fails {
			t.Error(f)
		}
	}()

	s, sent := rangeCaseStore(t, tt, netHTTP)
	body, err := s.GetRange(testContext(t), rangeWant(), rangeOff, rangeN, "m", "f")
	if gotRange, gotIfRange := sent(); gotRange != "bytes=10-29" || gotIfRange != rangeETag {
		fail("sent Range %q If-Range %q, want bytes=10-29 and the ETag", gotRange, gotIfRange)
	}
	if tt.openErr {
		checkRangeRefused(s, tt, body, err, fail)
		return
	}
	if err != nil {
		fail("GetRange: %v", err)
		return
	}
	defer body.Close()
	checkRangeBody(s, tt, body, fail)
}

// rangeCaseStore is a store whose m/f answers tt, on the zero-copy path or
// (netHTTP) through net/http only; sent gives the Range and If-Range of
// the last request.
func rangeCaseStore(t *testing.T, tt rangeCase, netHTTP bool) (s *Store, sent func() (rng, ifRange string)) {
	opt := fastOptions()
	opt.Retries = -1
	if netHTTP {
		// A Transport of its own keeps a store off the zero-copy path.
		opt.Transport = NewTransport(opt)
	}
	s, mux := newTestStore(t, opt)
	var mu sync.Mutex
	var gotRange, gotIfRange string
	mux.HandleFunc(basePath+"m/f", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotRange, gotIfRange = r.Header.Get("Range"), r.Header.Get("If-Range")
		mu.Unlock()
		if tt.h != nil {
			tt.h(w, r)
		} else {
			rawResponse(t, w, tt.raw)
		}
	})
	return s, func() (string, string) {
		mu.Lock()
		defer mu.Unlock()
		return gotRange, gotIfRange
	}
}

// checkRangeRefused: GetRange refused the answer (body, err): no body, the
// error tt wants, and range support still unknown.
func checkRangeRefused(s *Store, tt rangeCase, body *Body, err error, fail func(string, ...any)) {
	if err == nil {
		data, rerr := io.ReadAll(body)
		body.Close()
		fail("GetRange accepted the answer: Off %d Whole %v, read %q, %v", body.Off, body.Whole, data, rerr)
		return
	}
	if body != nil {
		fail("GetRange returned a body with its error %v", err)
	}
	if tt.openIs != nil && !errors.Is(err, tt.openIs) {
		fail("GetRange: %v, want %v", err, tt.openIs)
	}
	if got := s.RangeSupport(); got != RangeUnknown {
		fail("RangeSupport %d after a refused answer, want unknown", got)
	}
}

// checkRangeBody: GetRange accepted the answer; body is where tt says and
// reads as tt says (its bytes, or an error for a body of the wrong length).
func checkRangeBody(s *Store, tt rangeCase, body *Body, fail func(string, ...any)) {
	wantOff := int64(rangeOff)
	if tt.whole {
		wantOff = 0
	}
	if body.Whole != tt.whole || body.Off != wantOff {
		fail("Whole %v Off %d, want %v %d", body.Whole, body.Off, tt.whole, wantOff)
	}
	if got := s.RangeSupport(); got != tt.wantRange {
		fail("RangeSupport %d, want %d", got, tt.wantRange)
	}
	data, rerr := io.ReadAll(body)
	if tt.readErr {
		if rerr == nil {
			fail("read %d bytes without error from a body of the wrong length: %q", len(data), data)
		} else if tt.readIs != nil && !errors.Is(rerr, tt.readIs) {
			fail("read error %v, want %v", rerr, tt.readIs)
		}
		return
	}
	if rerr != nil {
		fail("read: %v", rerr)
	}
	if !bytes.Equal(data, tt.wantBody) {
		fail("body %q, want %q", data, tt.wantBody)
	}
	if body.Len != int64(len(tt.wantBody)) {
		fail("Len %d, want %d", body.Len, len(tt.wantBody))
	}
}

// TestGetRangeIfRange: If-Range carries a strong ETag, else Last-Modified,
// never a weak ETag (a server must not compare it for ranges).
func TestGetRangeIfRange(t *testing.T) {
	tests := []struct {
		name   string
		meta   Meta
		off, n int64
		want   string // If-Range
		rng    string // Range
	}{
		{"strong ETag", Meta{Size: 100, ETag: `"abc"`, LastModified: rangeLM}, 10, 20, `"abc"`, "bytes=10-29"},
		{"weak ETag and date", Meta{Size: 100, ETag: `W/"abc"`, LastModified: rangeLM}, 10, 20, rangeLM, "bytes=10-29"},
		{"weak ETag only", Meta{Size: 100, ETag: `W/"abc"`}, 10, 20, "", "bytes=10-29"},
		{"date only", Meta{Size: 100, LastModified: rangeLM}, 10, 20, rangeLM, "bytes=10-29"},
		{"no validator", Meta{Size: 100}, 10, 20, "", "bytes=10-29"},
		{"to the end", Meta{Size: 100, ETag: `"abc"`}, 90, 0, `"abc"`, "bytes=90-99"},
		{"past the end is clipped", Meta{Size: 100, ETag: `"abc"`}, 90, 50, `"abc"`, "bytes=90-99"},
		{"unknown size, to the end", Meta{Size: -1, ETag: `"abc"`}, 90, 0, `"abc"`, "bytes=90-"},
		{"unknown size, from 0", Meta{Size: -1, ETag: `"abc"`}, 0, 0, `"abc"`, "bytes=0-"},
		// A whole file is asked as a range too: the answer tells whether
		// the server honours Range (more streams may then follow).
		{"whole file: a range", Meta{Size: 100, ETag: `"abc"`}, 0, 100, `"abc"`, "bytes=0-99"},
		{"whole file, n 0: a range", Meta{Size: 100, ETag: `"abc"`}, 0, 0, `"abc"`, "bytes=0-99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mux := newTestStore(t, fastOptions())
			var mu sync.Mutex
			var rng, ifr []string
			mux.HandleFunc(basePath+"f", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				rng = append(rng, r.Header.Get("Range"))
				ifr = append(ifr, r.Header.Get("If-Range"))
				mu.Unlock()
				if tt.meta.ETag != "" {
					w.Header().Set("ETag", tt.meta.ETag)
				}
				if tt.meta.LastModified != "" {
					w.Header().Set("Last-Modified", tt.meta.LastModified)
				}
				// Answers Range itself, and If-Range as a server should.
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(rangeData))
			})
			body, err := s.GetRange(testContext(t), tt.meta, tt.off, tt.n, "f")
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if body.Whole {
				if body.Off != 0 || !bytes.Equal(data, rangeData) {
					t.Errorf("whole body at %d: %q", body.Off, data)
				}
			} else {
				end := tt.off + tt.n
				if tt.n <= 0 || end > int64(len(rangeData)) {
					end = int64(len(rangeData))
				}
				if body.Off != tt.off || !bytes.Equal(data, rangeData[tt.off:end]) {
					t.Errorf("body at %d: %q, want %q at %d", body.Off, data, rangeData[tt.off:end], tt.off)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(rng) != 1 || rng[0] != tt.rng || ifr[0] != tt.want {
				t.Errorf("sent Range %q If-Range %q, want %q and %q", rng, ifr, tt.rng, tt.want)
			}
		})
	}
}

// TestGetRangeLearnsNoRange: a 200 to a ranged GET is the whole file from
// offset 0; the store remembers, and asks no more Range of that server.
func TestGetRangeLearnsNoRange(t *testing.T) {
	data := bytes.Repeat(rangeData, 50)
	srv := remotetest.New(map[string][]byte{"m/f": data, "m/g": data[:1234]}, remotetest.Options{NoRange: true})
	t.Cleanup(srv.Close)
	s, err := NewStore(srv.URL, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	meta, err := s.Stat(ctx, nil, "m", "f")
	if err != nil {
		t.Fatal(err)
	}
	if s.RangeSupport() != RangeUnknown {
		t.Fatalf("RangeSupport %d before any GET", s.RangeSupport())
	}
	for i, name := range []string{"f", "f", "g"} {
		m := meta
		want := data
		if name == "g" {
			if m, err = s.Stat(ctx, nil, "m", "g"); err != nil {
				t.Fatal(err)
			}
			want = data[:1234]
		}
		body, err := s.GetRange(ctx, m, 1000, 100, "m", name)
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		if !body.Whole || body.Off != 0 || body.Len != int64(len(want)) || !bytes.Equal(got, want) {
			t.Errorf("GET %d: Whole %v Off %d Len %d, %d bytes (equal %v); want the whole file at 0",
				i, body.Whole, body.Off, body.Len, len(got), bytes.Equal(got, want))
		}
		if s.RangeSupport() != RangeNo {
			t.Errorf("GET %d: RangeSupport %d, want RangeNo", i, s.RangeSupport())
		}
	}
	var ranges []string
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet {
			ranges = append(ranges, r.Range)
		}
	}
	if len(ranges) != 3 || ranges[0] == "" || ranges[1] != "" || ranges[2] != "" {
		t.Errorf("Range headers sent %q: want one, then none once the server is known to ignore them", ranges)
	}
}

// TestGetRangeChangedFile: the file changes on the server between Stat and
// a ranged GET; whatever the server does with If-Range, GetRange says
// ErrChanged and gives no byte.
func TestGetRangeChangedFile(t *testing.T) {
	old := bytes.Repeat([]byte("old version "), 1000)
	updated := bytes.Repeat([]byte("NEW VERSION "), 1000) // same size
	tests := []struct {
		name string
		opt  remotetest.Options
		// ignoreIfRange strips If-Range: the server answers 206 from the
		// new version.
		ignoreIfRange bool
		// bug, when set, names the bug the code once had that a failure
		// means is back; the failure is reported with it.
		bug string
	}{
		{name: "ETag, If-Range honoured (200 new version)"},
		{name: "ETag, If-Range ignored (206 new ETag)", ignoreIfRange: true},
		{name: "Last-Modified only, If-Range honoured", opt: remotetest.Options{NoETag: true}},
		{name: "Last-Modified only, If-Range ignored", opt: remotetest.Options{NoETag: true}, ignoreIfRange: true,
			bug: "regression: remote/ranges.go GetRange (206 branch) once did not compare Last-Modified: a 206 of another version was accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := remotetest.New(map[string][]byte{"m/f": old}, tt.opt)
			t.Cleanup(srv.Close)
			if tt.ignoreIfRange {
				srv.Intercept("m/f", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
					r.Header.Del("If-Range")
					serve(w, r)
				})
			}
			s, err := NewStore(srv.URL, fastOptions())
			if err != nil {
				t.Fatal(err)
			}
			ctx := testContext(t)
			meta, err := s.Stat(ctx, nil, "m", "f")
			if err != nil {
				t.Fatal(err)
			}
			srv.SetFile("m/f", remotetest.File{Data: updated, ModTime: time.Now().Add(time.Hour)})
			body, err := s.GetRange(ctx, meta, 100, 200, "m", "f")
			if err == nil {
				got, _ := io.ReadAll(body)
				body.Close()
				msg := fmt.Sprintf("GetRange of a changed file gave Whole %v, %q", body.Whole, got[:min(len(got), 24)])
				if tt.bug != "" {
					t.Errorf("%s: %s", tt.bug, msg)
				}
				t.Fatal(msg)
			}
			if !errors.Is(err, ErrChanged) {
				t.Errorf("err %v, want ErrChanged", err)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		bad               bool
	}{
		{in: "bytes 0-9/10", start: 0, end: 9, total: 10},
		{in: "bytes 10-29/100", start: 10, end: 29, total: 100},
		{in: "bytes 5-5/6", start: 5, end: 5, total: 6},
		{in: "bytes 0-0/1", start: 0, end: 0, total: 1},
		{in: "bytes 10-29/*", start: 10, end: 29, total: -1},
		{in: "bytes 1099511627776-1099511627779/1099511627780", start: 1 << 40, end: 1<<40 + 3, total: 1<<40 + 4},
		{in: "", bad: true},
		{in: "bytes", bad: true},
		{in: "bytes ", bad: true},
		{in: "bytes 0-9", bad: true},
		{in: "bytes 0-9/", bad: true},
		{in: "bytes 0/10", bad: true},
		{in: "bytes */10", bad: true},
		{in: "bytes */*", bad: true},
		{in: "bytes -5/10", bad: true},
		{in: "bytes 5-/10", bad: true},
		{in: "bytes 9-0/10", bad: true},
		{in: "bytes -1-5/10", bad: true},
		{in: "bytes 0-9/9", bad: true},
		{in: "bytes 0-9/5", bad: true},
		{in: "bytes 0-9/abc", bad: true},
		{in: "bytes a-9/10", bad: true},
		{in: "bytes 0-b/10", bad: true},
		{in: "bytes 0-9/10 ", bad: true},
		{in: " bytes 0-9/10", bad: true},
		{in: "bytes=0-9/10", bad: true},
		{in: "items 0-9/10", bad: true},
		{in: "bytes 0-9/-1", bad: true},
		{in: "bytes 0x0-9/10", bad: true},
		{in: "bytes 0-99999999999999999999/100000000000000000000", bad: true},
	}
	for _, tt := range tests {
		start, end, total, err := parseContentRange(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("parseContentRange(%q) = %d, %d, %d; want an error", tt.in, start, end, total)
			}
			continue
		}
		if err != nil || start != tt.start || end != tt.end || total != tt.total {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d", tt.in, start, end, total, err, tt.start, tt.end, tt.total)
		}
	}
}

// TestBodyCopyTo: a ranged body lands in the file at its offset, on the
// zero-copy path (spliced) and through net/http; a body cut short is an
// error, never a silently short copy.
func TestBodyCopyTo(t *testing.T) {
	data := randomBytes(300 << 10)
	for _, netHTTP := range []bool{false, true} {
		t.Run(fmt.Sprintf("net/http %v", netHTTP), func(t *testing.T) {
			srv := remotetest.New(map[string][]byte{"m/f": data}, remotetest.Options{})
			t.Cleanup(srv.Close)
			opt := fastOptions()
			opt.Retries = -1
			if netHTTP {
				opt.Transport = NewTransport(opt)
			}
			s, err := NewStore(srv.URL, opt)
			if err != nil {
				t.Fatal(err)
			}
			meta, err := s.Stat(testContext(t), nil, "m", "f")
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(filepath.Join(t.TempDir(), "cache"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(int64(len(data))); err != nil {
				t.Fatal(err)
			}
			copyRangeInSteps(t, s, meta, f, data)
			copyCutShort(t, srv, s, meta, f)
		})
	}
}

// copyOff and copyN are the range TestBodyCopyTo copies.
const copyOff, copyN = 70001, 150 << 10

// copyRangeInSteps copies the range of m/f (data) into f in two steps, as
// a stream writes chunk after chunk: the bytes land at their offset, and
// nothing outside the range is touched.
func copyRangeInSteps(t *testing.T, s *Store, meta Meta, f *os.File, data []byte) {
	body, err := s.GetRange(testContext(t), meta, copyOff, copyN, "m", "f")
	if err != nil {
		t.Fatal(err)
	}
	if err := body.CopyTo(f, copyOff, 1000); err != nil {
		t.Fatal(err)
	}
	if err := body.CopyTo(f, copyOff+1000, copyN-1000); err != nil {
		t.Fatal(err)
	}
	if m, err := body.Read(make([]byte, 1)); m != 0 || err != io.EOF {
		t.Errorf("read past the range: %d, %v; want io.EOF", m, err)
	}
	body.Close()
	got := make([]byte, copyN)
	if _, err := f.ReadAt(got, copyOff); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[copyOff:copyOff+copyN]) {
		t.Fatal("copied bytes differ")
	}
	// Nothing outside the range was touched.
	if _, err := f.ReadAt(got[:copyOff], 0); err != nil || !bytes.Equal(got[:copyOff], make([]byte, copyOff)) {
		t.Fatalf("bytes before the range written: %v", err)
	}
}

// copyCutShort: CopyTo fails for a body cut short and for more bytes than
// the body holds.
func copyCutShort(t *testing.T, srv *remotetest.Server, s *Store, meta Meta, f *os.File) {
	ctx := testContext(t)
	srv.Truncate("m/f", 5000)
	body, err := s.GetRange(ctx, meta, copyOff, copyN, "m", "f")
	if err != nil {
		t.Fatal(err)
	}
	err = body.CopyTo(f, copyOff, copyN)
	body.Close()
	if err == nil {
		t.Fatal("CopyTo of a body cut short succeeded")
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Logf("cut short: %v", err)
	}
	// Asking more than the body holds.
	srv.Truncate("m/f", -1)
	body, err = s.GetRange(ctx, meta, copyOff, 100, "m", "f")
	if err != nil {
		t.Fatal(err)
	}
	err = body.CopyTo(f, copyOff, 200)
	body.Close()
	if err == nil {
		t.Fatal("CopyTo of more bytes than the body holds succeeded")
	}
}

// TestGetRangeBytesAfterBody: a server that sends more bytes than its
// Content-Length leaves them on a keep-alive connection; the next request
// on that connection must not take them for (part of) its answer.
func TestGetRangeBytesAfterBody(t *testing.T) {
	for _, netHTTP := range []bool{false, true} {
		t.Run(fmt.Sprintf("net/http %v", netHTTP), func(t *testing.T) {
			opt := fastOptions()
			// One retry: the junk can reach the next request on a reused
			// connection as a malformed answer, which a retry on a fresh
			// connection gets past (as the daemon's default retries do).
			opt.Retries = 1
			if netHTTP {
				opt.Transport = NewTransport(opt)
			}
			s, mux := newTestStore(t, opt)
			var calls atomic.Int32
			mux.HandleFunc(basePath+"f", func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) > 1 {
					w.Header().Set("ETag", rangeETag)
					http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(rangeData))
					return
				}
				conn, buf, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				part := rangeData[10:30]
				_, _ = buf.WriteString(rawAnswer("206 Partial Content", part, cr(10, 29, 100), cl(20), "ETag: "+rangeETag))
				_, _ = buf.WriteString("junk after the body: HTTP/1.1 206 Partial Content\r\n")
				_ = buf.Flush()
				// Wait for the client's next request on this connection (or
				// for it to go elsewhere), then hang up.
				_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				_, _ = http.ReadRequest(buf.Reader)
			})
			ctx := testContext(t)
			for i, off := range []int64{10, 40} {
				body, err := s.GetRange(ctx, rangeWant(), off, 20, "f")
				if err != nil {
					t.Fatalf("GET %d: %v", i, err)
				}
				got, err := io.ReadAll(body)
				body.Close()
				if err != nil {
					// An error is fine (the junk may be seen); wrong bytes never.
					t.Logf("GET %d: %v", i, err)
					continue
				}
				if !bytes.Equal(got, rangeData[off:off+20]) {
					t.Fatalf("GET %d at %d: %q, want %q", i, off, got, rangeData[off:off+20])
				}
			}
		})
	}
}
