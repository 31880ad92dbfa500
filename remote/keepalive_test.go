package remote

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keepAliveServer serves rangeData at basePath+"f" and hangs up on idle
// keep-alive connections in one of two ways: after idle (as nginx's
// keepalive_timeout and Apache's KeepAliveTimeout do), or, with onReuse,
// on the next request of a connection that already served one, unanswered
// (the race of a keep-alive timeout with a request on its way).
type keepAliveServer struct {
	*httptest.Server
	conns    atomic.Int32 // connections accepted
	requests atomic.Int32 // requests answered

	// While priming, the first n requests wait for each other, so that n
	// connections are open at once and go idle together.
	prime   atomic.Int32
	arrived atomic.Int32
	release chan struct{}
}

type connRequestsKey struct{}

func newKeepAliveServer(t *testing.T, idle time.Duration, onReuse bool) *keepAliveServer {
	t.Helper()
	ks := &keepAliveServer{release: make(chan struct{})}
	ks.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if onReuse && r.Context().Value(connRequestsKey{}).(*atomic.Int32).Add(1) > 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			conn.Close()
			return
		}
		if n := ks.prime.Load(); n > 0 {
			if ks.arrived.Add(1) == n {
				close(ks.release)
			}
			select {
			case <-ks.release:
			case <-time.After(2 * time.Second):
				t.Errorf("priming: only %d of %d requests arrived together", ks.arrived.Load(), n)
			}
		}
		ks.requests.Add(1)
		w.Header().Set("ETag", rangeETag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(rangeData))
	}))
	ks.Config.IdleTimeout = idle
	ks.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connRequestsKey{}, new(atomic.Int32))
	}
	ks.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			ks.conns.Add(1)
		}
	}
	ks.Start()
	t.Cleanup(ks.Close)
	return ks
}

// getRanges asks n ranges of f, all at once or one after the other, and
// returns the errors and the slowest request's time.
func getRanges(ctx context.Context, s *Store, n int, concurrent bool) (errs []error, slowest time.Duration) {
	var mu sync.Mutex
	one := func(i int) {
		start := time.Now()
		off := int64(i % 50)
		err := func() error {
			body, err := s.GetRange(ctx, rangeWant(), off, rangeN, "f")
			if err != nil {
				return err
			}
			defer body.Close()
			got, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, rangeData[off:off+rangeN]) {
				return fmt.Errorf("range at %d: %q", off, got)
			}
			return nil
		}()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		slowest = max(slowest, time.Since(start))
	}
	if !concurrent {
		for i := range n {
			one(i)
		}
		return errs, slowest
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one(i)
		}()
	}
	wg.Wait()
	return errs, slowest
}

