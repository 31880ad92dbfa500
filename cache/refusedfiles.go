package cache

// Files the byte engine refused because their bytes did not match the
// store's digest are named in their model's error.txt (with both
// digests); once a later read verifies one, the next layout of its folder
// (a refresh, its TTL) leaves it out.

import (
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// RefusalNotifier is a Content that tells when it refused a file's bytes
// (err wraps remote.ErrDigestMismatch) and when it verified one (err nil).
type RefusalNotifier interface {
	OnRefused(func(ref Ref, err error))
}

// refusals are the refused files, by model; the catalog's own lock.
type refusals struct {
	mu sync.Mutex
	m  map[modelKey]map[string]string // model -> store file -> why
}

// fileRefused records (err set) or clears (err nil) a refusal; a new
// refusal has the model's folder laid out again.
func (c *Catalog) fileRefused(ref Ref, err error) {
	if err != nil && !errors.Is(err, remote.ErrDigestMismatch) {
		return
	}
	k := modelKey{ref.Store.idx, ref.Model}
	r := &c.refused
	r.mu.Lock()
	files := r.m[k]
	switch {
	case err != nil:
		if r.m == nil {
			r.m = map[modelKey]map[string]string{}
		}
		if files == nil {
			files = map[string]string{}
			r.m[k] = files
		}
		files[ref.Name] = err.Error()
	case files[ref.Name] == "":
		r.mu.Unlock()
		return // nothing was refused: the common case, every commit
	default:
		delete(files, ref.Name)
		if len(files) == 0 {
			delete(r.m, k)
		}
	}
	r.mu.Unlock()
	if err == nil {
		// The folder keeps its error.txt until it is laid out again (a
		// refresh, its TTL): a file vanishing from a folder being copied
		// would fail the copy.
		c.log.Info("file verified: no longer refused", zap.String("store", ref.Store.Name), zap.String("model", ref.Model), zap.String("file", ref.Name))
		return
	}
	// Resolved again (conditionally) and laid out with its error.txt: a
	// folder's layout is fixed for as long as its Model is.
	c.models.Forget(k)
	c.changed(ref.Store, ref.Model)
}

// refusedProblems are the model's refused files, as error.txt lines.
func (c *Catalog) refusedProblems(st *Store, model string) []*digits.Problem {
	r := &c.refused
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*digits.Problem
	for name, why := range r.m[modelKey{st.idx, model}] {
		out = append(out, &digits.Problem{Severity: digits.Warning, File: name,
			Msg: fmt.Sprintf("%s: refused when read, its bytes do not match the store's digest (%s); read again, it is fetched afresh", name, why)})
	}
	return out
}
