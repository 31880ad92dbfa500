package remote

// Hostile and broken servers of issue 13: stalled bodies on every path,
// chunked 206 answers that end short, files without a length, credentials
// on a redirect to another origin, ETags that change on every request.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStallIsNotCancellation: a body the stall guard gave up on reports
// ErrStalled, never context.Canceled (which callers take for their own
// interruption), on the net/http path (https here) and the raw path.
func TestStallIsNotCancellation(t *testing.T) {
	handler := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Header().Set("ETag", `"s"`)
		w.Header().Set("Content-Range", "bytes 0-99999/100000")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, 1000))
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			var srv *httptest.Server
			if tls {
				srv = httptest.NewTLSServer(http.HandlerFunc(handler))
			} else {
				srv = httptest.NewServer(http.HandlerFunc(handler))
			}
			t.Cleanup(srv.Close)
			opt := fastOptions()
			opt.StallTimeout = 200 * time.Millisecond
			if tls {
				opt.Transport = srv.Client().Transport
			}
			s, err := NewStore(srv.URL+"/", opt)
			if err != nil {
				t.Fatal(err)
			}
			body, err := s.GetRange(testContext(t), Meta{Size: 100000, ETag: `"s"`}, 0, 100000, "w")
			if err == nil {
				_, err = io.Copy(io.Discard, body)
				body.Close()
			}
			if err == nil {
				t.Fatal("a stalled body was read without error")
			}
			// ErrStalled: the guard ended it, not the test's deadline.
			if errors.Is(err, context.Canceled) || !errors.Is(err, ErrStalled) {
				t.Errorf("error %q: want ErrStalled, not context.Canceled", err)
			}
		})
	}
}

// rawServer answers every request on a connection with answer(conn, req)
// and counts requests.
func rawServer(t *testing.T, answer func(c net.Conn, r *http.Request)) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-done; c.Close() }()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					n.Add(1)
					answer(c, r)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/", &n
}

// TestChunkedPartialContent: a 206 with a chunked body is read once (not
// fetched again on the other path), and one whose chunk promises more bytes
// than it sends fails fast, whether the server then closes or goes silent.
func TestChunkedPartialContent(t *testing.T) {
	data := rangeData
	tests := []struct {
		name    string
		short   bool // half the range is sent, in a chunk that promises 100 bytes more
		silent  bool // after that, the connection stays open and silent
		wantErr bool
	}{
		{"well formed", false, false, false},
		{"short then close", true, false, true},
		{"short then silence", true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, gets := rawServer(t, func(c net.Conn, r *http.Request) {
				part := data[rangeOff : rangeOff+rangeN]
				fmt.Fprintf(c, "HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nETag: %s\r\nLast-Modified: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n",
					rangeETag, rangeLM, rangeOff, rangeOff+rangeN-1, len(data))
				if tt.short {
					fmt.Fprintf(c, "%x\r\n%s", len(part)/2+100, part[:len(part)/2])
					if tt.silent {
						time.Sleep(3 * time.Second)
					}
					c.Close()
					return
				}
				fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\n", len(part), part)
			})
			opt := fastOptions()
			opt.StallTimeout = 300 * time.Millisecond
			opt.Retries = -1
			s, err := NewStore(url, opt)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			body, err := s.GetRange(testContext(t), rangeWant(), rangeOff, rangeN, "f")
			if err == nil {
				got, err = io.ReadAll(body)
				body.Close()
			}
			if tt.wantErr {
				if err == nil {
					t.Fatalf("short chunked body read as %q", got)
				}
				if errors.Is(err, context.Canceled) {
					t.Errorf("error %q wraps context.Canceled", err)
				}
				// Ended by the client (short body, stall guard), not by
				// the test's deadline: a drain until the deadline would be.
				if errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %q: the read ran into the caller's deadline", err)
				}
			} else if err != nil || !bytes.Equal(got, data[rangeOff:rangeOff+rangeN]) {
				t.Fatalf("got %q, %v", got, err)
			}
			if n := gets.Load(); n != 1 {
				t.Errorf("%d GETs for one range, want 1", n)
			}
		})
	}
}

