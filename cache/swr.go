package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// owner runs the shared fetches of a Catalog on its own context, and lets
// Close stop them and wait for them.
type owner struct {
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	waiters atomic.Int64 // callers waiting for a shared fetch (tests wait on it)

	mu     sync.Mutex // protects closed, and wg.Add against Wait
	closed bool
}

func newOwner() *owner {
	ctx, cancel := context.WithCancel(context.Background())
	return &owner{ctx: ctx, cancel: cancel}
}

// ErrClosed is returned for fetches asked for after Close.
var ErrClosed = errors.New("catalog closed")

// track registers one unit of background work with close, unless closed.
func (o *owner) track() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.wg.Add(1)
	return true
}

// close stops all work and waits for it.
func (o *owner) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
}

// stopping reports whether the owner is closing: a failure then is ours,
// not the store's, and is not remembered.
func (o *owner) stopping() bool { return o.ctx.Err() != nil }

// swrConfig tells a swrCache how to fetch and keep its values.
type swrConfig[K comparable, V comparable] struct {
	Size        int // fresh and negative entries kept (0: no bound)
	TTL         time.Duration
	NegativeTTL time.Duration
	// Name is the key as a string, for the one fetch per key.
	Name func(K) string
	// Group is the key's group: Drop forgets a whole group (a store).
	Group func(K) int
	// Fetch gets a fresh value; prev is the last good one (ok false: none)
	// for conditional requests. An uncachedError is returned unwrapped,
	// neither remembered nor answered with the last good value.
	Fetch func(ctx context.Context, k K, prev V, ok bool) (V, error)
	// Stale is the last good value served after err (default: itself).
	Stale func(last V, err error) V
	// Fresh, when set, may refuse a value that is still within the TTL.
	Fresh func(V) bool
	// Load, when set, finds a last good value kept elsewhere (on disk),
	// asked once per key.
	Load func(K) (V, bool)
	// Kept is told of every value fetched; current is false when a Drop
	// of its group came during the fetch (then it was not kept).
	Kept func(k K, v, prev V, hadPrev, current bool)
}

// uncachedError is a fetch error that is not the value's own failure (the
// model is not listed, the listing failed): it is returned as it is, not
// remembered, and never answered with the last good value.
type uncachedError struct{ err error }

func (e uncachedError) Error() string { return e.err.Error() }
func (e uncachedError) Unwrap() error { return e.err }

// swrCache is a stale-while-error cache: fresh values (for TTL), failures
// (for NegativeTTL, during which the last good value is served without
// asking again), the last good value of every key (kept across expiry and
// Drop: served while fetches fail, and given to the next fetch for its
// validators), a generation per group (bumped by Drop, so that a fetch
// that started before is not kept), and one fetch per key at a time, run
// on the owner's context: a caller that gives up only stops waiting.
//
// All it knows of a key is one map entry (a store may have a hundred
// thousand models): the fresh value is the last good one while fresh.
type swrCache[K comparable, V comparable] struct {
	cfg     swrConfig[K, V]
	own     *owner
	fetches singleflight.Group

	mu       sync.Mutex // protects the fields below
	entries  map[K]swrEntry[V]
	nfresh   int // entries with a fresh value (expired ones included)
	gen      map[int]uint64
	inflight map[K]int // running fetches per key, for Drop
}

// swrEntry is what a swrCache knows of one key.
type swrEntry[V any] struct {
	v          V         // the last good value, when ok
	ok         bool      // there is one
	loaded     bool      // Load was asked (it is asked once)
	freshUntil time.Time // v is fresh until then (zero: not fresh)
	err        error     // the last failure, remembered until errUntil
	errUntil   time.Time
}

func newSWR[K comparable, V comparable](own *owner, cfg swrConfig[K, V]) *swrCache[K, V] {
	if cfg.Stale == nil {
		cfg.Stale = func(last V, _ error) V { return last }
	}
	return &swrCache[K, V]{
		cfg:      cfg,
		own:      own,
		entries:  map[K]swrEntry[V]{},
		gen:      map[int]uint64{},
		inflight: map[K]int{},
	}
}

