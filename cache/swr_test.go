package cache

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// swrKey is a test key: a group (a store) and a name.
type swrKey struct {
	group int
	name  string
}

// swrSource is a scripted fetcher: each fetch of a key takes the next
// answer of its script (the last one repeats), and may be held by a gate.
type swrSource struct {
	mu      sync.Mutex
	script  map[swrKey][]swrAnswer
	calls   map[swrKey]int
	prevs   []string // prev seen by each fetch ("" for none)
	loads   atomic.Int64
	onDisk  map[swrKey]string
	gate    chan struct{} // when set, every fetch waits for it
	arrived chan struct{}
}

type swrAnswer struct {
	v   string
	err error
}

func (s *swrSource) fetch(ctx context.Context, k swrKey, prev string, ok bool) (string, error) {
	s.mu.Lock()
	n := s.calls[k]
	s.calls[k]++
	if !ok {
		prev = ""
	}
	s.prevs = append(s.prevs, prev)
	gate := s.gate
	script := s.script[k]
	s.mu.Unlock()
	if gate != nil {
		s.arrived <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	a := script[min(n, len(script)-1)]
	return a.v, a.err
}

func (s *swrSource) count(k swrKey) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[k]
}

func newTestSWR(t *testing.T, src *swrSource, negTTL time.Duration) (*swrCache[swrKey, string], *owner) {
	t.Helper()
	own := newOwner()
	t.Cleanup(own.close)
	src.calls = map[swrKey]int{}
	cfg := swrConfig[swrKey, string]{
		Size: 100, TTL: time.Hour, NegativeTTL: negTTL,
		Name:  func(k swrKey) string { return strconv.Itoa(k.group) + "/" + k.name },
		Group: func(k swrKey) int { return k.group },
		Fetch: src.fetch,
		Stale: func(last string, err error) string { return last + " (stale: " + err.Error() + ")" },
		Fresh: func(v string) bool { return v != "expired" },
	}
	if src.onDisk != nil {
		cfg.Load = func(k swrKey) (string, bool) {
			src.loads.Add(1)
			v, ok := src.onDisk[k]
			return v, ok
		}
	}
	return newSWR(own, cfg), own
}

var errStore = errors.New("store down")

