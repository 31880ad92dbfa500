package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/digits"
)

// Config tunes a Catalog. The zero value gives the defaults.
type Config struct {
	TTL          time.Duration // freshness of listings and metadata (default 24h, as DIGITS)
	NegativeTTL  time.Duration // how long a failure is remembered (default 10s)
	ListTimeout  time.Duration // bound on discovering one store (default 20s)
	ModelTimeout time.Duration // bound on resolving one model (default 60s)
	Prefetch     int           // models of one store resolved at once (default 32; fewer while the store pushes back)
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
	*owner  // runs shared fetches; Close stops them

	// Safe for concurrent use on their own: the same stale-while-error
	// machine for listings (by store) and models.
	listings *swrCache[int, *StoreListing]
	models   *swrCache[modelKey, *Model]

	mu        sync.Mutex        // protects the fields below
	refreshed map[int]time.Time // key -1 is the whole mount
	ids       jobIDs            // job id suffixes of the known listings

	onChange atomic.Value // func(*Store, string), see OnModelChanged
	sizing   sync.Map     // modelKey -> true: sized ahead now
	refused  refusals     // files whose bytes were refused (refused.go)

	inodeKeyOnce sync.Once
	inodeKey     []byte
}

// NewCatalog builds the catalog of stores (named, in mount order). content
// serves file bodies.
func NewCatalog(stores []*Store, content Content, cfg Config) *Catalog {
	cfg = cfg.withDefaults()
	c := &Catalog{
		cfg:       cfg,
		log:       cfg.Logger,
		meta:      newMetaStore(cfg.MetaDir, cfg.Logger),
		stores:    stores,
		content:   content,
		owner:     newOwner(),
		refreshed: map[int]time.Time{},
	}
	c.listings = newSWR(c.owner, swrConfig[int, *StoreListing]{
		TTL: cfg.TTL, NegativeTTL: cfg.NegativeTTL,
		Name:  func(i int) string { return "L" + strconv.Itoa(i) },
		Group: func(i int) int { return i },
		Fetch: func(ctx context.Context, i int, prev *StoreListing, ok bool) (*StoreListing, error) {
			return c.fetchListing(ctx, c.stores[i], ok)
		},
		Stale: staleListing,
		Load: func(i int) (*StoreListing, bool) {
			l := c.meta.loadListing(c.stores[i])
			return l, l != nil
		},
		Kept: c.keptListing,
	})
	c.models = newSWR(c.owner, swrConfig[modelKey, *Model]{
		Size: maxModels, TTL: cfg.TTL, NegativeTTL: cfg.NegativeTTL,
		Name:  func(k modelKey) string { return "M" + strconv.Itoa(k.store) + "/" + k.name },
		Group: func(k modelKey) int { return k.store },
		Fetch: func(ctx context.Context, k modelKey, prev *Model, _ bool) (*Model, error) {
			return c.fetchModel(ctx, c.stores[k.store], k.name, prev)
		},
		// A model whose aux.json failed is fresh only for NegativeTTL:
		// then aux.json is asked for again.
		Fresh: func(m *Model) bool { return !m.AuxUnknown || time.Since(m.Fetched) < cfg.NegativeTTL },
		Load: func(k modelKey) (*Model, bool) {
			st := c.stores[k.store]
			r, fetched, ok := c.meta.loadModel(st, k.name)
			if !ok {
				return nil, false
			}
			m := c.assemble(st, k.name, r, nil)
			m.Fetched = fetched
			return m, true
		},
		Kept: c.keptModel,
	})
	if n, ok := content.(ChangeNotifier); ok {
		n.OnChange(c.fileChanged)
	}
	if u, ok := content.(MirrorUser); ok {
		u.UseMirrors(c.mirrors)
	}
	if n, ok := content.(RefusalNotifier); ok {
		n.OnRefused(c.fileRefused)
	}
	now := time.Now()
	c.refreshed[-1] = now
	for i, s := range stores {
		s.idx = i
		s.pace = newPacer(cfg.Prefetch, s.Remote.Pushback)
		c.refreshed[i] = now
	}
	return c
}

// Stores returns the configured stores in mount order.
func (c *Catalog) Stores() []*Store { return c.stores }

// Content returns the file body cache.
func (c *Catalog) Content() Content { return c.content }

// Close stops all fetches and waits for them, then writes what is still
// to be kept on disk.
func (c *Catalog) Close() {
	c.owner.close()
	c.meta.close()
}

// Listing returns the store's model list, fetching it when not fresh. A
// failed fetch falls back to the last good listing (with Stale set).
func (c *Catalog) Listing(ctx context.Context, st *Store) (*StoreListing, error) {
	return c.listings.Get(ctx, st.idx)
}

