package remotetest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// get does one GET of path with an optional Range, returning the answer
// and its body (or the error reading either).
func get(t *testing.T, c *http.Client, s *Server, path, rng string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestFaultStatusTimesAndLog(t *testing.T) {
	s := New(map[string][]byte{"f": []byte("0123456789")}, Options{})
	defer s.Close()
	s.AddFault("f", Fault{Kind: FaultStatus, Status: 503, RetryAfter: "2", Method: "GET", Times: 2})
	if resp, _ := do(t, s, "HEAD", "f", nil); resp.StatusCode != 200 {
		t.Errorf("HEAD answered %d: a GET fault must not spoil it", resp.StatusCode)
	}
	var codes []int
	for range 3 {
		resp, _ := do(t, s, "GET", "f", nil)
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "2" {
			t.Errorf("503 without Retry-After: 2")
		}
	}
	if codes[0] != 503 || codes[1] != 503 || codes[2] != 200 {
		t.Errorf("statuses %v, want 503 503 200", codes)
	}
	var faults []string
	for _, r := range s.Arrivals("f") {
		faults = append(faults, r.Fault)
		if r.URLPath != "/f" || r.URI != "/f" || r.Auth {
			t.Errorf("logged %+v", r)
		}
	}
	if got := strings.Join(faults, ","); got != ",status,status," {
		t.Errorf("faults logged %q", got)
	}
	s.AddFault("f", Fault{Kind: FaultStatus, Status: 500, Times: -1})
	s.ClearFaults("f")
	if resp, _ := do(t, s, "GET", "f", nil); resp.StatusCode != 200 {
		t.Errorf("after ClearFaults: %d", resp.StatusCode)
	}
}

func TestFaultSpoiledBodies(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 4096)
	s := New(map[string][]byte{"f": data}, Options{})
	defer s.Close()
	c := &http.Client{Timeout: time.Second}
	for _, tc := range []struct {
		kind  FaultKind
		check func(resp *http.Response, body []byte, err error) bool
	}{
		{FaultReset, func(_ *http.Response, body []byte, err error) bool {
			return errors.Is(err, syscall.ECONNRESET) && len(body) <= len(data)/2
		}},
		{FaultTruncate, func(_ *http.Response, body []byte, err error) bool {
			return errors.Is(err, io.ErrUnexpectedEOF) && len(body) == len(data)/2
		}},
		{FaultLyingLength, func(resp *http.Response, body []byte, err error) bool {
			return err == nil && resp.StatusCode == 206 && resp.Header.Get("Content-Range") == "bytes 0-16383/32768" && bytes.Equal(body, data[:len(data)/2])
		}},
		{FaultStall, func(_ *http.Response, body []byte, err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout() && len(body) <= len(data)/2
		}},
	} {
		s.AddFault("f", Fault{Kind: tc.kind, Times: 1, Cut: 0.5})
		rng := ""
		if tc.kind == FaultLyingLength {
			rng = "bytes=0-"
		}
		resp, body, err := get(t, c, s, "f", rng)
		if !tc.check(resp, body, err) {
			t.Errorf("%v: %d bytes, %v", tc.kind, len(body), err)
		}
		if _, body, err := get(t, c, s, "f", ""); err != nil || !bytes.Equal(body, data) {
			t.Errorf("after %v: %d bytes, %v", tc.kind, len(body), err)
		}
	}
}

