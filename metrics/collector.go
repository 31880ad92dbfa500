package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/fs"
)

// collector reads the counters of /.stats and of each store's client at
// scrape time.
type collector struct {
	fsys   *fs.FS
	stores []*cache.Store
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

var (
	descRequests = desc("http_requests_total",
		"HTTP requests (attempts, retries included) sent to a store, by method and status class (2xx..5xx; error: no answer; canceled: given up by the reader).",
		"store", "method", "status")
	descReceived   = desc("http_received_bytes_total", "Body bytes received from a store.", "store")
	descUp         = desc("store_up", "1 if the store's last request got an HTTP answer below 500, 0 if it failed; absent before the first request.", "store")
	descLastOK     = desc("store_last_success_timestamp_seconds", "When the store last answered a request with a status below 500 (Unix time).", "store")
	descModels     = desc("store_models", "Models in the store's current listing; absent until it is listed.", "store")
	descStoreInfo  = desc("store_info", "The store's URL; always 1.", "store", "url")
	descServed     = desc("served_bytes_total", "Bytes of store files returned to readers: path=daemon through this process, path=passthrough read by the kernel from cache files (estimated: the file's size per passthrough open).", "path")
	descOpens      = desc("cache_opens_total", "Opens of store files by cache result: hit (complete in the cache), join (a download already running), miss (started a download), direct (no room: read from the store).", "result")
	descEvictions  = desc("cache_evictions_total", "Files removed from the cache to make room.")
	descEvicted    = desc("cache_evicted_bytes_total", "Bytes of the files removed from the cache to make room.")
	descCacheBytes = desc("cache_bytes", "Bytes in the cache: complete files plus room reserved for downloads.")
	descCacheMax   = desc("cache_limit_bytes", "The cache's bound (--cache-size).")
	descFiles      = desc("cache_files", "Complete files in the cache.")
	descInFlight   = desc("downloads_in_flight", "Downloads into the cache running now.")
	descInMemory   = desc("files_in_memory", "Files read from the store into memory now (no room in the cache).")
	descBuffers    = desc("buffer_bytes", "Memory held in download buffers and pages (bounded by --buffer-size).")
	descMismatch   = desc("digest_mismatches_total", "Files refused because their bytes did not match the digest the store states.")
	descErrors     = desc("errors_total", "Errors returned to readers, by errno.", "errno")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descReceived, descUp, descLastOK, descModels, descStoreInfo,
		descServed, descOpens, descEvictions, descEvicted, descCacheBytes, descCacheMax, descFiles, descInFlight,
		descInMemory, descBuffers, descMismatch, descErrors} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st := c.fsys.Stats()
	for i, s := range c.stores {
		name := s.Name
		for _, rc := range s.Remote.RequestCounts() {
			counter(descRequests, rc.Count, name, rc.Method, rc.Status)
		}
		counter(descReceived, s.Remote.BytesReceived(), name)
		if h := s.Remote.Health(); h.Known {
			up := 0.0
			if h.Up {
				up = 1
			}
			gauge(descUp, up, name)
			if !h.LastSuccess.IsZero() {
				gauge(descLastOK, float64(h.LastSuccess.UnixNano())/1e9, name)
			}
		}
		if i < len(st.Stores) && st.Stores[i].Name == name && st.Stores[i].Models >= 0 {
			gauge(descModels, float64(st.Stores[i].Models), name)
		}
		gauge(descStoreInfo, 1, name, s.Remote.Base().Redacted())
	}
	counter(descServed, st.BytesServed, "daemon")
	counter(descServed, st.BytesPassthrough, "passthrough")
	cs := st.Content
	counter(descOpens, cs.Hits, "hit")
	counter(descOpens, cs.Joins, "join")
	counter(descOpens, cs.Misses, "miss")
	counter(descOpens, cs.Direct, "direct")
	counter(descEvictions, cs.Evictions)
	counter(descEvicted, cs.EvictedBytes)
	gauge(descCacheBytes, float64(cs.UsedBytes))
	gauge(descCacheMax, float64(cs.MaxBytes))
	gauge(descFiles, float64(cs.Files))
	gauge(descInFlight, float64(cs.InFlight))
	gauge(descInMemory, float64(cs.InMemory))
	gauge(descBuffers, float64(cs.BufferBytes))
	counter(descMismatch, cs.DigestMismatches)
	for errno, n := range st.Errors {
		counter(descErrors, n, errno)
	}
}
