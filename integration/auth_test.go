package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// TestHeaderThroughDaemon: a store that wants a bearer token gets it from
// --header STORE=..., on every kind of request (listing, metadata, ranged
// reads); a redirect to another origin does not carry it; and the token is
// in neither the daemon's argv (ps) nor its log, at debug level.
func TestHeaderThroughDaemon(t *testing.T) {
	const token = "Bearer s3cret-t0ken"
	src := itest.CopyStore(t)
	var mu sync.Mutex
	var refused, elsewhere []string // requests without the token; headers seen by the other origin
	files := http.FileServer(http.Dir(src))
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere = append(elsewhere, r.Header.Get("Authorization"))
		mu.Unlock()
		files.ServeHTTP(w, r)
	}))
	defer other.Close()
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != token {
			mu.Lock()
			refused = append(refused, r.Method+" "+r.URL.Path)
			mu.Unlock()
			http.Error(w, "token needed", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/lenet/labels.txt" { // moved elsewhere: another port is another origin
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer store.Close()

	mnt, cacheDir := t.TempDir(), t.TempDir()
	logFile := filepath.Join(cacheDir, "daemon.log")
	out, code := runExit(t, nil, "mount", mnt, "--daemon", "--cache-dir", cacheDir, "--log-file", logFile, "--log-level", "debug",
		"--store", "team="+store.URL, "--header", "team=Authorization: "+token)
	t.Cleanup(func() {
		if itest.IsMounted(mnt) {
			_, _ = runExit(t, nil, "unmount", mnt)
		}
	})
	if code != 0 {
		t.Fatalf("mount --daemon: exit %d\n%s", code, out)
	}
	m := regexp.MustCompile(`daemon pid (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("mount --daemon did not name the daemon's pid:\n%s", out)
	}
	lenet := filepath.Join(mnt, "team", "lenet")
	for mounted, remote := range map[string]string{
		"info.json": "info.json", "labels.txt": "labels.txt", "model.caffemodel": "snapshot_iter_28140.caffemodel",
	} {
		if out, err := itest.RunCmd(t, "cmp", filepath.Join(lenet, mounted), filepath.Join(src, "lenet", remote)); err != nil {
			t.Errorf("cmp %s: %v %s", mounted, err, out)
		}
	}
	mu.Lock()
	if len(refused) > 0 {
		t.Errorf("the store got requests without the token: %q", refused)
	}
	if len(elsewhere) == 0 || strings.Join(elsewhere, "") != "" {
		t.Errorf("the other origin got Authorization %q (want requests, without it)", elsewhere)
	}
	mu.Unlock()

	cmdline, err := os.ReadFile("/proc/" + m[1] + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), mnt) || strings.Contains(string(cmdline), "s3cret") {
		t.Errorf("daemon %s argv %q (%v): want the mountpoint and no token", m[1], strings.ReplaceAll(string(cmdline), "\x00", " "), err)
	}
	for _, p := range processesWith(mnt) {
		if strings.Contains(p, "s3cret") {
			t.Errorf("a process shows the token in its argv: %q", p)
		}
	}
	if out, code := runExit(t, nil, "unmount", mnt); code != 0 {
		t.Errorf("unmount: exit %d %s", code, out)
	}
	waitNoDaemon(t, mnt)
	if logs, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(logs), "\tmounted\t") || strings.Contains(string(logs), "s3cret") {
		t.Errorf("daemon log %s (want it without the token): %v\n%s", logFile, err, logs)
	}
}

// TestClientCertMount mounts a store behind a TLS server that requires a
// client certificate, with --ca-cert, --client-cert and --client-key.
func TestClientCertMount(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	ca, caKey := testutil.ClientCert(t, "test CA", nil, nil)
	client, clientKey := testutil.ClientCert(t, "client", ca, caKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(http.FileServer(http.Dir(src)))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	serverCA, certFile, keyFile := filepath.Join(dir, "server-ca.pem"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	writePEM(t, serverCA, "CERTIFICATE", srv.Certificate().Raw)
	writePEM(t, certFile, "CERTIFICATE", client.Raw)
	kder, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "PRIVATE KEY", kder)

	m := itest.StartMount(t, []string{"tls=" + srv.URL}, "--ca-cert", serverCA, "--client-cert", certFile, "--client-key", keyFile)
	for _, f := range []string{"info.json", "original.prototxt"} {
		if out, err := itest.RunCmd(t, "cmp", filepath.Join(m.Dir, "tls", "lenet", f), filepath.Join(src, "lenet", f)); err != nil {
			t.Errorf("cmp %s: %v %s", f, err, out)
		}
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