func TestSWRGet(t *testing.T) {
	a := swrKey{0, "a"}
	tests := []struct {
		name   string
		script []swrAnswer
		onDisk map[swrKey]string
		negTTL time.Duration
		gets   int      // Gets in a row
		want   []string // value (or "error: ...") of each Get
		calls  int      // fetches the store saw
		prevs  []string // prev given to each fetch
		loads  int64
	}{
		{name: "fresh value fetched once", script: []swrAnswer{{v: "v1"}}, gets: 3,
			want: []string{"v1", "v1", "v1"}, calls: 1, prevs: []string{""}},
		{name: "failure without last good", script: []swrAnswer{{err: errStore}}, negTTL: time.Hour, gets: 2,
			want: []string{"error: store down", "error: store down"}, calls: 1, prevs: []string{""}},
		{name: "failure remembered, last good from disk served stale", script: []swrAnswer{{err: errStore}},
			onDisk: map[swrKey]string{a: "kept"}, negTTL: time.Hour, gets: 2,
			want: []string{"kept (stale: store down)", "kept (stale: store down)"}, calls: 1, prevs: []string{"kept"}, loads: 1},
		{name: "failure forgotten after the negative TTL", script: []swrAnswer{{err: errStore}, {v: "back"}},
			negTTL: time.Millisecond, gets: 2,
			want: []string{"error: store down", "back"}, calls: 2, prevs: []string{"", ""}},
		{name: "refused by Fresh: fetched again with it as prev", script: []swrAnswer{{v: "expired"}, {v: "v2"}}, gets: 3,
			want: []string{"expired", "v2", "v2"}, calls: 2, prevs: []string{"", "expired"}},
		{name: "not on disk: Load asked once", script: []swrAnswer{{err: errStore}}, onDisk: map[swrKey]string{},
			negTTL: time.Millisecond, gets: 3,
			want: []string{"error: store down", "error: store down", "error: store down"}, calls: 3, prevs: []string{"", "", ""}, loads: 1},
		{name: "uncached error: neither remembered nor stale", script: []swrAnswer{{v: "expired"}, {err: uncachedError{errStore}}},
			negTTL: time.Hour, gets: 3,
			want: []string{"expired", "error: store down", "error: store down"}, calls: 3, prevs: []string{"", "expired", "expired"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &swrSource{script: map[swrKey][]swrAnswer{a: tc.script}, onDisk: tc.onDisk}
			negTTL := tc.negTTL
			if negTTL == 0 {
				negTTL = time.Hour
			}
			s, _ := newTestSWR(t, src, negTTL)
			for i := range tc.gets {
				if negTTL == time.Millisecond {
					time.Sleep(3 * time.Millisecond) // the failure expires
				}
				v, err := s.Get(testutil.Ctx(t), a)
				if err != nil {
					v = "error: " + err.Error()
				}
				if v != tc.want[i] {
					t.Errorf("Get %d = %q, want %q", i, v, tc.want[i])
				}
			}
			if n := src.count(a); n != tc.calls {
				t.Errorf("%d fetches, want %d", n, tc.calls)
			}
			if len(src.prevs) != len(tc.prevs) {
				t.Fatalf("prevs %q, want %q", src.prevs, tc.prevs)
			}
			for i := range tc.prevs {
				if src.prevs[i] != tc.prevs[i] {
					t.Errorf("fetch %d saw prev %q, want %q", i, src.prevs[i], tc.prevs[i])
				}
			}
			if n := src.loads.Load(); n != tc.loads {
				t.Errorf("Load asked %d times, want %d", n, tc.loads)
			}
		})
	}
}

// TestSWROneFetchPerKey: concurrent callers of one key share one fetch;
// a caller that gives up stops waiting, and the fetch still lands.
func TestSWROneFetchPerKey(t *testing.T) {
	a, b := swrKey{0, "a"}, swrKey{0, "b"}
	src := &swrSource{script: map[swrKey][]swrAnswer{a: {{v: "va"}}, b: {{v: "vb"}}},
		gate: make(chan struct{}), arrived: make(chan struct{}, 4)}
	s, own := newTestSWR(t, src, time.Hour)
	ctx := testutil.Ctx(t)

	const callers = 20
	var wg sync.WaitGroup
	got := make([]string, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = s.Get(ctx, a)
		}()
	}
	<-src.arrived
	testutil.WaitFor(t, "every caller to join", func() bool { return own.waiters.Load() == callers })
	impatient, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(impatient, a); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled caller got %v, want context.Canceled", err)
	}
	close(src.gate)
	wg.Wait()
	for i, v := range got {
		if v != "va" {
			t.Errorf("caller %d got %q", i, v)
		}
	}
	if n := src.count(a); n != 1 {
		t.Errorf("%d fetches of one key by %d callers, want 1", n, callers)
	}
	if v, err := s.Get(ctx, b); v != "vb" || err != nil {
		t.Errorf("another key: %q %v", v, err)
	}
}

