package remotetest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestThrottle: a throttled connection takes at least size/Rate plus
// FirstByte for an answer (a lower bound, so a slow machine cannot fail it),
// bytes arrive intact, and Accepted counts connections, not requests.
func TestThrottle(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
	}))
	th := Throttle{Rate: 4 << 20, FirstByte: 50 * time.Millisecond}
	l := th.Listen(ts.Listener)
	ts.Listener = l
	ts.Start()
	t.Cleanup(ts.Close)
	client := &http.Client{Timeout: 30 * time.Second}

	get := func(c *http.Client) time.Duration {
		t.Helper()
		start := time.Now()
		resp, err := c.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("body: %d bytes, %v; want the %d bytes served", len(got), err, len(data))
		}
		return time.Since(start)
	}
	// At most a burst goes out ahead of the link time.
	least := th.FirstByte + time.Duration(int64(len(data)-throttleBurst)*int64(time.Second)/th.Rate)
	for i := range 2 {
		if d := get(client); d < least {
			t.Errorf("GET %d took %s, less than %s at %d B/s", i, d, least, th.Rate)
		}
	}
	if n := l.Accepted(); n != 1 {
		t.Errorf("two sequential GETs on one client opened %d connections, want 1 (keep-alive)", n)
	}
	other := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get(other)
	if n := l.Accepted(); n != 2 {
		t.Errorf("after a GET from a second client: %d connections, want 2", n)
	}
}
