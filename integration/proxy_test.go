package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// The proxy recipes of contrib/ (nginx as a caching reverse proxy, squid
// as a caching forward proxy) run here as they are, with real nginx and
// squid from Debian, in front of stores on 127.0.0.1.

// contribConfig reads a file of contrib/ and applies the replacements,
// each of which must match: a recipe that drifts from its test fails here.
func contribConfig(t *testing.T, rel string, replace ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "contrib", rel))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(conf, replace[i]) {
			t.Fatalf("contrib/%s no longer contains %q", rel, replace[i])
		}
		conf = strings.ReplaceAll(conf, replace[i], replace[i+1])
	}
	return conf
}

// nginxCache is contrib/nginx/modelstore-cache.conf running in front of an
// origin.
type nginxCache struct {
	*itest.Daemon
	url       string // the store as nodes see it
	accessLog string // one line per request: method uri status cache-status
}

// startNginx runs the contrib reverse-proxy config with real nginx on a
// loopback port, its cache and logs in a temporary directory. valid
// replaces the config's validity times (so that a test can see expired
// answers served stale).
func startNginx(t *testing.T, origin, valid string) *nginxCache {
	t.Helper()
	bin := itest.Tool(t, "nginx")
	dir := t.TempDir()
	port := itest.FreePort(t)
	site := contribConfig(t, "nginx/modelstore-cache.conf",
		"/var/cache/nginx/modelstore", filepath.Join(dir, "cache"),
		"max_size=500g", "max_size=4g",
		"listen 8080;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"proxy_pass http://store.example.org:80;", "proxy_pass "+strings.TrimSuffix(origin, "/")+";",
		"proxy_cache_valid 200 206 10m;", "proxy_cache_valid 200 206 "+valid+";",
		"proxy_cache_valid 404 1m;", "proxy_cache_valid 404 "+valid+";",
	)
	writeFile(t, filepath.Join(dir, "site.conf"), site)
	n := &nginxCache{url: fmt.Sprintf("http://127.0.0.1:%d/", port), accessLog: filepath.Join(dir, "access.log")}
	// The main config a distribution ships, reduced to what a test
	// needs: no daemon, everything below dir, workers as root (dir is
	// private to root).
	main := fmt.Sprintf(`user root;
worker_processes 2;
error_log stderr warn;
pid %[1]s/nginx.pid;
events { worker_connections 1024; }
http {
	log_format cache '$request_method $uri $status $upstream_cache_status $body_bytes_sent';
	access_log %[1]s/access.log cache;
	client_body_temp_path %[1]s/tmp_body;
	proxy_temp_path %[1]s/tmp_proxy;
	fastcgi_temp_path %[1]s/tmp_fastcgi;
	uwsgi_temp_path %[1]s/tmp_uwsgi;
	scgi_temp_path %[1]s/tmp_scgi;
	include %[1]s/site.conf;
}
`, dir)
	writeFile(t, filepath.Join(dir, "nginx.conf"), main)
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	n.Daemon = itest.StartDaemon(t, "nginx", fmt.Sprintf("127.0.0.1:%d", port),
		bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	return n
}

// cacheStatuses counts nginx's $upstream_cache_status over its access log.
func (n *nginxCache) cacheStatuses(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open(n.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 5 {
			counts[fields[3]]++
		}
	}
	return counts
}

// proxyGet GETs url and returns the status and nginx's X-Cache-Status.
func proxyGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Cache-Status")
}

// readAtOnce reads rel on every mount at the same time, checks each
// reader's sha256 and returns the time until all were done.
func readAtOnce(t *testing.T, mounts []*itest.Mount, rel, want string) time.Duration {
	t.Helper()
	start := time.Now()
	type result struct {
		node int
		sum  string
		took time.Duration
		err  error
	}
	results := make(chan result, len(mounts))
	for i, m := range mounts {
		go func() {
			t0 := time.Now()
			sum, err := sha256File(filepath.Join(m.Dir, rel))
			results <- result{i, sum, time.Since(t0), err}
		}()
	}
	timeout := time.After(5 * time.Minute)
	for range mounts {
		select {
		case r := <-results:
			if r.err != nil || r.sum != want {
				t.Errorf("node %d: sha256 %s, err %v; want %s", r.node, r.sum, r.err, want)
				continue
			}
			t.Logf("node %d read %s in %s", r.node, rel, r.took.Round(time.Millisecond))
		case <-timeout:
			t.Fatalf("readers still running after 5 minutes")
		}
	}
	return time.Since(start)
}