// CachedListing returns the listing without fetching.
func (c *Catalog) CachedListing(st *Store) (*StoreListing, bool) {
	return c.listings.Fresh(st.idx)
}

// lastGoodListing returns the last good listing, from memory or, after a
// restart, from disk.
func (c *Catalog) lastGoodListing(st *Store) *StoreListing {
	l, _ := c.listings.Last(st.idx)
	return l
}

func (c *Catalog) fetchListing(ctx context.Context, st *Store, hasLast bool) (*StoreListing, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ListTimeout)
	defer cancel()
	start := time.Now()
	c.startSums(st) // beside master.json: no round trip added, nothing waits for it
	rl, err := st.Remote.ListModels(ctx)
	if err != nil {
		if hasLast {
			c.log.Warn("listing failed, serving the last good one", zap.String("store", st.Name), zap.Error(err))
		} else {
			c.log.Error("listing failed", zap.String("store", st.Name), zap.Error(err))
		}
		return nil, err
	}
	reserved := make(map[string]bool, len(c.cfg.Reserved))
	for _, r := range c.cfg.Reserved {
		reserved[r] = true
	}
	l := &StoreListing{Msg: rl.Msg, Fetched: time.Now(), Folders: rl.Folders}
	l.Models = make([]string, 0, len(rl.Models))
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
	return l, nil
}

// staleListing is last marked stale by err: one copy while neither
// changes, so that what is made once per listing (a store directory's
// entries) is not made again at every lookup while the store fails.
func staleListing(last *StoreListing, err error) *StoreListing {
	if s := last.stale.Load(); s != nil && s.Stale == err {
		return s
	}
	s := &StoreListing{Msg: last.Msg, Models: last.Models, Folders: last.Folders, Fetched: last.Fetched, Stale: err}
	last.stale.Store(s)
	return s
}

// keptListing follows a fetched listing: the last good models it no
// longer names are forgotten, the listing is kept on disk, and every
// model is resolved in the background.
func (c *Catalog) keptListing(idx int, l, _ *StoreListing, _, current bool) {
	st := c.stores[idx]
	if current {
		c.models.PruneLast(func(k modelKey) bool { return k.store == idx && !l.Has(k.name) })
		c.meta.saveListing(st, l)
	}
	c.startPrefetch(st, l)
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
// so that grep over all info.json files and models.tsv come from memory;
// paced per store (pacer). The folder pages of master.json are read one
// ahead of the resolves, which ask for the folders in their order.
func (c *Catalog) startPrefetch(st *Store, l *StoreListing) {
	if !c.track() {
		return
	}
	go func() {
		defer c.wg.Done()
		var wg sync.WaitGroup
		ctx, stopReading := context.WithCancel(c.ctx)
		reading := make(chan struct{})
		go func() {
			defer close(reading)
			l.Folders.ReadAhead(ctx)
		}()
		defer func() {
			wg.Wait()
			stopReading() // every model resolved: no page is needed now
			<-reading
			c.meta.flush() // the models resolved, kept at once
		}()
		for _, name := range l.Models {
			if _, ok := c.CachedModel(st, name); ok {
				continue
			}
			if st.pace.acquire(c.ctx) != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer st.pace.release()
				// Errors are logged by fetchModel and cached briefly.
				_, _ = c.Model(c.ctx, st, name)
			}()
		}
	}()
}

// Model returns a resolved model folder, fetching it when not fresh. The
// model must be in the store's listing, else the error wraps ErrNotFound.
func (c *Catalog) Model(ctx context.Context, st *Store, name string) (*Model, error) {
	return c.models.Get(ctx, modelKey{st.idx, name})
}

// CachedModel returns a fresh model without fetching. A model whose
// aux.json failed is fresh only for NegativeTTL: then aux.json is asked for
// again.
func (c *Catalog) CachedModel(st *Store, name string) (*Model, bool) {
	return c.models.Fresh(modelKey{st.idx, name})
}

// ErrNotFound is returned for names that are not in a listing.
var ErrNotFound = errors.New("no such model")

