package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// scrape fetches a mount's metrics endpoint and parses it with the
// Prometheus client library's text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metricValue returns the value of the sample of family name whose labels
// include want (a counter, gauge, or a histogram's count); ok is false when
// there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetrics scrapes --metrics-addr during a real mount with a live and a
// dead store, and checks that the numbers follow what readers did.
func TestMetrics(t *testing.T) {
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/team/")
	dead := "http://127.0.0.1:" + itoa(itest.FreePort(t)) + "/gone"
	addr := fmt.Sprintf("127.0.0.1:%d", itest.FreePort(t))
	m := itest.StartMount(t, []string{s.Base, dead}, "--metrics-addr", addr, "--retry-window", "2s")
	live, gone := itest.StoreName(s.Base), itest.StoreName(dead)
	root := filepath.Join(m.Dir, live)

	const weights = "lenet/model.caffemodel"
	const size = 431080
	if got := itest.ReadFile(t, filepath.Join(root, weights)); len(got) != size {
		t.Fatalf("%s: %d bytes, want %d", weights, len(got), size)
	}
	itest.ReadFile(t, filepath.Join(root, weights)) // again: a cache hit (or the page cache)
	itest.ListDir(t, filepath.Join(m.Dir, gone))

	sc := scraped{t: t, fams: scrape(t, addr)}
	checkMetricsAfterReads(sc, s.Base, live, gone, size)

	// Conventions: one namespace, counters end in _total, no
	// hand-made units.
	checkMetricNames(t, sc.fams)

	// The store fails: a file not yet cached gives EIO within the retry
	// window, counted by errno, and the store is down.
	s.Down.Store(true)
	err := itest.WithTimeout(t, 60*time.Second, "read while down", func() error {
		_, err := os.ReadFile(filepath.Join(m.Dir, live, "inception-tf", "snapshot_5.ckpt.meta"))
		return err
	})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read while the store answers 503: %v, want EIO", err)
	}
	sc = scraped{t: t, fams: scrape(t, addr)}
	sc.atLeast("modelstorefs_errors_total", map[string]string{"errno": "EIO"}, 1)
	sc.atLeast("modelstorefs_http_requests_total", map[string]string{"store": live, "status": "5xx"}, 1)
	if v := sc.at("modelstorefs_store_up", map[string]string{"store": live}); v != 0 {
		t.Errorf("store_up of a store answering 503 = %v, want 0", v)
	}

	// The client library's linter (naming conventions, units, help).
	lintMetrics(t, sc.fams)

	// .stats stays, with the same counters.
	if st := itest.ReadFile(t, filepath.Join(m.Dir, ".stats")); !strings.Contains(string(st), `"bytes_passthrough_estimate"`) || !strings.Contains(string(st), `"evictions"`) {
		t.Errorf(".stats lacks the new counters:\n%s", st)
	}
}

// scraped is one scrape of the metrics endpoint, with the checks
// TestMetrics makes on it.
type scraped struct {
	t    *testing.T
	fams map[string]*dto.MetricFamily
}

// at returns the value of the metric name with labels, failing the test
// when the scrape has none.
func (sc scraped) at(name string, labels map[string]string) float64 {
	sc.t.Helper()
	v, ok := metricValue(sc.fams, name, labels)
	if !ok {
		sc.t.Errorf("no %s%v in the scrape", name, labels)
	}
	return v
}

// atLeast fails the test when the metric name with labels is below min.
func (sc scraped) atLeast(name string, labels map[string]string, min float64) {
	sc.t.Helper()
	if v := sc.at(name, labels); v < min {
		sc.t.Errorf("%s%v = %v, want at least %v", name, labels, v, min)
	}
}

// checkMetricsAfterReads checks the scrape taken after the weights (size
// bytes) were read twice from the live store and the dead store's folder
// was listed.
func checkMetricsAfterReads(sc scraped, base, live, gone string, size float64) {
	t := sc.t
	t.Helper()
	sc.atLeast("modelstorefs_http_requests_total", map[string]string{"store": live, "method": "GET", "status": "2xx"}, 2)
	sc.atLeast("modelstorefs_http_requests_total", map[string]string{"store": gone, "status": "error"}, 1)
	sc.atLeast("modelstorefs_http_received_bytes_total", map[string]string{"store": live}, size)
	if v := sc.at("modelstorefs_http_received_bytes_total", map[string]string{"store": gone}); v != 0 {
		t.Errorf("bytes received from the dead store = %v", v)
	}
	if v := sc.at("modelstorefs_store_up", map[string]string{"store": live}); v != 1 {
		t.Errorf("live store_up = %v, want 1", v)
	}
	if v := sc.at("modelstorefs_store_up", map[string]string{"store": gone}); v != 0 {
		t.Errorf("dead store_up = %v, want 0", v)
	}
	sc.atLeast("modelstorefs_store_models", map[string]string{"store": live}, 4)
	sc.atLeast("modelstorefs_store_info", map[string]string{"store": live, "url": base}, 1)
	sc.atLeast("modelstorefs_cache_opens_total", map[string]string{"result": "miss"}, 1)
	sc.atLeast("modelstorefs_cache_files", nil, 1)
	sc.atLeast("modelstorefs_cache_bytes", nil, size)
	sc.atLeast("modelstorefs_cache_limit_bytes", nil, size)
	sc.at("modelstorefs_downloads_in_flight", nil)
	sc.at("modelstorefs_cache_evictions_total", nil)
	sc.at("modelstorefs_cache_evicted_bytes_total", nil)
	sc.atLeast("modelstorefs_read_duration_seconds", nil, 1)
	daemon := sc.at("modelstorefs_served_bytes_total", map[string]string{"path": "daemon"})
	passthrough := sc.at("modelstorefs_served_bytes_total", map[string]string{"path": "passthrough"})
	if daemon+passthrough < size {
		t.Errorf("served bytes: %v through the daemon + %v passthrough, want at least %d", daemon, passthrough, int(size))
	}
}

// checkMetricNames checks the naming conventions: one namespace, counters
// end in _total, no hand-made units.
func checkMetricNames(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for name, f := range fams {
		if !strings.HasPrefix(name, "modelstorefs_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("metric %s outside the modelstorefs_ namespace", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		for _, unit := range []string{"milli", "micro", "_ms", "minutes", "kilo", "mega", "_kb", "_mb", "kib", "mib"} {
			if strings.HasPrefix(name, "modelstorefs_") && strings.Contains(name, unit) {
				t.Errorf("metric %s is not in base units (seconds, bytes)", name)
			}
		}
	}
}

// lintMetrics runs the client library's linter (naming conventions, units,
// help) over the modelstorefs_ families.
func lintMetrics(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	mfs := make([]*dto.MetricFamily, 0, len(fams))
	for name, f := range fams {
		if strings.HasPrefix(name, "modelstorefs_") {
			mfs = append(mfs, f)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsAddrBusy: a metrics address that cannot be listened on stops
// the mount with a message naming the flag, before anything is mounted.
func TestMetricsAddrBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, itest.Binary, "mount", "--cache-dir", t.TempDir(), "--metrics-addr", l.Addr().String(), dir)
	cmd.Env = append(os.Environ(), "DIGITS_MODEL_STORE_URL="+s.Base)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--metrics-addr") || !strings.Contains(string(out), "address already in use") {
		t.Errorf("mount with a busy --metrics-addr: %v\n%s", err, out)
	}
	if itest.IsMounted(dir) {
		t.Errorf("%s mounted although the metrics address was busy", dir)
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
}