// TestStatUnsized: a file without Content-Length (chunked HEAD and GET, or
// HEAD refused) is sized from a one-byte ranged GET; the body is never
// downloaded to learn it. A server without Range support leaves the size
// unknown, still without downloading.
func TestStatUnsized(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 4<<20)
	for _, tc := range []struct {
		name     string
		noHead   bool
		ranges   bool
		wantSize int64
	}{
		{"chunked with Range", false, true, int64(len(big))},
		{"HEAD 405, chunked with Range", true, true, int64(len(big))},
		{"chunked without Range", false, false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, mux := newTestStore(t, fastOptions())
			var ranges []string
			var mu sync.Mutex
			mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				ranges = append(ranges, r.Method+" "+r.Header.Get("Range"))
				mu.Unlock()
				if r.Method == http.MethodHead && tc.noHead {
					http.Error(w, "no", http.StatusMethodNotAllowed)
					return
				}
				w.Header().Set("ETag", `"e"`)
				if rg := r.Header.Get("Range"); tc.ranges && rg == "bytes=0-0" {
					w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-0/%d", len(big)))
					w.WriteHeader(http.StatusPartialContent)
					http.NewResponseController(w).Flush()
					w.Write(big[:1])
					return
				}
				w.WriteHeader(http.StatusOK)
				http.NewResponseController(w).Flush() // chunked: no length
				if r.Method != http.MethodHead {
					w.Write(big)
				}
			})
			m, err := s.Stat(testContext(t), nil, "f")
			if err != nil {
				t.Fatal(err)
			}
			if m.Size != tc.wantSize || m.ETag != `"e"` {
				t.Errorf("Stat = %+v, want size %d", m, tc.wantSize)
			}
			if got := s.BytesReceived(); got > 1<<20 {
				t.Errorf("Stat received %d body bytes", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if ranges[len(ranges)-1] != "GET bytes=0-0" {
				t.Errorf("requests %q: want the last a one-byte ranged GET", ranges)
			}
		})
	}
}

// TestCredentialsExactOrigin: credentials go to the store's exact origin
// only: not after a redirect from https to http on the same host, nor to
// another port of the same host.
func TestCredentialsExactOrigin(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen["plain "+r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		w.Write([]byte("{}"))
	}))
	t.Cleanup(plain.Close)
	redirecting := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen["store "+r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		switch r.URL.Path {
		case "/s/away.json":
			http.Redirect(w, r, plain.URL+"/downgraded.json", http.StatusFound)
		case "/s/here.json":
			http.Redirect(w, r, "/s/x.json", http.StatusFound)
		default:
			w.Write([]byte("{}"))
		}
	}
	for _, tls := range []bool{true, false} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			var srv *httptest.Server
			opt := fastOptions()
			if tls {
				srv = httptest.NewTLSServer(http.HandlerFunc(redirecting))
				opt.Transport = srv.Client().Transport
			} else {
				srv = httptest.NewServer(http.HandlerFunc(redirecting))
			}
			t.Cleanup(srv.Close)
			clear(seen)
			u := strings.Replace(srv.URL, "://", "://alice:s3cret@", 1) + "/s/"
			s, err := NewStore(u, opt)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"away.json", "here.json"} {
				if _, _, err := s.Fetch(testContext(t), nil, 1<<10, f); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range []string{"store /s/away.json", "store /s/here.json", "store /s/x.json"} {
				if !strings.HasPrefix(seen[p], "Basic ") {
					t.Errorf("%s: no credentials (%q)", p, seen[p])
				}
			}
			if a, ok := seen["plain /downgraded.json"]; !ok || a != "" {
				t.Errorf("redirect to another origin on the same host: reached %v, Authorization %q", ok, a)
			}
		})
	}
}

// TestUnstableETag: a store that sends a new ETag on every request for
// the same bytes is recognised by two HEADs that disagree while size and
// date stay; its files are then read whole, checked by size and date. A
// real change (another size) is never taken for instability.
func TestUnstableETag(t *testing.T) {
	s, mux := newTestStore(t, fastOptions())
	var n atomic.Int64
	data := rangeData
	mux.HandleFunc("/team/f", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, n.Add(1)))
		w.Header().Set("Last-Modified", rangeLM)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if r.Method != http.MethodHead {
			w.Write(data)
		}
	})
	mux.HandleFunc("/team/grown", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", fmt.Sprintf(`"g%d"`, n.Add(1)))
		w.Header().Set("Last-Modified", rangeLM)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)+1))
		if r.Method != http.MethodHead {
			w.Write(append(data, '!'))
		}
	})
	ctx := testContext(t)
	if ok, err := s.ProbeUnstableETag(ctx, Meta{Size: int64(len(data)), ETag: `"old"`, LastModified: rangeLM}, "grown"); ok || err != nil {
		t.Errorf("a file of another size was taken for an unstable ETag: %v %v", ok, err)
	}
	want, err := s.Stat(ctx, nil, "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRange(ctx, want, rangeOff, rangeN, "f"); !errors.Is(err, ErrChanged) {
		t.Fatalf("GetRange with a changed ETag: %v, want ErrChanged", err)
	}
	if ok, err := s.ProbeUnstableETag(ctx, want, "f"); !ok || err != nil {
		t.Fatalf("ProbeUnstableETag = %v, %v; want newly marked", ok, err)
	}
	if ok, _ := s.ProbeUnstableETag(ctx, want, "f"); ok {
		t.Error("marked twice")
	}
	body, err := s.GetRange(ctx, want, rangeOff, rangeN, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil || !body.Whole || !bytes.Equal(got, data) {
		t.Errorf("unstable store: whole=%v, %d bytes, %v; want the whole file", body.Whole, len(got), err)
	}
}
