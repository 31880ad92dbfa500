package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/engine"
	"github.com/modelstorefs/modelstorefs/fs"
	"github.com/modelstorefs/modelstorefs/remote"
)

// TestCollector: the collector turns a store's requests, the cache's
// state and the read histogram into the documented series, which pass
// the client library's linter.
func TestCollector(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/team/master.json" {
			w.Write([]byte(`{"msg": "unit", "children": ["a", "b"]}`))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	rs, err := remote.NewStore(srv.URL+"/team/", remote.Options{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	content, err := engine.NewStreamContent(engine.StreamConfig{Dir: t.TempDir(), MaxBytes: 1 << 30, MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer content.Close()
	stores := []*cache.Store{{Name: "team", Remote: rs}}
	cat := cache.NewCatalog(stores, content, cache.Config{Prefetch: 1})
	defer cat.Close()
	m := New()
	fsys := fs.New(fs.Options{Catalog: cat, OnRead: m.ObserveRead})
	defer fsys.Close()
	reg := m.Registry(fsys, stores)

	if _, err := cat.Listing(context.Background(), stores[0]); err != nil {
		t.Fatal(err)
	}
	m.ObserveRead(300 * time.Microsecond)
	m.ObserveRead(2 * time.Second)

	want := `
# HELP modelstorefs_cache_limit_bytes The cache's bound (--cache-size).
# TYPE modelstorefs_cache_limit_bytes gauge
modelstorefs_cache_limit_bytes 1.073741824e+09
# HELP modelstorefs_store_models Models in the store's current listing; absent until it is listed.
# TYPE modelstorefs_store_models gauge
modelstorefs_store_models{store="team"} 2
# HELP modelstorefs_store_up 1 if the store's last request got an HTTP answer below 500, 0 if it failed; absent before the first request.
# TYPE modelstorefs_store_up gauge
modelstorefs_store_up{store="team"} 1
# HELP modelstorefs_store_info The store's URL; always 1.
# TYPE modelstorefs_store_info gauge
modelstorefs_store_info{store="team",url="` + srv.URL + `/team/"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"modelstorefs_cache_limit_bytes", "modelstorefs_store_models", "modelstorefs_store_up", "modelstorefs_store_info"); err != nil {
		t.Error(err)
	}
	// master.json (the prefetch of a/info.json and b/info.json, 404,
	// may or may not have run yet).
	if got := requests(t, reg, "GET", "2xx"); got < 1 {
		t.Errorf("GET 2xx requests = %v, want at least 1 (master.json)", got)
	}
	if n := testutil.CollectAndCount(reg, "modelstorefs_read_duration_seconds"); n != 1 {
		t.Errorf("read histogram: %d series, want 1", n)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "modelstorefs_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// requests returns modelstorefs_http_requests_total for store "team".
func requests(t *testing.T, reg *prometheus.Registry, method, status string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "modelstorefs_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["store"] == "team" && l["method"] == method && l["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestServe: the endpoint serves a registry at /metrics, 404s elsewhere,
// and stops listening on Close.
func TestServe(t *testing.T) {
	m := New()
	m.ObserveRead(time.Millisecond)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.readSeconds)
	s, err := Serve("127.0.0.1:0", reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr().String()
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "modelstorefs_read_duration_seconds_count 1") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := get("/other"); code != http.StatusNotFound {
		t.Errorf("/other: %d, want 404", code)
	}
	s.Close()
	if _, err := c.Get(base + "/metrics"); err == nil {
		t.Error("still serving after Close")
	}
	again, err := Serve(s.Addr().String(), reg, zap.NewNop())
	if err != nil {
		t.Fatalf("address not released after Close: %v", err)
	}
	again.Close()
}