func (c *Catalog) fetchModel(ctx context.Context, st *Store, name string, prev *Model) (*Model, error) {
	l, err := c.Listing(ctx, st)
	if err != nil {
		return nil, uncachedError{err}
	}
	if !l.Has(name) {
		return nil, uncachedError{fmt.Errorf("%s/%s: %w", st.Name, name, ErrNotFound)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ModelTimeout)
	defer cancel()
	known, _, err := l.Folders.Take(ctx, name)
	if err != nil {
		// Once per page: its folders are asked about one by one.
		c.log.Warn("folder page failed, asking its folders one by one", zap.String("store", st.Name), zap.Error(err))
	}
	m, err := c.resolveModel(ctx, st, name, prev, known)
	if err != nil {
		if !c.stopping() {
			c.log.Error("model metadata failed", zap.String("store", st.Name), zap.String("model", name), zap.Error(err))
		}
		return nil, err
	}
	for _, p := range m.Problems {
		c.log.Debug("model problem", zap.String("store", st.Name), zap.String("model", name), zap.String("problem", p))
	}
	return m, nil
}

// keptModel keeps a fetched model on disk, unless it is the one already
// there (a revalidated, unchanged model).
func (c *Catalog) keptModel(k modelKey, m, prev *Model, hadPrev, current bool) {
	if current && (!hadPrev || !sameModel(prev, m)) {
		c.meta.saveModel(c.stores[k.store], m)
	}
	if hadPrev && !sameModel(prev, m) {
		c.changed(c.stores[k.store], k.name)
	}
}

// Models resolves every model of the store (in parallel, paced as the
// background resolves are: a model already being resolved is waited for
// without a slot of its own) and returns those that resolved, sorted by
// name. A model whose listing gave no sizes is judged on presence: see
// SizedModels.
func (c *Catalog) Models(ctx context.Context, st *Store) ([]*Model, error) {
	return c.resolveAll(ctx, st, false)
}

// SizedModels is Models with every model sized (Sized): the verdict of
// check and import, for `modelstorefs ls`, at the cost of a HEAD per file
// a listing gave no size for.
func (c *Catalog) SizedModels(ctx context.Context, st *Store) ([]*Model, error) {
	return c.resolveAll(ctx, st, true)
}

func (c *Catalog) resolveAll(ctx context.Context, st *Store, sized bool) ([]*Model, error) {
	l, err := c.Listing(ctx, st)
	if err != nil {
		return nil, err
	}
	out := make([]*Model, len(l.Models))
	var wg sync.WaitGroup
	for i, name := range l.Models {
		if m, ok := c.CachedModel(st, name); ok && (!sized || m.Sized()) {
			out[i] = m
			continue
		}
		paced := !c.models.Running(modelKey{st.idx, name})
		if paced {
			if err := st.pace.acquire(ctx); err != nil {
				wg.Wait()
				return nil, err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if paced {
				defer st.pace.release()
			}
			get := c.Model
			if sized {
				get = c.Sized
			}
			if m, err := get(ctx, st, name); err == nil {
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
// A refresh never joins a fetch that started before it.
func (c *Catalog) Refresh(st *Store) {
	now := time.Now()
	c.mu.Lock()
	for _, s := range c.stores {
		if st == nil || s == st {
			c.refreshed[s.idx] = now
		}
	}
	if st == nil {
		c.refreshed[-1] = now
	}
	c.mu.Unlock()
	for _, s := range c.stores {
		if st == nil || s == st {
			c.listings.Drop(s.idx)
			c.models.Drop(s.idx)
			s.listings.Store(listingsUnknown) // asked again: a server may have changed
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

// fileChanged drops a model whose file turned out to have changed on the
// server, so the next lookup fetches fresh metadata (and a new inode).
func (c *Catalog) fileChanged(ref Ref) {
	c.log.Warn("file changed on the server; dropping its model's metadata",
		zap.String("store", ref.Store.Name), zap.String("model", ref.Model), zap.String("file", ref.Name))
	c.models.Forget(modelKey{ref.Store.idx, ref.Model})
	c.changed(ref.Store, ref.Model)
}

// OnModelChanged registers fn, told of every model folder that may show
// other names than it did: dropped because one of its files changed on
// the store, fetched again into another folder, or sized into another
// (an empty weights file). The filesystem has the kernel forget what it
// keeps of the folder. fn must not block.
func (c *Catalog) OnModelChanged(fn func(st *Store, model string)) { c.onChange.Store(fn) }

func (c *Catalog) changed(st *Store, model string) {
	if fn, _ := c.onChange.Load().(func(*Store, string)); fn != nil {
		fn(st, model)
	}
}

// sameVerdict reports whether two resolutions of a model have the same
// verdict, so show the same status.pickle and error.txt, or none.
func sameVerdict(a, b *Model) bool {
	return a.Importable == b.Importable && slices.Equal(a.Problems, b.Problems)
}

// sameModel reports whether two resolutions of a model show the same
// folder: the same answers, so the same verdict and files.
func sameModel(a, b *Model) bool {
	return sameVerdict(a, b) && a.res.same(b.res)
}
