// Package metrics serves a mount's counters to Prometheus (--metrics-addr).
// Most values are read at scrape time from the counters that /.stats shows
// (fs.Stats) and from each store's client, so the hot paths keep counting
// exactly as before; only read latency is observed as it happens.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/fs"
)

const ns = "modelstorefs"

// Metrics holds what is observed as it happens (read latency); the rest is
// collected from the filesystem and the stores at each scrape.
type Metrics struct {
	readSeconds prometheus.Histogram
}

// New returns metrics with nothing observed yet.
func New() *Metrics {
	return &Metrics{readSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "read_duration_seconds",
		Help: "Time to answer one read of a store file that came to the daemon (cache or network).",
		// 100us (page in the cache file) up to 26s (a store retried
		// within the retry window).
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})}
}

// ObserveRead records one read's duration; it is fs.Options.OnRead.
func (m *Metrics) ObserveRead(d time.Duration) { m.readSeconds.Observe(d.Seconds()) }

// Registry returns a registry with every modelstorefs metric of fsys and
// stores, plus the Go runtime's and the process's.
func (m *Metrics) Registry(fsys *fs.FS, stores []*cache.Store) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.readSeconds, &collector{fsys: fsys, stores: stores},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Server is the metrics HTTP endpoint; Close stops it.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// Serve listens on addr (HOST:PORT; port 0 picks one) and serves reg at
// /metrics until Close.
func Serve(addr string, reg *prometheus.Registry, log *zap.Logger) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(log), Registry: reg, Timeout: 10 * time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "modelstorefs: Prometheus metrics at /metrics")
	})
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: l.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", zap.Error(err))
		}
	}()
	return s, nil
}

// Addr is the address the endpoint listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the endpoint, letting a scrape in progress finish for a
// moment, and waits for it.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}