// Get returns the fresh value of k, fetching it when there is none. While
// a failure is remembered, or when the fetch fails, the last good value
// is served (Stale); with none, the failure.
func (s *swrCache[K, V]) Get(ctx context.Context, k K) (V, error) {
	if v, ok := s.Fresh(k); ok {
		return v, nil
	}
	if err := s.failure(k); err != nil {
		if last, ok := s.Last(k); ok {
			return s.cfg.Stale(last, err), nil
		}
		var zero V
		return zero, err
	}
	return s.shared(ctx, k)
}

// Fresh returns the fresh value of k without fetching.
func (s *swrCache[K, V]) Fresh(k K) (V, bool) {
	s.mu.Lock()
	e := s.entries[k]
	s.mu.Unlock()
	var zero V
	if !e.ok || !time.Now().Before(e.freshUntil) || s.cfg.Fresh != nil && !s.cfg.Fresh(e.v) {
		return zero, false
	}
	return e.v, true
}

// failure returns the failure of k remembered now, if any.
func (s *swrCache[K, V]) failure(k K) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[k]; e.err != nil && time.Now().Before(e.errUntil) {
		return e.err
	}
	return nil
}

// Last returns the last good value of k, from memory or, once, from Load.
func (s *swrCache[K, V]) Last(k K) (V, bool) {
	s.mu.Lock()
	e := s.entries[k]
	s.mu.Unlock()
	if e.ok || e.loaded || s.cfg.Load == nil {
		return e.v, e.ok
	}
	v, ok := s.cfg.Load(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e = s.entries[k]
	if !e.ok && !e.loaded {
		e.v, e.ok = v, ok
	}
	e.loaded = true // none too: Load is asked once
	s.entries[k] = e
	return e.v, e.ok
}

// shared runs one fetch of k on the owner's context, whoever asks, and
// waits for its result or for ctx to end.
func (s *swrCache[K, V]) shared(ctx context.Context, k K) (V, error) {
	var zero V
	// Each waiter is tracked until the shared fetch it joined has ended,
	// so that Close waits for every fetch.
	if !s.own.track() {
		return zero, ErrClosed
	}
	ch := s.fetches.DoChan(s.cfg.Name(k), func() (any, error) { return s.run(k) })
	return s.wait(ctx, ch)
}

// wait waits for a shared fetch (which the caller tracked with the owner)
// or for ctx to end; the owner keeps tracking the fetch until it ends.
func (s *swrCache[K, V]) wait(ctx context.Context, ch <-chan singleflight.Result) (V, error) {
	var zero V
	s.own.waiters.Add(1)
	defer s.own.waiters.Add(-1)
	select {
	case <-ctx.Done():
		go func() {
			<-ch
			s.own.wg.Done()
		}()
		return zero, ctx.Err()
	case r := <-ch:
		s.own.wg.Done()
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(V), nil
	}
}

// run is one fetch of k, then keeps its result.
func (s *swrCache[K, V]) run(k K) (V, error) {
	// A fetch that ended between the caller's look and its join left a
	// fresh value: no second fetch.
	if v, ok := s.Fresh(k); ok {
		return v, nil
	}
	s.mu.Lock()
	gen := s.gen[s.cfg.Group(k)]
	s.inflight[k]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.inflight[k]--; s.inflight[k] == 0 {
			delete(s.inflight, k)
		}
		s.mu.Unlock()
	}()
	prev, hadPrev := s.Last(k)
	v, err := s.cfg.Fetch(s.own.ctx, k, prev, hadPrev)
	if ue, ok := err.(uncachedError); ok {
		var zero V
		return zero, ue.err
	}
	if err != nil {
		if !s.own.stopping() {
			s.fail(k, err)
		}
		if hadPrev {
			return s.cfg.Stale(prev, err), nil
		}
		var zero V
		return zero, err
	}
	current := s.put(k, v, gen)
	if s.cfg.Kept != nil {
		s.cfg.Kept(k, v, prev, hadPrev, current)
	}
	return v, nil
}

// put keeps v as the fresh and last good value of k, unless its group was
// dropped since gen; it reports whether it kept it.
func (s *swrCache[K, V]) put(k K, v V, gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen[s.cfg.Group(k)] != gen {
		return false
	}
	s.keepLocked(k, v)
	return true
}

