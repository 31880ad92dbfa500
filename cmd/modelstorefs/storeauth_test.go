package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		entry              string
		store, name, value string
		err                string
	}{
		{"Authorization: Bearer abc", "", "Authorization", "Bearer abc", ""},
		{"x-api-key:k3y", "", "X-Api-Key", "k3y", ""},
		{"team=Authorization: Bearer a=b:c", "team", "Authorization", "Bearer a=b:c", ""},
		{"X-List: a, b, c", "", "X-List", "a, b, c", ""},
		{" s1 = X-Token :  t  ", "s1", "X-Token", "t", ""},
		{"Bearer abc", "", "", "", `has no ":"`},
		{"token=abc", "", "", "", `has no ":"`},
		{"=X-Token: t", "", "", "", "no store name"},
		{"Bad Name: v", "", "", "", "not an HTTP header name"},
		{"Range: bytes=0-1", "", "", "", "Range is set by modelstorefs itself"},
		{"accept-encoding: gzip", "", "", "", "is set by modelstorefs itself"},
		{"X-Token:", "", "", "", "no value"},
		{"X-Token: a\rInjected: b", "", "", "", "line break"},
	}
	for _, tt := range tests {
		store, name, value, err := parseHeader(tt.entry)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %v, want %q", tt.entry, err, tt.err)
			}
			if err != nil && (strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "Injected")) {
				t.Errorf("%q: the error shows the value: %v", tt.entry, err)
			}
			continue
		}
		if err != nil || store != tt.store || name != tt.name || value != tt.value {
			t.Errorf("%q = %q %q %q %v, want %q %q %q", tt.entry, store, name, value, err, tt.store, tt.name, tt.value)
		}
	}
}

// TestMountConfigAuth: headers from $MODELSTOREFS_HEADERS, --header-file
// and --header reach the stores they name; a store's own replace those for
// every store; a client certificate loads from one or two PEM files.
func TestMountConfigAuth(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	headerFile := filepath.Join(dir, "headers")
	writeTestFile(t, headerFile, "# tokens\nteam=Authorization: Bearer team-token\n\nX-Site: lab\n")
	certFile, keyFile, both := writeTestCert(t, dir)
	t.Setenv(headersEnv, "X-From-Env: 1\nX-Site: also-sent")
	stores := []string{"--store", "team=http://127.0.0.1:8001/team,other=http://127.0.0.1:8002/"}

	cfg, err := configFrom(t, append([]string{t.TempDir(), "--header-file", headerFile, "--header", "Authorization: Bearer all, with comma",
		"--client-cert", certFile, "--client-key", keyFile}, stores...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]http.Header{
		"team":  {"Authorization": {"Bearer team-token"}, "X-From-Env": {"1"}, "X-Site": {"also-sent", "lab"}},
		"other": {"Authorization": {"Bearer all, with comma"}, "X-From-Env": {"1"}, "X-Site": {"also-sent", "lab"}},
	}
	for store, h := range want {
		if got := cfg.Auth.headerFor(store); !equalHeaders(got, h) {
			t.Errorf("%s: headers %v, want %v", store, got, h)
		}
	}
	if len(cfg.Auth.certificates()) != 1 {
		t.Errorf("no client certificate")
	}

	t.Setenv(headersEnv, "")
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--client-cert", both}, ""},
		{[]string{"--client-key", keyFile}, "--client-key needs --client-cert"},
		{[]string{"--client-cert", certFile}, "--client-cert"}, // no key in it
		{[]string{"--header", "nosuch=X-A: b"}, `--header for "nosuch": no store of that name (stores: team, other)`},
		{[]string{"--header-file", filepath.Join(dir, "missing")}, "--header-file"},
	} {
		_, err := configFrom(t, append(append([]string{t.TempDir()}, c.args...), stores...)...)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: %v, want %q", c.args, err, c.err)
		}
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\n") != strings.Join(b[k], "\n") {
			return false
		}
	}
	return true
}

// writeTestCert writes a self-signed client certificate and its key as
// PEM: apart, and together in one file.
func writeTestCert(t *testing.T, dir string) (cert, key, both string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	cert, key, both = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"), filepath.Join(dir, "client.pem")
	writeTestFile(t, cert, certPEM)
	writeTestFile(t, key, keyPEM)
	writeTestFile(t, both, certPEM+keyPEM)
	return cert, key, both
}