// TestServerClosesIdleConnections: a server that closes idle keep-alive
// connections (after 500 ms here; nginx with keepalive_timeout 2s, Apache
// after 5 s) must cost no failed request and no wait. Eight connections go
// idle together and are all closed by the server; the next eight requests,
// one by one or all at once, each succeed at their first attempt.
func TestServerClosesIdleConnections(t *testing.T) {
	const n = 8
	tests := []struct {
		name       string
		onReuse    bool // the server hangs up on the next request instead of after idle
		concurrent bool
		netHTTP    bool
	}{
		{name: "closed after idle, one by one"},
		{name: "closed after idle, all at once", concurrent: true},
		{name: "closed as the request arrives, one by one", onReuse: true},
		{name: "closed as the request arrives, all at once", onReuse: true, concurrent: true},
		{name: "net/http: closed after idle, one by one", netHTTP: true},
		{name: "net/http: closed after idle, all at once", concurrent: true, netHTTP: true},
		{name: "net/http: closed as the request arrives, one by one", onReuse: true, netHTTP: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const idle = 500 * time.Millisecond
			ks := newKeepAliveServer(t, idle, tt.onReuse)
			opt := fastOptions()
			opt.Retries = -1 // a failure shows, not hidden by a retry
			if tt.netHTTP {
				opt.Transport = NewTransport(opt)
			}
			s, err := NewStore(ks.URL+basePath, opt)
			if err != nil {
				t.Fatal(err)
			}
			if s.fast == tt.netHTTP {
				t.Fatalf("zero-copy path %v, want %v", s.fast, !tt.netHTTP)
			}
			s.rawIdleAge = time.Hour // under test: what finds the closed ones, not the age bound
			ctx := testContext(t)

			ks.prime.Store(n)
			if errs, _ := getRanges(ctx, s, n, true); len(errs) > 0 {
				t.Fatalf("priming: %v", errs)
			}
			ks.prime.Store(0)
			if got := ks.conns.Load(); got != n {
				t.Fatalf("priming opened %d connections, want %d", got, n)
			}
			if !tt.onReuse {
				time.Sleep(idle + 500*time.Millisecond) // the server closes them all
			}

			before := ks.requests.Load()
			errs, slowest := getRanges(ctx, s, n, tt.concurrent)
			t.Logf("after the close: %d of %d requests failed, slowest %s, %d connections in all",
				len(errs), n, slowest, ks.conns.Load())
			for _, err := range errs {
				t.Errorf("request failed: %v", err)
			}
			if answered := ks.requests.Load() - before; answered != n {
				t.Errorf("server answered %d requests, want %d", answered, n)
			}
			for _, c := range s.RequestCounts() {
				if c.Status != "2xx" {
					t.Errorf("%d %s requests counted as %s, want every one 2xx", c.Count, c.Method, c.Status)
				}
			}
			// Loopback answers in a millisecond; a retry after a backoff,
			// or a wait for a timeout, would take far longer.
			if slowest > 500*time.Millisecond {
				t.Errorf("slowest request took %s", slowest)
			}
		})
	}
}

// TestRawIdleAge: a pooled connection is reused while young, and replaced
// by a new one once it has waited longer than the bound, even when the
// server would still take it.
func TestRawIdleAge(t *testing.T) {
	tests := []struct {
		pause     time.Duration
		wantConns int32
	}{
		{0, 1},
		{50 * time.Millisecond, 1},
		{400 * time.Millisecond, 2},
	}
	for _, tt := range tests {
		t.Run(tt.pause.String(), func(t *testing.T) {
			ks := newKeepAliveServer(t, 0, false)
			s, err := NewStore(ks.URL+basePath, fastOptions())
			if err != nil {
				t.Fatal(err)
			}
			s.rawIdleAge = 200 * time.Millisecond
			ctx := testContext(t)
			for i := range 2 {
				if i > 0 {
					time.Sleep(tt.pause)
				}
				if errs, _ := getRanges(ctx, s, 1, false); len(errs) > 0 {
					t.Fatal(errs)
				}
			}
			if got := ks.conns.Load(); got != tt.wantConns {
				t.Errorf("%d connections after a pause of %s, want %d", got, tt.pause, tt.wantConns)
			}
		})
	}
}

// TestRawConnUsable: the peek at an idle connection tells one the server
// keeps open from one it closed, reset or wrote to unasked.
func TestRawConnUsable(t *testing.T) {
	tests := []struct {
		name   string
		server func(c *net.TCPConn)
		want   bool
	}{
		{"open and quiet", func(*net.TCPConn) {}, true},
		{"closed", func(c *net.TCPConn) { c.Close() }, false},
		{"reset", func(c *net.TCPConn) { _ = c.SetLinger(0); c.Close() }, false},
		{"408 before closing", func(c *net.TCPConn) {
			_, _ = c.Write([]byte("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			rc := &rawConn{c: c, br: bufio.NewReader(c)}
			if !rc.usable() {
				t.Fatal("a new connection is not usable")
			}
			tt.server(sc.(*net.TCPConn))
			// What the server did reaches this end within a moment: wait
			// for the connection to turn unusable, or long enough to be
			// sure it stays usable.
			var got bool
			for deadline := time.Now().Add(500 * time.Millisecond); ; time.Sleep(10 * time.Millisecond) {
				got = rc.usable()
				if !got || time.Now().After(deadline) {
					break
				}
			}
			if got != tt.want {
				t.Errorf("usable() = %v, want %v", got, tt.want)
			}
		})
	}
}