// TestSWRDrop: a fetch that started before a Drop of its group is not
// kept, and a Get after the Drop does not join it; other groups keep
// their values; the last good value stays as prev.
func TestSWRDrop(t *testing.T) {
	a, other := swrKey{0, "a"}, swrKey{1, "a"}
	src := &swrSource{script: map[swrKey][]swrAnswer{a: {{v: "v1"}, {v: "old"}, {v: "new"}}, other: {{v: "o1"}}}}
	s, _ := newTestSWR(t, src, time.Hour)
	ctx := testutil.Ctx(t)
	for _, k := range []swrKey{a, other} {
		if _, err := s.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	s.Drop(0)
	if _, ok := s.Fresh(a); ok {
		t.Error("a is still fresh after Drop of its group")
	}
	if v, ok := s.Fresh(other); !ok || v != "o1" {
		t.Errorf("another group's value after Drop: %q %v", v, ok)
	}

	// The next fetch ("old") is held; a Drop comes while it runs.
	src.mu.Lock()
	src.gate, src.arrived = make(chan struct{}), make(chan struct{}, 4)
	src.mu.Unlock()
	done := make(chan string)
	go func() {
		v, _ := s.Get(ctx, a)
		done <- v
	}()
	<-src.arrived
	s.Drop(0)
	second := make(chan string)
	go func() {
		v, _ := s.Get(ctx, a)
		second <- v
	}()
	select { // a fetch of its own, not the held one
	case <-src.arrived:
	case <-ctx.Done():
		t.Fatal("the Get after the Drop joined the fetch from before it")
	}
	close(src.gate)
	if v := <-done; v != "old" {
		t.Errorf("the fetch from before the Drop answered its caller %q", v)
	}
	if v := <-second; v != "new" {
		t.Errorf("the Get after the Drop got %q, want a fetch of its own", v)
	}
	if v, ok := s.Fresh(a); !ok || v != "new" {
		t.Errorf("kept %q %v, want the fetch that started after the Drop", v, ok)
	}
	want := []string{"", "", "v1", "v1"} // a, other, then both fetches after the first Drop
	if !slices.Equal(src.prevs, want) {
		t.Errorf("prevs %q, want %q", src.prevs, want)
	}
}

// TestSWRForgetAndPrune: Forget drops the fresh value but keeps the last
// good one; PruneLast drops last good values.
func TestSWRForgetAndPrune(t *testing.T) {
	a, b := swrKey{0, "a"}, swrKey{0, "b"}
	src := &swrSource{script: map[swrKey][]swrAnswer{a: {{v: "a1"}, {err: errStore}}, b: {{v: "b1"}, {err: errStore}}}}
	s, _ := newTestSWR(t, src, time.Hour)
	ctx := testutil.Ctx(t)
	for _, k := range []swrKey{a, b} {
		if _, err := s.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
		s.Forget(k)
	}
	s.PruneLast(func(k swrKey) bool { return k == b })
	if v, err := s.Get(ctx, a); v != "a1 (stale: store down)" || err != nil {
		t.Errorf("forgotten a, store down: %q %v, want the last good value", v, err)
	}
	if v, err := s.Get(ctx, b); !errors.Is(err, errStore) {
		t.Errorf("pruned b, store down: %q %v, want the failure", v, err)
	}
}

// TestSWRSize: past Size fresh values, the oldest are no longer fresh
// (fetched again on Get) but stay the last good values.
func TestSWRSize(t *testing.T) {
	keys := []swrKey{{0, "a"}, {0, "b"}, {0, "c"}}
	src := &swrSource{script: map[swrKey][]swrAnswer{}}
	for _, k := range keys {
		src.script[k] = []swrAnswer{{v: k.name + "1"}, {err: errStore}}
	}
	s, _ := newTestSWR(t, src, time.Hour)
	s.cfg.Size = 2
	ctx := testutil.Ctx(t)
	for _, k := range keys {
		if _, err := s.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	fresh := 0
	for _, k := range keys {
		if _, ok := s.Fresh(k); ok {
			fresh++
		}
		if v, ok := s.Last(k); !ok || v != k.name+"1" {
			t.Errorf("%s: last good %q %v", k.name, v, ok)
		}
	}
	if fresh != 2 {
		t.Errorf("%d fresh values, want the bound, 2", fresh)
	}
	for _, k := range keys {
		if v, err := s.Get(ctx, k); err != nil || v != k.name+"1" && v != k.name+"1 (stale: store down)" {
			t.Errorf("%s: %q %v", k.name, v, err)
		}
	}
}
