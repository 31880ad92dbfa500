package engine

// The per-store connection policy: how many streams each store runs now,
// and how many worked best last (its next files start there). A leaf.

import (
	"sync"

	"github.com/modelstorefs/modelstorefs/cache"
)

type storePolicy struct {
	max int // streams per store (StoreParallel)

	mu      sync.Mutex // protects the fields below
	running map[*cache.Store]int
	best    map[*cache.Store]int
}

func newStorePolicy(max int) *storePolicy {
	return &storePolicy{max: max, running: map[*cache.Store]int{}, best: map[*cache.Store]int{}}
}

// slot counts a stream of st; the returned function ends it.
func (p *storePolicy) slot(st *cache.Store) func() {
	p.mu.Lock()
	p.running[st]++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.running[st]--
		p.mu.Unlock()
	}
}

// room reports whether st may have one more stream.
func (p *storePolicy) room(st *cache.Store) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running[st] < p.max
}

func (p *storePolicy) remembered(st *cache.Store) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.best[st]
}

func (p *storePolicy) remember(st *cache.Store, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.best[st] = n
}
