package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// fakePushback is a store's pushback signal, set by the test.
type fakePushback struct {
	mu    sync.Mutex
	n     int64
	until time.Time
}

func (f *fakePushback) get() (int64, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.until
}

func (f *fakePushback) push(after time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if after > 0 {
		f.until = time.Now().Add(after)
	}
}

// TestPacerLimit: at most max resolves at once; a pushback halves the
// limit (down to 1), each clean resolve raises it by one, up to max.
func TestPacerLimit(t *testing.T) {
	tests := []struct {
		name      string
		pushbacks []int // pushbacks seen before each of the releases
		want      []int // the limit after each release
	}{
		{"no pushback", []int{0, 0, 0}, []int{8, 8, 8}},
		{"one pushback halves, clean resolves recover", []int{1, 0, 0, 0, 0}, []int{4, 5, 6, 7, 8}},
		{"repeated pushbacks down to one", []int{1, 1, 1, 1, 1, 0}, []int{4, 2, 1, 1, 1, 2}},
		{"several pushbacks between releases count once", []int{3, 0}, []int{4, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fp fakePushback
			p := newPacer(8, fp.get)
			ctx := testutil.Ctx(t)
			for i, n := range tc.pushbacks {
				if err := p.acquire(ctx); err != nil {
					t.Fatal(err)
				}
				for range n {
					fp.push(0)
				}
				p.release()
				if limit, running := p.state(); limit != tc.want[i] || running != 0 {
					t.Errorf("after release %d: limit %d running %d, want limit %d", i, limit, running, tc.want[i])
				}
			}
		})
	}
}

// TestPacerBounds: concurrent acquirers never exceed the limit, and a
// Retry-After holds every start until it has passed.
func TestPacerBounds(t *testing.T) {
	var fp fakePushback
	p := newPacer(3, fp.get)
	ctx := testutil.Ctx(t)
	var running, peak atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			n := running.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
			p.release()
		}()
	}
	wg.Wait()
	if peak.Load() != 3 {
		t.Errorf("at most %d at once, want 3", peak.Load())
	}

	// The store asks to wait 150 ms: nothing starts before.
	if err := p.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	fp.push(150 * time.Millisecond)
	start := time.Now()
	p.release()
	if err := p.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 140*time.Millisecond {
		t.Errorf("started %s after a Retry-After of 150 ms", waited)
	}
	p.release()

	// A waiter gives up when its context ends.
	p2 := newPacer(1, fp.get)
	if err := p2.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := p2.acquire(short); err != context.DeadlineExceeded {
		t.Errorf("acquire of a full pacer: %v, want the context's end", err)
	}
}
