package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/modelstorefs/modelstorefs/digits"
)

// Config tunes a Catalog. The zero value gives the defaults.
type Config struct {
	TTL          time.Duration // freshness of listings and metadata (default 24h, as DIGITS)
	NegativeTTL  time.Duration // how long a failure is remembered (default 10s)
	ListTimeout  time.Duration // bound on discovering one store (default 20s)
	ModelTimeout time.Duration // bound on resolving one model (default 60s)
	Prefetch     int           // models resolved in parallel after a listing (default 32)
	JobsDir      string        // job_dir written into status.pickle (DIGITS recomputes it)
	// MetaDir, when set, keeps the last good metadata on disk (metaStore).
	MetaDir string
	// Reserved names are used by the store directory itself; models with
	// these names are refused.
	Reserved []string
	Logger   *zap.Logger
}

// Defaults of Config, named once: the command's flags show them.
const (
	DefaultTTL     = 24 * time.Hour
	DefaultJobsDir = "/var/lib/digits/jobs"
)

func (c Config) withDefaults() Config {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = 10 * time.Second
	}
	// expirable LRUs tick at TTL/100 and panic on a zero interval.
	c.TTL, c.NegativeTTL = max(c.TTL, time.Millisecond), max(c.NegativeTTL, time.Millisecond)
	if c.ListTimeout <= 0 {
		c.ListTimeout = 20 * time.Second
	}
	if c.ModelTimeout <= 0 {
		c.ModelTimeout = 60 * time.Second
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 32
	}
	if c.JobsDir == "" {
		c.JobsDir = DefaultJobsDir
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// maxModels bounds the metadata LRU (entries, not bytes: a Model is small,
// its info.json capped by digits.MaxSmallFile).
const maxModels = 200_000

type modelKey struct {
	store int
	name  string
}

// Catalog caches the listings and model metadata of a fixed set of stores.
type Catalog struct {
	// Read only after NewCatalog.
	cfg     Config
	log     *zap.Logger
	meta    *metaStore
	stores  []*Store
	content Content
	ctx     context.Context // daemon context for shared fetches
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// Safe for concurrent use on their own.
	listings   *expirable.LRU[int, *StoreListing]
	listErrs   *expirable.LRU[int, error]
	models     *expirable.LRU[modelKey, *Model]
	modelErrs  *expirable.LRU[modelKey, error]
	fetches    singleflight.Group
	prefetches chan struct{} // semaphore shared by all prefetching
	waiters    atomic.Int64  // callers waiting for a shared fetch (tests wait on it)

	mu sync.Mutex // protects the fields below
	// Last good results, kept across expiry and refresh: served while a
	// store is failing, and used as validators for conditional requests.
	lastListing map[int]*StoreListing
	lastModel   map[modelKey]*Model
	refreshed   map[int]time.Time // key -1 is the whole mount
	closed      bool
	generation  map[int]uint64 // bumped by Refresh, so in-flight results of an older generation are not cached
	ids         jobIDs         // job id suffixes of the known listings

	inodeKeyOnce sync.Once
	inodeKey     []byte
}

// NewCatalog builds the catalog of stores (named, in mount order). content
// serves file bodies.
func NewCatalog(stores []*Store, content Content, cfg Config) *Catalog {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Catalog{
		cfg:         cfg,
		log:         cfg.Logger,
		meta:        &metaStore{dir: cfg.MetaDir, log: cfg.Logger, maxBytes: defaultMetaBytes, used: -1},
		stores:      stores,
		content:     content,
		ctx:         ctx,
		cancel:      cancel,
		listings:    expirable.NewLRU[int, *StoreListing](0, nil, cfg.TTL),
		listErrs:    expirable.NewLRU[int, error](0, nil, cfg.NegativeTTL),
		models:      expirable.NewLRU[modelKey, *Model](maxModels, nil, cfg.TTL),
		modelErrs:   expirable.NewLRU[modelKey, error](maxModels, nil, cfg.NegativeTTL),
		prefetches:  make(chan struct{}, cfg.Prefetch),
		lastListing: map[int]*StoreListing{},
		lastModel:   map[modelKey]*Model{},
		refreshed:   map[int]time.Time{},
		generation:  map[int]uint64{},
	}
	if n, ok := content.(ChangeNotifier); ok {
		n.OnChange(c.fileChanged)
	}
	now := time.Now()
	c.refreshed[-1] = now
	for i, s := range stores {
		s.idx = i
		c.refreshed[i] = now
	}
	return c
}

// Stores returns the configured stores in mount order.
func (c *Catalog) Stores() []*Store { return c.stores }

// Content returns the file body cache.
func (c *Catalog) Content() Content { return c.content }

// Close stops all fetches and waits for them.
func (c *Catalog) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// ErrClosed is returned for fetches asked for after Close.
var ErrClosed = errors.New("catalog closed")

// track registers one unit of background work with Close, unless closed.
func (c *Catalog) track() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// wait runs fn once per key on the catalog's context (shared by all
// callers) and waits for its result or for ctx to end.
func wait[T any](c *Catalog, ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	// Each waiter is tracked until the shared fetch it joined has ended,
	// so Close waits for every fetch.
	if !c.track() {
		return zero, ErrClosed
	}
	ch := c.fetches.DoChan(key, func() (any, error) { return fn(c.ctx) })
	c.waiters.Add(1)
	defer c.waiters.Add(-1)
	select {
	case <-ctx.Done():
		go func() {
			<-ch
			c.wg.Done()
		}()
		return zero, ctx.Err()
	case r := <-ch:
		c.wg.Done()
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	}
}

// Listing returns the store's model list, fetching it when not fresh. A
// failed fetch falls back to the last good listing (with Stale set).
func (c *Catalog) Listing(ctx context.Context, st *Store) (*StoreListing, error) {
	if l, ok := c.listings.Get(st.idx); ok {
		return l, nil
	}
	if err, ok := c.listErrs.Get(st.idx); ok {
		return c.staleListing(st, err)
	}
	return wait(c, ctx, "L"+strconv.Itoa(st.idx), func(ctx context.Context) (*StoreListing, error) {
		return c.fetchListing(ctx, st)
	})
}

// CachedListing returns the listing without fetching.
func (c *Catalog) CachedListing(st *Store) (*StoreListing, bool) {
	if l, ok := c.listings.Get(st.idx); ok {
		return l, true
	}
	return nil, false
}

// lastGoodListing returns the last good listing, from memory or, after a
// restart, from disk.
func (c *Catalog) lastGoodListing(st *Store) *StoreListing {
	c.mu.Lock()
	last, ok := c.lastListing[st.idx]
	c.mu.Unlock()
	if ok {
		return last
	}
	last = c.meta.loadListing(st)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.lastListing[st.idx]; ok {
		return cur
	}
	c.lastListing[st.idx] = last // nil too: look on disk once
	return last
}

// lastGoodModel is lastGoodListing for a model.
func (c *Catalog) lastGoodModel(st *Store, name string) *Model {
	key := modelKey{st.idx, name}
	c.mu.Lock()
	last, ok := c.lastModel[key]
	c.mu.Unlock()
	if ok {
		return last
	}
	last = c.meta.loadModel(st, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.lastModel[key]; ok {
		return cur
	}
	c.lastModel[key] = last
	return last
}

func (c *Catalog) staleListing(st *Store, err error) (*StoreListing, error) {
	last := c.lastGoodListing(st)
	if last == nil {
		return nil, err
	}
	stale := *last
	stale.Stale = err
	return &stale, nil
}

func (c *Catalog) gen(idx int) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generation[idx]
}

func (c *Catalog) fetchListing(ctx context.Context, st *Store) (*StoreListing, error) {
	gen := c.gen(st.idx)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ListTimeout)
	defer cancel()
	start := time.Now()
	rl, err := st.Remote.ListModels(ctx)
	if err != nil {
		if c.ctx.Err() == nil {
			c.listErrs.Add(st.idx, err)
		}
		l, serr := c.staleListing(st, err)
		if serr == nil {
			c.log.Warn("listing failed, serving the last good one", zap.String("store", st.Name), zap.Error(err))
			return l, nil
		}
		c.log.Error("listing failed", zap.String("store", st.Name), zap.Error(err))
		return nil, err
	}
	reserved := make(map[string]bool, len(c.cfg.Reserved))
	for _, r := range c.cfg.Reserved {
		reserved[r] = true
	}
	l := &StoreListing{Msg: rl.Msg, Fetched: time.Now()}
	for _, m := range rl.Models {
		if reserved[m] {
			rl.Rejected = append(rl.Rejected, fmt.Sprintf("%q: name is used by modelstorefs itself", m))
			continue
		}
		l.Models = append(l.Models, m)
	}
	sort.Strings(l.Models)
	if rl.Fallback != "" {
		c.log.Warn("master.json unusable, used the directory listing", zap.String("store", st.Name), zap.String("why", rl.Fallback))
	}
	if len(rl.Rejected) > 0 {
		// One line per listing: a store may refuse 100000 names.
		c.log.Warn("model names refused", zap.String("store", st.Name), zap.Int("count", len(rl.Rejected)),
			zap.Strings("examples", refusedExamples(rl.Rejected)))
	}
	c.log.Info("listed store", zap.String("store", st.Name), zap.String("source", rl.Source),
		zap.Int("models", len(l.Models)), zap.Duration("took", time.Since(start)))

	c.mu.Lock()
	current := c.generation[st.idx] == gen
	if current {
		c.listings.Add(st.idx, l)
		c.lastListing[st.idx] = l
		for k := range c.lastModel {
			if k.store == st.idx && !l.Has(k.name) {
				delete(c.lastModel, k)
			}
		}
	}
	c.mu.Unlock()
	if current {
		c.meta.saveListing(st, l)
	}
	c.startPrefetch(st, l)
	return l, nil
}

