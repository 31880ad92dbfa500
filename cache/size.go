package cache

import (
	"context"
	"fmt"
	"sort"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/remote"
)

// Listing a store and rendering models.tsv need info.json, aux.json and
// whether each file is there, not its size: a model resolves without a
// request per file where a listing says what its folder holds. Sizes a
// listing does not give (python's http.server names files only) are asked
// for when someone needs them: Sized, when the folder is opened or a file
// of it looked up, HEADs every file of unknown size at once and judges the
// model again (an empty weights file is settled then: until, models.tsv
// shows the verdict on presence alone). A folder opened has the next ones
// of the listing sized in the background (SizeAhead), as a walk (ls -R, a
// shell glob) opens them next. Bytes are served only for a version known
// by its validators: Open confirms a version known only by a listing's
// size with a HEAD first.

// Sized returns the model with the size of every store file known, asking
// the store about those its listing gave none for.
func (c *Catalog) Sized(ctx context.Context, st *Store, name string) (*Model, error) {
	m, err := c.Model(ctx, st, name)
	if err != nil || m.Sized() {
		return m, err
	}
	sized, err := c.models.Refine(ctx, modelKey{st.idx, name}, m, func(ctx context.Context, m *Model) (*Model, error) {
		sized, err := c.sizeModel(ctx, m)
		if err == nil {
			c.meta.saveModel(st, sized) // a restart while the store is down needs the sizes
		}
		return sized, err
	})
	if err == nil && !sameVerdict(m, sized) {
		c.changed(st, name) // status.pickle or error.txt; after the sized model is kept
	}
	return sized, err
}

// sizeAhead is how many folders after an opened one are sized ahead.
const sizeAhead = 32

// SizeAhead sizes, in the background and paced, the models that follow
// name in the store's listing and were resolved without sizes: a walk of
// the folders (ls -R, a shell glob over */info.json) opens them next, one
// at a time, and finds them sized.
func (c *Catalog) SizeAhead(st *Store, name string) {
	l, ok := c.CachedListing(st)
	if !ok {
		return
	}
	i := sort.SearchStrings(l.Models, name)
	for _, next := range l.Models[min(i+1, len(l.Models)):min(i+1+sizeAhead, len(l.Models))] {
		m, ok := c.CachedModel(st, next)
		if !ok || m.Sized() {
			continue
		}
		if _, busy := c.sizing.LoadOrStore(modelKey{st.idx, next}, true); busy || !c.track() {
			continue
		}
		go func() {
			defer c.wg.Done()
			defer c.sizing.Delete(modelKey{st.idx, next})
			if st.pace.acquire(c.ctx) != nil {
				return
			}
			defer st.pace.release()
			_, _ = c.Sized(c.ctx, st, next) // a failure is logged; the open asks again
		}()
	}
}

// sizeModel HEADs the files of m whose size is unknown and assembles the
// model again with their answers.
func (c *Catalog) sizeModel(ctx context.Context, m *Model) (*Model, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ModelTimeout)
	defer cancel()
	r := m.res.resolution()
	var ask []string
	for rn, meta := range r.metas {
		if meta.Size < 0 {
			ask = append(ask, rn)
		}
	}
	prev, _ := c.models.Last(modelKey{m.Store.idx, m.Name})
	if err := c.statEach(ctx, m.Store, m.Name, ask, prev, r.metas, r.in.Files); err != nil {
		c.log.Warn("model file sizes failed", zap.String("store", m.Store.Name), zap.String("model", m.Name), zap.Error(err))
		return nil, fmt.Errorf("%s/%s: sizes: %w", m.Store.Name, m.Name, err)
	}
	sized := c.assemble(m.Store, m.Name, r, nil)
	sized.Fetched = m.Fetched
	if sized.Importable != m.Importable {
		c.log.Info("model verdict settled by its file sizes", zap.String("store", m.Store.Name), zap.String("model", m.Name),
			zap.Bool("importable", sized.Importable), zap.Strings("problems", sized.Problems))
	}
	return sized, nil
}

// Open opens a store file for reading. A version known only by what a
// listing said (a size without validators: nginx's HTML listing; or no
// size) is confirmed with a HEAD first, so that the content cache keys and
// checks it by the validators the server sends: a file that changed since
// the listing is refused (and its model dropped) before any byte of it is
// served. It returns the Ref opened, with the version it was opened as.
func (c *Catalog) Open(ctx context.Context, ref Ref) (Handle, Ref, error) {
	ref, err := c.Confirm(ctx, ref)
	if err != nil {
		return nil, ref, err
	}
	h, err := c.content.Open(ctx, ref)
	return h, ref, err
}

// Confirm returns ref with the version the store's validators name: as it
// is when its Meta came from them, else asked with a HEAD. The content
// cache keys a file by that version, so whatever looks a file up in it
// (Open, prefetch, cache du) confirms it first.
func (c *Catalog) Confirm(ctx context.Context, ref Ref) (Ref, error) {
	if !ref.Meta.Hint && ref.Meta.Size >= 0 {
		return ref, nil
	}
	meta, err := ref.Store.Remote.Stat(ctx, nil, ref.Model, ref.Name)
	if err != nil {
		return ref, err
	}
	if ref.Meta.Size >= 0 && meta.Size != ref.Meta.Size {
		c.fileChanged(ref)
		return ref, fmt.Errorf("%s: %w (the listing said %d bytes, the store now has %d)", ref.URL(), remote.ErrChanged, ref.Meta.Size, meta.Size)
	}
	if meta.Digest.IsZero() {
		meta.Digest, meta.DigestFrom = ref.Meta.Digest, ref.Meta.DigestFrom // SHA256SUMS's, when the answer states none
	}
	ref.Meta = meta
	return ref, nil
}
