package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// TestHeaderStaysWithItsOrigin: Options.Header reaches the store on every
// path (net/http and the zero-copy ranged GET), wins over the URL's
// userinfo, and is never sent after a redirect to another origin (here
// another port of the same host, where Go's client would keep it).
func TestHeaderStaysWithItsOrigin(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{} // request -> its headers
	record := func(name string, r *http.Request) {
		mu.Lock()
		seen[name] = r.Header.Clone()
		mu.Unlock()
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("other", r)
		w.Write([]byte("{}"))
	}))
	defer other.Close()
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/team/")
		record(name, r)
		if name == "away.json" {
			http.Redirect(w, r, other.URL+"/x.json", http.StatusFound)
			return
		}
		http.ServeContent(w, r, name, time.Time{}, strings.NewReader("0123456789"))
	}))
	defer store.Close()

	h := http.Header{"Authorization": {"Bearer t0ken"}, "X-Api-Key": {"k3y"}}
	s, err := NewStore(strings.Replace(store.URL, "http://", "http://alice:pw@", 1)+"/team/", Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	if !s.fast {
		t.Fatal("the zero-copy path is off: this test would not cover it")
	}
	ctx := context.Background()
	if _, _, err := s.Fetch(ctx, nil, 1<<10, "info.json"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Fetch(ctx, nil, 1<<10, "away.json"); err != nil {
		t.Fatal(err)
	}
	b, err := s.GetRange(ctx, Meta{Size: 10}, 2, 4, "ranged.bin")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, b)
	b.Close()

	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"info.json", "away.json", "ranged.bin"} {
		if got := seen[name]; got.Get("Authorization") != "Bearer t0ken" || got.Get("X-Api-Key") != "k3y" {
			t.Errorf("%s reached the store with Authorization %q X-Api-Key %q", name, got.Get("Authorization"), got.Get("X-Api-Key"))
		}
	}
	if got, ok := seen["other"]; !ok || got.Get("Authorization") != "" || got.Get("X-Api-Key") != "" {
		t.Errorf("the redirect to another origin carried Authorization %q X-Api-Key %q (reached: %v)", got.Get("Authorization"), got.Get("X-Api-Key"), ok)
	}
	if len(h) != 2 || h.Get("Authorization") != "Bearer t0ken" {
		t.Errorf("the caller's header was changed: %v", h)
	}
}

// TestClientCertificate: a store behind a TLS server that requires client
// certificates answers with Options.Certificates, and refuses without.
func TestClientCertificate(t *testing.T) {
	ca, caKey := testutil.ClientCert(t, "test CA", nil, nil)
	client, clientKey := testutil.ClientCert(t, "modelstorefs client", ca, caKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"client": "` + r.TLS.PeerCertificates[0].Subject.CommonName + `"}`))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the test
	srv.StartTLS()
	defer srv.Close()
	serverCAs := x509.NewCertPool()
	serverCAs.AddCert(srv.Certificate())

	cert := tls.Certificate{Certificate: [][]byte{client.Raw}, PrivateKey: clientKey}
	tests := []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"with the client certificate", []tls.Certificate{cert}, true},
		{"without", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStore(srv.URL, Options{RootCAs: serverCAs, Certificates: tt.certs, Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			body, _, err := s.Fetch(context.Background(), nil, 1<<10, "info.json")
			if tt.ok && (err != nil || string(body) != `{"client": "modelstorefs client"}`) {
				t.Errorf("Fetch = %q, %v", body, err)
			}
			if !tt.ok && err == nil {
				t.Errorf("the server answered without a client certificate: %q", body)
			}
		})
	}
}