// refusedExamples returns the first few refusals of a listing, made
// harmless to log (they quote the store's names).
func refusedExamples(rejected []string) []string {
	const examples = 3
	out := make([]string, 0, min(len(rejected), examples))
	for _, r := range rejected[:min(len(rejected), examples)] {
		out = append(out, digits.CleanLine(r))
	}
	return out
}

// startPrefetch resolves every model of a fresh listing in the background,
// so that grep over all info.json files and models.tsv come from memory.
func (c *Catalog) startPrefetch(st *Store, l *StoreListing) {
	if !c.track() {
		return
	}
	go func() {
		defer c.wg.Done()
		var wg sync.WaitGroup
		for _, name := range l.Models {
			select {
			case c.prefetches <- struct{}{}:
			case <-c.ctx.Done():
				wg.Wait()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-c.prefetches }()
				// Errors are logged by resolveModel and cached briefly.
				_, _ = c.Model(c.ctx, st, name)
			}()
		}
		wg.Wait()
	}()
}

// Model returns a resolved model folder, fetching it when not fresh. The
// model must be in the store's listing, else the error wraps ErrNotFound.
func (c *Catalog) Model(ctx context.Context, st *Store, name string) (*Model, error) {
	key := modelKey{st.idx, name}
	if m, ok := c.CachedModel(st, name); ok {
		return m, nil
	}
	if err, ok := c.modelErrs.Get(key); ok {
		if last := c.lastGoodModel(st, name); last != nil {
			return last, nil // stale-while-error
		}
		return nil, err
	}
	return wait(c, ctx, modelFetchKey(st, name), func(ctx context.Context) (*Model, error) {
		return c.fetchModel(ctx, st, name)
	})
}

