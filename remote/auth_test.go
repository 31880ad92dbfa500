package remote

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestCredentialsStayWithTheirHost: userinfo of the store URL is sent as
// Basic auth to the store's host, never to the host of a redirect, and
// never appears in errors.
func TestCredentialsStayWithTheirHost(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // server -> Authorization header
	record := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name] = r.Header.Get("Authorization")
			mu.Unlock()
			w.Write([]byte("{}"))
		}
	}
	// A second loopback address is another host for the client.
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("127.0.0.2 not usable here:", err)
	}
	other := httptest.NewUnstartedServer(record("other"))
	other.Listener.Close()
	other.Listener = l
	other.Start()
	defer other.Close()

	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/away.json") {
			mu.Lock()
			seen["store-redirect"] = r.Header.Get("Authorization")
			mu.Unlock()
			http.Redirect(w, r, other.URL+"/x.json", http.StatusFound)
			return
		}
		record("store")(w, r)
	}))
	defer store.Close()

	u := strings.Replace(store.URL, "http://", "http://alice:s3cret@", 1) + "/team/"
	s, err := NewStore(u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.Base().String(), "s3cret") || strings.Contains(s.URL("a"), "s3cret") {
		t.Errorf("credentials kept in URLs: %s %s", s.Base(), s.URL("a"))
	}
	ctx := context.Background()
	if _, _, err := s.Fetch(ctx, nil, 1<<10, "info.json"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Fetch(ctx, nil, 1<<10, "away.json"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(seen["store"], "Basic ") || seen["store-redirect"] != seen["store"] {
		t.Errorf("store host did not get the credentials: %q %q", seen["store"], seen["store-redirect"])
	}
	if seen["other"] != "" {
		t.Errorf("credentials followed a cross-host redirect: %q", seen["other"])
	}
}