// behindProxy returns a modelstorefs that runs with HTTP_PROXY=proxyURL
// (and no NO_PROXY), as a node configured by its systemd unit would.
func behindProxy(t *testing.T, proxyURL string) string {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), "modelstorefs-behind-proxy")
	writeFile(t, wrapper, fmt.Sprintf("#!/bin/sh\nexport HTTP_PROXY=%s NO_PROXY= no_proxy= http_proxy=\nexec %s \"$@\"\n", proxyURL, itest.Binary))
	if err := os.Chmod(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper
}

// sha256File reads path whole and returns its sha256.
func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// manyNodesSize is the model the many-nodes tests read at once: 64 MiB,
// four of the recipe's 16 MiB nginx slices, so that a slice or the file
// fetched from the origin twice is well over their bound of 1.1x the file.
// (docs/many-machines.md reports runs with 256 MiB.)
const manyNodesSize = 64 << 20

// TestReverseProxyManyNodes: four nodes, each with its own cache, read the
// same model (manyNodesSize) at once through nginx; the origin sends it
// about once.
// Then the origin stops, and a fresh node (empty cache) still lists the
// store and reads the model, from answers nginx serves stale.
func TestReverseProxyManyNodes(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	const size = manyNodesSize
	const nodes = 4
	dir, sums := engStoreDir(t, map[string]int{"big": size})
	origin := engStartStore(t, dir)
	nginx := startNginx(t, origin.base, "1s")
	store := itest.StoreName(nginx.url)

	mounts := make([]*itest.Mount, nodes)
	for i := range mounts {
		mounts[i] = itest.StartMount(t, []string{nginx.url})
	}
	elapsed := readAtOnce(t, mounts, filepath.Join(store, "big", "model.caffemodel"), sums["big"])
	sent := origin.sent.Load()
	t.Logf("%d nodes x %d MiB in %s: origin sent %d bytes (%.3fx the file), nodes received %.0f MB in all; nginx cache statuses %v",
		nodes, size>>20, elapsed.Round(time.Millisecond), sent, float64(sent)/size, float64(nodes*size)/1e6, nginx.cacheStatuses(t))
	if limit := int64(size * 11 / 10); sent > limit {
		t.Errorf("origin sent %d bytes for %d nodes, want at most %d (1.1x the file)", sent, nodes, limit)
	}
	if t.Failed() {
		return
	}

	// An expired answer is revalidated with the origin's validators: the
	// origin answers 304 and nginx keeps its bytes.
	time.Sleep(1500 * time.Millisecond)
	if status, cache := proxyGet(t, nginx.url+"big/info.json"); status != http.StatusOK || cache != "REVALIDATED" {
		t.Errorf("expired info.json: %d %s, want 200 REVALIDATED", status, cache)
	}
	// A missing optional file's 404 is cached too.
	proxyGet(t, nginx.url+"alexnet-torch/license.txt")

	// The origin goes away, and every cached answer expires (1s here).
	origin.CloseClientConnections()
	origin.Close()
	time.Sleep(1500 * time.Millisecond)
	if _, err := http.Get(origin.URL); err == nil {
		t.Fatal("origin still answers")
	}
	fresh := itest.StartMount(t, []string{nginx.url})
	if got := itest.ListDir(t, filepath.Join(fresh.Dir, store)); !slices.Contains(got, "big") || slices.Contains(got, "error.txt") {
		t.Errorf("fresh node, origin down: store = %q, want the models and no error.txt", got)
	}
	if got := itest.ListDir(t, filepath.Join(fresh.Dir, store, "big")); !slices.Contains(got, "model.caffemodel") || slices.Contains(got, "error.txt") {
		t.Errorf("fresh node, origin down: big = %q", got)
	}
	var sum string
	err := itest.WithTimeout(t, 2*time.Minute, "read with the origin down", func() error {
		var err error
		sum, err = sha256File(filepath.Join(fresh.Dir, store, "big", "model.caffemodel"))
		return err
	})
	if err != nil || sum != sums["big"] {
		t.Fatalf("fresh node, origin down: sha256 %s, err %v; want %s", sum, err, sums["big"])
	}
	if status, cache := proxyGet(t, nginx.url+"alexnet-torch/license.txt"); status != http.StatusNotFound || cache != "STALE" {
		t.Errorf("missing license.txt with the origin down: %d %s, want the cached 404 (404 STALE)", status, cache)
	}
	statuses := nginx.cacheStatuses(t)
	if statuses["STALE"] == 0 {
		t.Errorf("nginx served nothing stale with the origin down: %v", statuses)
	}
	t.Logf("origin down: a fresh node listed the store and read %d MiB; nginx cache statuses now %v", size>>20, statuses)
}

// squidProxy is contrib/squid/modelstore-squid.conf running on loopback.
type squidProxy struct {
	*itest.Daemon
	url       string
	accessLog string
}