// CachedModel returns a fresh model without fetching. A model whose
// aux.json failed is fresh only for NegativeTTL: then aux.json is asked for
// again.
func (c *Catalog) CachedModel(st *Store, name string) (*Model, bool) {
	m, ok := c.models.Get(modelKey{st.idx, name})
	if ok && m.AuxUnknown && time.Since(m.Fetched) >= c.cfg.NegativeTTL {
		return nil, false
	}
	return m, ok
}

// ErrNotFound is returned for names that are not in a listing.
var ErrNotFound = errors.New("no such model")

func (c *Catalog) fetchModel(ctx context.Context, st *Store, name string) (*Model, error) {
	l, err := c.Listing(ctx, st)
	if err != nil {
		return nil, err
	}
	if !l.Has(name) {
		return nil, fmt.Errorf("%s/%s: %w", st.Name, name, ErrNotFound)
	}
	gen := c.gen(st.idx)
	key := modelKey{st.idx, name}
	prev := c.lastGoodModel(st, name)

	ctx, cancel := context.WithTimeout(ctx, c.cfg.ModelTimeout)
	defer cancel()
	m, err := c.resolveModel(ctx, st, name, prev)
	if err != nil {
		if c.ctx.Err() == nil {
			c.modelErrs.Add(key, err)
			c.log.Error("model metadata failed", zap.String("store", st.Name), zap.String("model", name), zap.Error(err))
		}
		if prev != nil {
			return prev, nil // stale-while-error
		}
		return nil, err
	}
	for _, p := range m.Problems {
		c.log.Debug("model problem", zap.String("store", st.Name), zap.String("model", name), zap.String("problem", p))
	}
	c.mu.Lock()
	current := c.generation[st.idx] == gen
	if current {
		c.models.Add(key, m)
		c.lastModel[key] = m
	}
	c.mu.Unlock()
	// A revalidated, unchanged model is already on disk.
	if current && (prev == nil || !sameModel(prev, m)) {
		c.meta.saveModel(st, m)
	}
	return m, nil
}

