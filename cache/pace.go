package cache

import (
	"context"
	"sync"
	"time"
)

// pacer bounds how many models of one store are resolved at once, so
// that listing a large store does not hit a small web server with a
// burst: at most limit at a time, limit starting at max. When the store
// pushes back (429 or 503, seen by its client), the limit halves and no
// resolve starts before its Retry-After; each resolve that ends without
// new pushback raises it by one, back up to max.
type pacer struct {
	max      int
	pushback func() (int64, time.Time) // the store's pushback count and Retry-After

	mu      sync.Mutex // protects the fields below
	limit   int
	running int
	seen    int64         // pushbacks already acted on
	until   time.Time     // no start before
	wake    chan struct{} // closed when a slot may have freed
}

func newPacer(max int, pushback func() (int64, time.Time)) *pacer {
	return &pacer{max: max, limit: max, pushback: pushback, wake: make(chan struct{})}
}

// acquire waits for a slot, or for ctx to end.
func (p *pacer) acquire(ctx context.Context) error {
	for {
		p.mu.Lock()
		wait := time.Until(p.until)
		if wait <= 0 && p.running < p.limit {
			p.running++
			p.mu.Unlock()
			return nil
		}
		wake := p.wake
		p.mu.Unlock()
		t := time.NewTimer(max(wait, time.Hour)) // a slot frees before
		if wait > 0 {
			t.Reset(wait)
		}
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// release gives a slot back, and adapts the limit to what the store said
// meanwhile.
func (p *pacer) release() {
	n, after := p.pushback()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	switch {
	case n > p.seen:
		p.seen = n
		p.limit = max(1, p.limit/2)
		if after.After(p.until) {
			p.until = after
		}
	case p.limit < p.max:
		p.limit++
	}
	close(p.wake)
	p.wake = make(chan struct{})
}

// state returns the limit and the resolves running, for tests.
func (p *pacer) state() (limit, running int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit, p.running
}
