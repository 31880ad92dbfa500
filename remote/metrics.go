package remote

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// RequestCount is how many requests of one method ended in one status
// class: "2xx".."5xx", "error" (no HTTP answer: refused, reset, timed
// out) or "canceled" (given up by the caller).
type RequestCount struct {
	Method string
	Status string
	Count  int64
}

// Health is what the last finished request says about the store.
type Health struct {
	Known       bool      // a request has finished
	Up          bool      // it got an HTTP answer below 500
	LastSuccess time.Time // the last such answer; zero if none
}

// outcomes counts request results per method and status class, for
// metrics; the attempts themselves are counted in Store.requests.
type outcomes struct {
	mu     sync.Mutex
	counts map[[2]string]int64
	health Health
}

// noteOutcome records one attempt's result. A request the caller gave up
// says nothing about the store's health.
func (s *Store) noteOutcome(ctx context.Context, method string, resp *http.Response, err error) {
	class := "error"
	switch {
	case err == nil && resp != nil:
		class = strconv.Itoa(resp.StatusCode/100) + "xx"
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		class = "canceled"
	}
	o := &s.outcomes
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts == nil {
		o.counts = map[[2]string]int64{}
	}
	o.counts[[2]string{method, class}]++
	if class == "canceled" {
		return
	}
	o.health.Known = true
	o.health.Up = class != "error" && class != "5xx"
	if o.health.Up {
		o.health.LastSuccess = time.Now()
	}
}

// RequestCounts returns the requests sent so far by method and status
// class, sorted.
func (s *Store) RequestCounts() []RequestCount {
	o := &s.outcomes
	o.mu.Lock()
	out := make([]RequestCount, 0, len(o.counts))
	for k, n := range o.counts {
		out = append(out, RequestCount{Method: k[0], Status: k[1], Count: n})
	}
	o.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Method != out[j].Method {
			return out[i].Method < out[j].Method
		}
		return out[i].Status < out[j].Status
	})
	return out
}

// Health reports whether the store answered its last request.
func (s *Store) Health() Health {
	s.outcomes.mu.Lock()
	defer s.outcomes.mu.Unlock()
	return s.outcomes.health
}