// startSquid runs the contrib forward-proxy config with real squid for
// the stores named host, which squid alone resolves to 127.0.0.1 (through
// a hosts file of its own).
func startSquid(t *testing.T, host string) *squidProxy {
	t.Helper()
	bin := itest.Tool(t, "squid")
	// Squid drops root for its own user, which must reach its files:
	// a directory of its own, not below the test's private temp dirs.
	dir, err := os.MkdirTemp("", "modelstorefs-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if u, err := user.Lookup("proxy"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	hostsFile := filepath.Join(dir, "hosts")
	writeFile(t, hostsFile, "127.0.0.1 "+host+"\n")
	port := itest.FreePort(t)
	conf := contribConfig(t, "squid/modelstore-squid.conf",
		"http_port 3128 ", fmt.Sprintf("http_port 127.0.0.1:%d ", port),
		"acl nodes src 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7", "acl nodes src 127.0.0.1/32",
		"acl stores dstdomain store.example.org", "acl stores dstdomain "+host,
		"/var/spool/squid-modelstore 500000", filepath.Join(dir, "cache")+" 2048",
		"coredump_dir /var/spool/squid-modelstore", "coredump_dir "+dir,
	)
	conf += fmt.Sprintf(`
# The test's own: files below %[1]s, names from the test's hosts file.
pid_filename %[1]s/squid.pid
access_log stdio:%[1]s/access.log
cache_log stdio:%[1]s/cache.log
cache_store_log none
shutdown_lifetime 1 second
hosts_file %[2]s
`, dir, hostsFile)
	confPath := filepath.Join(dir, "squid.conf")
	writeFile(t, confPath, conf)
	if out, err := exec.Command(bin, "-k", "parse", "-f", confPath).CombinedOutput(); err != nil {
		t.Fatalf("squid -k parse: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "-N", "-z", "-f", confPath).CombinedOutput(); err != nil {
		t.Fatalf("squid -z: %v\n%s", err, out)
	}
	s := &squidProxy{url: fmt.Sprintf("http://127.0.0.1:%d", port), accessLog: filepath.Join(dir, "access.log")}
	s.Daemon = itest.StartDaemon(t, "squid", fmt.Sprintf("127.0.0.1:%d", port), bin, "-N", "-f", confPath)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "cache.log")); err == nil {
				t.Logf("squid cache.log:\n%s", b)
			}
		}
	})
	return s
}

// viaStore is a store that records each request with its Via header.
type viaStore struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // "GET /path 200 via ..."
}

func startViaStore(t *testing.T, dir string) *viaStore {
	t.Helper()
	vs := &viaStore{}
	files := http.FileServer(http.Dir(dir))
	vs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		files.ServeHTTP(sw, r)
		vs.mu.Lock()
		vs.seen = append(vs.seen, fmt.Sprintf("%s %s %d via %s", r.Method, r.URL.Path, sw.code, r.Header.Get("Via")))
		vs.mu.Unlock()
	}))
	t.Cleanup(vs.Close)
	return vs
}

// statusWriter remembers the status a handler sent.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (vs *viaStore) requests() []string {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return slices.Clone(vs.seen)
}

// TestForwardProxy: with HTTP_PROXY set, a node reaches a store by a name
// only the proxy can resolve, so every byte it reads came through squid;
// a second node's read of the same model is answered from squid's cache,
// and a third one's too after the store has stopped.
func TestForwardProxy(t *testing.T) {
	t.Parallel() // its own store and squid; counts only its own store's requests
	// Go never proxies localhost or a loopback address, so the store is
	// named modelstore.test (a reserved name that resolves nowhere) and
	// squid alone maps it to 127.0.0.1, through its own hosts file.
	const host = "modelstore.test"
	if addrs, err := net.DefaultResolver.LookupHost(context.Background(), host); err == nil {
		t.Fatalf("%s resolves here (%v): the test could not tell proxied requests from direct ones", host, addrs)
	}
	src := itest.CopyStore(t)
	vs := startViaStore(t, src)
	proxy := startSquid(t, host)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(vs.URL, "http://"))
	storeURL := "http://" + host + ":" + port + "/"

	wrapper := behindProxy(t, proxy.url)
	const weights = "lenet/snapshot_iter_28140.caffemodel"
	want, err := os.ReadFile(filepath.Join(src, weights))
	if err != nil {
		t.Fatal(err)
	}
	for node := range 2 {
		m := itest.MountWith(t, wrapper, t.TempDir(), t.TempDir(), []string{storeURL})
		root := filepath.Join(m.Dir, itest.StoreName(storeURL))
		if got := itest.ListDir(t, root); !slices.Contains(got, "lenet") || slices.Contains(got, "error.txt") {
			t.Fatalf("node %d: store through the proxy = %q", node, got)
		}
		if got := itest.ReadFile(t, filepath.Join(root, "lenet", "model.caffemodel")); string(got) != string(want) {
			t.Fatalf("node %d: weights through the proxy differ (%d bytes, want %d)", node, len(got), len(want))
		}
	}

	seen := vs.requests()
	checkStoreSawSquidOnce(t, seen, weights)
	logData, err := os.ReadFile(proxy.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logData), "http://"+host+":"+port+"/"+weights) {
		t.Errorf("squid's access log does not show the weights:\n%s", logData)
	}
	t.Logf("two nodes through squid: the store saw %d requests, all via squid, and sent the weights once", len(seen))

	// The store goes away: a third node, with an empty cache, still
	// gets the listing and the model from squid.
	vs.CloseClientConnections()
	vs.Close()
	checkFreshNodeViaSquid(t, wrapper, storeURL, want)
	if logData, err = os.ReadFile(proxy.accessLog); err != nil {
		t.Fatal(err)
	}
	t.Logf("store down: a fresh node read the model through squid; squid's statuses over the test: %v", squidStatuses(logData))
	if t.Failed() {
		t.Logf("store's requests:\n%s\nsquid's access log:\n%s", strings.Join(seen, "\n"), logData)
	}
}