func TestFaultAnswers(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	s := New(map[string][]byte{"f": data}, Options{})
	defer s.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	s.AddFault("f", Fault{Kind: FaultRedirect, Times: 1, Location: "http://elsewhere/f"})
	if resp, _, err := get(t, c, s, "f", ""); err != nil || resp.StatusCode != 302 || resp.Header.Get("Location") != "http://elsewhere/f" {
		t.Errorf("redirect: %v %v", resp, err)
	}
	s.AddFault("f", Fault{Kind: FaultNoRange, Times: 1})
	if resp, body, err := get(t, c, s, "f", "bytes=10-19"); err != nil || resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Errorf("no-range: %v, %d bytes, %v", resp, len(body), err)
	}

	oldTag, newer := s.ETag("f"), []byte("newer")
	s.AddFault("f", Fault{Kind: FaultReplace, Times: 1, NewData: newer})
	if resp, body, err := get(t, c, s, "f", ""); err != nil || !bytes.Equal(body, data) || resp.Header.Get("ETag") != oldTag {
		t.Errorf("replace: the request that replaced got %d bytes, %v", len(body), err)
	}
	if _, body, err := get(t, c, s, "f", ""); err != nil || !bytes.Equal(body, newer) || s.ETag("f") == oldTag {
		t.Errorf("replace: then %q, %v", body, err)
	}

	s.Set("f", data)
	s.AddFault("f", Fault{Kind: FaultDelay, Times: 1, Delay: 200 * time.Millisecond})
	s.AddFault("f", Fault{Kind: FaultThrottle, Times: 1, Rate: 256 << 10}) // 128 KiB: 0.5 s, the first write's burst included
	for _, want := range []time.Duration{200 * time.Millisecond, 200 * time.Millisecond} {
		start := time.Now()
		if _, body, err := get(t, c, s, "f", ""); err != nil || !bytes.Equal(body, data) {
			t.Errorf("delay or throttle: %d bytes, %v", len(body), err)
		}
		if took := time.Since(start); took < want {
			t.Errorf("answered in %s, want at least %s", took, want)
		}
	}
}

func TestSetDownAndBackOnTheSamePort(t *testing.T) {
	s := New(map[string][]byte{"f": []byte("x")}, Options{Host: "127.0.0.2"})
	defer s.Close()
	if !strings.HasPrefix(s.URL, "http://127.0.0.2:") {
		t.Errorf("URL %s, want it on 127.0.0.2", s.URL)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if _, _, err := get(t, c, s, "f", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDown(true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, c, s, "f", ""); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("while down: %v, want connection refused", err)
	}
	if err := s.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if _, body, err := get(t, c, s, "f", ""); err != nil || string(body) != "x" {
		t.Errorf("back up: %q %v", body, err)
	}
}

func TestTLSAndArrivalsInFlight(t *testing.T) {
	s := New(map[string][]byte{"f": []byte("x")}, Options{TLS: true})
	defer s.Close()
	if !strings.HasPrefix(s.URL, "https://") || s.Certificate() == nil {
		t.Fatalf("URL %s, certificate %v", s.URL, s.Certificate())
	}
	g := s.Hold("f")
	done := make(chan error, 1)
	go func() {
		_, _, err := get(t, s.Client(), s, "f", "")
		done <- err
	}()
	<-g.Arrived()
	if a, r := s.Arrivals("f"), s.Requests("f"); len(a) != 1 || a[0].Status != 0 || len(r) != 0 {
		t.Errorf("held: arrivals %+v, requests %+v", a, r)
	}
	g.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a := s.Arrivals("f"); len(a) != 1 || a[0].Status != 200 {
		t.Errorf("answered: arrivals %+v", a)
	}
}

func TestCloseEndsAStallAndBlackHole(t *testing.T) {
	s := New(map[string][]byte{"f": bytes.Repeat([]byte("x"), 1000)}, Options{})
	s.AddFault("f", Fault{Kind: FaultStall, Times: 1, Cut: 0.5})
	resp, err := s.Client().Get(s.URL + "f")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	s.Close() // must not wait for the stalled client
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %s with a stalled answer", took)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("a stalled body ended without an error")
	}

	b, err := NewBlackHole()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("the black hole answered: %d %v", n, err)
	}
	for deadline := time.Now().Add(5 * time.Second); b.Accepted() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if b.Accepted() != 1 {
		t.Errorf("accepted %d", b.Accepted())
	}
}