// keepLocked makes v the fresh and last good value of k.
func (s *swrCache[K, V]) keepLocked(k K, v V) {
	e := s.entries[k]
	if e.freshUntil.IsZero() {
		s.nfresh++
	}
	e.v, e.ok, e.loaded, e.freshUntil = v, true, true, time.Now().Add(s.cfg.TTL)
	s.entries[k] = e
	if s.cfg.Size > 0 && s.nfresh > s.cfg.Size {
		s.shrinkLocked()
	}
}

// shrinkLocked brings the fresh values back within Size: the expired
// ones first, then any (a value that is not fresh stays the last good).
func (s *swrCache[K, V]) shrinkLocked() {
	now := time.Now()
	for _, expiredOnly := range []bool{true, false} {
		for k, e := range s.entries {
			if s.nfresh <= s.cfg.Size {
				return
			}
			if !e.freshUntil.IsZero() && (!expiredOnly || !now.Before(e.freshUntil)) {
				e.freshUntil = time.Time{}
				s.entries[k] = e
				s.nfresh--
			}
		}
	}
}

// fail remembers a failure of k for NegativeTTL.
func (s *swrCache[K, V]) fail(k K, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[k]
	e.err, e.errUntil = err, time.Now().Add(s.cfg.NegativeTTL)
	s.entries[k] = e
}

// unfreshLocked drops the fresh value of k (it stays the last good).
func (s *swrCache[K, V]) unfreshLocked(k K, e swrEntry[V]) {
	if !e.freshUntil.IsZero() {
		e.freshUntil = time.Time{}
		s.nfresh--
	}
	s.entries[k] = e
}

// Running reports whether a fetch of k is running.
func (s *swrCache[K, V]) Running(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[k] > 0
}

// Forget drops the fresh value of k, and lets the next Get start a new
// fetch instead of joining a running one. The last good value stays.
func (s *swrCache[K, V]) Forget(k K) {
	s.mu.Lock()
	if e, ok := s.entries[k]; ok {
		s.unfreshLocked(k, e)
	}
	s.mu.Unlock()
	s.fetches.Forget(s.cfg.Name(k))
}

// Drop forgets the fresh values and failures of a group (a store): the
// next Get of any of its keys fetches again, never joining a fetch that
// started before, and such a fetch's result is not kept. The last good
// values stay, as validators.
func (s *swrCache[K, V]) Drop(group int) {
	s.mu.Lock()
	s.gen[group]++
	var running []K
	for k := range s.inflight {
		if s.cfg.Group(k) == group {
			running = append(running, k)
		}
	}
	for k, e := range s.entries {
		if s.cfg.Group(k) == group {
			e.err = nil
			s.unfreshLocked(k, e)
		}
	}
	s.mu.Unlock()
	for _, k := range running {
		s.fetches.Forget(s.cfg.Name(k))
	}
}

// PruneLast forgets all that is known of the keys for which drop is true.
func (s *swrCache[K, V]) PruneLast(drop func(K) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.entries {
		if drop(k) {
			if !e.freshUntil.IsZero() {
				s.nfresh--
			}
			delete(s.entries, k)
		}
	}
}

// Refine replaces v, the fresh value of k, by what refine makes of it
// (one refine of a key at a time, on the owner's context, shared by
// whoever asks), unless k got another value meanwhile: then that one is
// returned.
func (s *swrCache[K, V]) Refine(ctx context.Context, k K, v V, refine func(context.Context, V) (V, error)) (V, error) {
	var zero V
	if !s.own.track() {
		return zero, ErrClosed
	}
	ch := s.fetches.DoChan("refine "+s.cfg.Name(k), func() (any, error) {
		r, err := refine(s.own.ctx, v)
		if err != nil {
			return zero, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch e := s.entries[k]; {
		case e.ok && e.v == v && !e.freshUntil.IsZero():
			s.keepLocked(k, r)
		case e.ok && !e.freshUntil.IsZero():
			return e.v, nil // another value came meanwhile
		}
		return r, nil
	})
	return s.wait(ctx, ch)
}