// checkStoreSawSquidOnce checks the requests the store saw: some, every
// one through squid, and the body of weights sent once (squid may
// revalidate it, with a 304).
func checkStoreSawSquidOnce(t *testing.T, seen []string, weights string) {
	t.Helper()
	if len(seen) == 0 {
		t.Fatal("the store saw no request")
	}
	for _, r := range seen {
		if !strings.Contains(r, "squid") {
			t.Errorf("request reached the store without going through squid: %s", r)
		}
	}
	// Squid may revalidate (a 304, no body), but sends the bytes once.
	var bodies []string
	for _, r := range seen {
		if strings.HasPrefix(r, "GET /"+weights+" ") && !strings.HasPrefix(r, "GET /"+weights+" 304 ") {
			bodies = append(bodies, r)
		}
	}
	if len(bodies) != 1 {
		t.Errorf("two nodes: the store sent the weights %d times, want once (then squid's cache): %q", len(bodies), bodies)
	}
}

// checkFreshNodeViaSquid mounts storeURL with a fresh cache through the
// proxy wrapper and checks that it lists lenet and reads its weights
// (want) from squid alone.
func checkFreshNodeViaSquid(t *testing.T, wrapper, storeURL string, want []byte) {
	t.Helper()
	m := itest.MountWith(t, wrapper, t.TempDir(), t.TempDir(), []string{storeURL})
	root := filepath.Join(m.Dir, itest.StoreName(storeURL))
	if got := itest.ListDir(t, root); !slices.Contains(got, "lenet") || slices.Contains(got, "error.txt") {
		t.Errorf("store down, fresh node through squid: store = %q", got)
	} else if got := itest.ReadFile(t, filepath.Join(root, "lenet", "model.caffemodel")); string(got) != string(want) {
		t.Errorf("store down, fresh node through squid: weights differ (%d bytes, want %d)", len(got), len(want))
	}
}

// squidStatuses counts the lines of squid's access log by their status
// (the fourth field, e.g. TCP_MISS/200).
func squidStatuses(logData []byte) map[string]int {
	statuses := map[string]int{}
	for _, line := range strings.Split(string(logData), "\n") {
		if f := strings.Fields(line); len(f) > 3 {
			statuses[f[3]]++
		}
	}
	return statuses
}

// TestForwardProxyManyNodes: four nodes read the same model
// (manyNodesSize) at once through squid; the origin sends it about once.
func TestForwardProxyManyNodes(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	const size = manyNodesSize
	const host = "modelstore.test"
	dir, sums := engStoreDir(t, map[string]int{"big": size})
	origin := engStartStore(t, dir)
	proxy := startSquid(t, host)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(origin.URL, "http://"))
	storeURL := "http://" + host + ":" + port + "/"
	wrapper := behindProxy(t, proxy.url)
	mounts := make([]*itest.Mount, 4)
	for i := range mounts {
		mounts[i] = itest.MountWith(t, wrapper, t.TempDir(), t.TempDir(), []string{storeURL})
	}
	elapsed := readAtOnce(t, mounts, filepath.Join(itest.StoreName(storeURL), "big", "model.caffemodel"), sums["big"])
	sent := origin.sent.Load()
	t.Logf("%d nodes x %d MiB through squid in %s: origin sent %d bytes (%.3fx the file)",
		len(mounts), size>>20, elapsed.Round(time.Millisecond), sent, float64(sent)/size)
	if limit := int64(size * 11 / 10); sent > limit {
		t.Errorf("origin sent %d bytes for %d nodes, want at most %d (1.1x the file)", sent, len(mounts), limit)
	}
}