// Models resolves every model of the store (in parallel, bounded) and
// returns those that resolved, sorted by name.
func (c *Catalog) Models(ctx context.Context, st *Store) ([]*Model, error) {
	l, err := c.Listing(ctx, st)
	if err != nil {
		return nil, err
	}
	out := make([]*Model, len(l.Models))
	sem := make(chan struct{}, c.cfg.Prefetch)
	var wg sync.WaitGroup
	for i, name := range l.Models {
		if m, ok := c.CachedModel(st, name); ok {
			out[i] = m
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if m, err := c.Model(ctx, st, name); err == nil {
				out[i] = m
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res := out[:0]
	for _, m := range out {
		if m != nil {
			res = append(res, m)
		}
	}
	return res, nil
}

// Refresh drops the cached listings and metadata of one store (nil: all
// stores). The last good results are kept as validators, so unchanged
// files are revalidated with conditional requests instead of refetched.
func (c *Catalog) Refresh(st *Store) {
	now := time.Now()
	c.mu.Lock()
	for _, s := range c.stores {
		if st != nil && s != st {
			continue
		}
		c.generation[s.idx]++
		c.refreshed[s.idx] = now
		c.listings.Remove(s.idx)
		c.listErrs.Remove(s.idx)
	}
	if st == nil {
		c.refreshed[-1] = now
	}
	c.mu.Unlock()
	for _, k := range c.models.Keys() {
		if st == nil || k.store == st.idx {
			c.models.Remove(k)
		}
	}
	for _, k := range c.modelErrs.Keys() {
		if st == nil || k.store == st.idx {
			c.modelErrs.Remove(k)
		}
	}
	// A refresh must not join a fetch that started before it.
	for _, s := range c.stores {
		if st != nil && s != st {
			continue
		}
		c.fetches.Forget("L" + strconv.Itoa(s.idx))
		c.mu.Lock()
		last := c.lastListing[s.idx]
		c.mu.Unlock()
		if last != nil {
			for _, name := range last.Models {
				c.fetches.Forget(modelFetchKey(s, name))
			}
		}
	}
	c.log.Info("refresh", zap.String("scope", scopeName(st)))
}

func scopeName(st *Store) string {
	if st == nil {
		return "all stores"
	}
	return st.Name
}

// LastRefresh returns when the scope (nil: the whole mount) was last
// refreshed (or mounted).
func (c *Catalog) LastRefresh(st *Store) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == nil {
		return c.refreshed[-1]
	}
	return c.refreshed[st.idx]
}

func modelFetchKey(st *Store, name string) string {
	return "M" + strconv.Itoa(st.idx) + "/" + name
}

// fileChanged drops a model whose file turned out to have changed on the
// server, so the next lookup fetches fresh metadata (and a new inode).
func (c *Catalog) fileChanged(ref Ref) {
	c.log.Warn("file changed on the server; dropping its model's metadata",
		zap.String("store", ref.Store.Name), zap.String("model", ref.Model), zap.String("file", ref.Name))
	c.models.Remove(modelKey{ref.Store.idx, ref.Model})
	c.fetches.Forget(modelFetchKey(ref.Store, ref.Model))
}

// sameModel reports whether two resolutions of a model show the same folder.
func sameModel(a, b *Model) bool {
	return a.Importable == b.Importable && slices.Equal(a.Problems, b.Problems) &&
		slices.EqualFunc(a.Files, b.Files, func(x, y File) bool {
			return x.Name == y.Name && x.Kind == y.Kind && x.Target == y.Target && x.Remote == y.Remote &&
				x.Meta == y.Meta && x.ModTime.Equal(y.ModTime) && bytes.Equal(x.Data, y.Data)
		})
}
