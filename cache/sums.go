package cache

// A store's SHA256SUMS is asked for with every listing, beside
// master.json (conditionally once it was read), in the background:
// nothing waits for it but the layout of a model folder, for at most
// sumsGrace, while it is on its way. It gives the digest of each file it
// names whose answers state none (headers are stronger: they come with
// the bytes), and checks info.json and aux.json. A store without one
// (404) is asked again with the next listing.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// sumsGrace bounds how long a folder's layout waits for a SHA256SUMS on
// its way.
const sumsGrace = 5 * time.Second

// storeSums is what a store's SHA256SUMS said, and its fetch, if one
// runs.
type storeSums struct {
	mu       sync.Mutex // protects the fields below
	asked    bool       // a fetch was started
	cur      listedSums
	inflight chan struct{} // closed when the running fetch is done; nil: none
}

// listedSums is what one fetch learned of the store's SHA256SUMS.
type listedSums struct {
	sums *remote.Sums // nil: none
	meta remote.Meta  // its validators, to ask again conditionally
}

// startSums asks for the store's SHA256SUMS in the background, unless a
// fetch already runs.
func (c *Catalog) startSums(st *Store) {
	s := &st.sums
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil || !c.track() {
		return
	}
	done := make(chan struct{})
	s.inflight, s.asked = done, true
	last := s.cur
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ListTimeout)
		got := c.fetchSums(ctx, st, last)
		cancel()
		s.mu.Lock()
		s.cur = got
		s.mu.Unlock()
		if got.sums != nil && got.sums != last.sums {
			c.recheckSmall(st, got.sums) // before its waiters go on
		}
		s.mu.Lock()
		s.inflight = nil
		s.mu.Unlock()
		close(done)
	}()
}

// recheckSmall checks the info.json and aux.json of the store's models
// resolved before its SHA256SUMS came in (the background resolves do not
// wait for it) against it: a model whose file does not match is resolved
// again, and fails then.
func (c *Catalog) recheckSmall(st *Store, sums *remote.Sums) {
	l := c.lastGoodListing(st)
	if l == nil {
		return
	}
	for _, name := range l.Models {
		m, ok := c.CachedModel(st, name)
		if !ok || m.res == nil {
			continue
		}
		for _, f := range []struct {
			file string
			ans  digits.Answer
			meta remote.Meta
		}{{digits.InfoFile, m.res.info, m.res.infoMeta}, {digits.AuxFile, m.res.aux, m.res.auxMeta}} {
			d, listed := sums.Lookup(name + "/" + f.file)
			if f.ans.Found && f.meta.Digest.IsZero() && listed && !d.Check(f.ans.Data) {
				c.log.Warn("SHA256SUMS does not match a resolved model's file: resolving it again",
					zap.String("store", st.Name), zap.String("model", name), zap.String("file", f.file))
				c.models.Forget(modelKey{st.idx, name})
				c.changed(st, name)
				break
			}
		}
	}
}

// wasAsked reports whether the sums were ever asked for.
func (s *storeSums) wasAsked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// known returns the sums as last read (nil: none).
func (s *storeSums) known() *remote.Sums {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.sums
}

// sumsOf returns the store's sums as known now; with wait set, after the
// fetch on its way, if any, for at most sumsGrace.
func (c *Catalog) sumsOf(st *Store, wait bool) *remote.Sums {
	s := &st.sums
	s.mu.Lock()
	cur, inflight := s.cur, s.inflight
	s.mu.Unlock()
	if !wait || inflight == nil {
		return cur.sums
	}
	t := time.NewTimer(sumsGrace)
	defer t.Stop()
	select {
	case <-inflight:
	case <-t.C:
	case <-c.ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.sums
}

// fetchSums asks for the store's SHA256SUMS. A failure keeps the last
// good sums (a store that stops answering for its sums must not stop
// files being checked); a 404 says the store has none.
func (c *Catalog) fetchSums(ctx context.Context, st *Store, last listedSums) listedSums {
	var prev *remote.Meta
	if last.sums != nil {
		prev = &last.meta
	}
	sums, meta, err := st.Remote.FetchSums(ctx, prev)
	switch {
	case err == nil && sums.Len() == 0:
		// Not a SHA256SUMS (an index page served for every path).
		c.log.Debug("SHA256SUMS names no file", zap.String("store", st.Name), zap.Int("malformed_lines", sums.Bad))
		return listedSums{}
	case err == nil:
		if sums.Bad > 0 {
			c.log.Warn("SHA256SUMS: malformed lines skipped", zap.String("store", st.Name), zap.Int("lines", sums.Bad))
		}
		c.log.Debug("SHA256SUMS read", zap.String("store", st.Name), zap.Int("files", sums.Len()))
		return listedSums{sums, meta}
	case errors.Is(err, remote.ErrNotModified):
		return last
	case errors.Is(err, remote.ErrNotFound):
		return listedSums{}
	case c.stopping():
	case last.sums != nil:
		c.log.Warn("SHA256SUMS failed, using the last good one", zap.String("store", st.Name), zap.Error(err))
	default:
		c.log.Warn("SHA256SUMS failed: files are checked against the digests their answers state", zap.String("store", st.Name), zap.Error(err))
	}
	return last
}

// withSums gives the remote files of a model's folder the digest the
// store's SHA256SUMS names for them, where their answers stated none.
func (c *Catalog) withSums(st *Store, model string, files []File) {
	sums := c.sumsOf(st, true)
	if sums == nil {
		return
	}
	for i := range files {
		f := &files[i]
		if f.Kind != KindRemote || !f.Meta.Digest.IsZero() {
			continue
		}
		if d, ok := sums.Lookup(model + "/" + f.Remote); ok {
			f.Meta.Digest, f.Meta.DigestFrom = d, remote.SumsFile
		}
	}
}

// checkSmall checks a small file read whole (info.json, aux.json)
// against the store's SHA256SUMS as known now, when its answer stated no
// digest (one it states is checked by remote).
func (c *Catalog) checkSmall(st *Store, model, name string, data []byte, meta remote.Meta) error {
	if !meta.Digest.IsZero() {
		return nil
	}
	if d, ok := c.sumsOf(st, false).Lookup(model + "/" + name); ok && !d.Check(data) {
		return fmt.Errorf("%s/%s: %w (%s names %s)", model, name, remote.ErrDigestMismatch, remote.SumsFile, d)
	}
	return nil
}

// mirrors returns the files of the other stores with ref's digest (and
// size): those their SHA256SUMS name, and the same file of the same model
// where it is resolved with that digest. The byte engine reads from them
// when ref's store fails.
func (c *Catalog) mirrors(ref Ref) []Ref {
	d := ref.Meta.Digest
	if d.IsZero() {
		return nil
	}
	var out []Ref
	seen := map[string]bool{}
	add := func(r Ref) {
		if u := r.URL(); !seen[u] {
			seen[u] = true
			out = append(out, r)
		}
	}
	for _, st := range c.stores {
		if st == ref.Store {
			continue
		}
		if !st.sums.wasAsked() {
			c.startSums(st) // a store not listed yet: its sums are asked now
		}
		if m, ok := c.CachedModel(st, ref.Model); ok {
			for _, f := range m.Files() {
				if f.Kind == KindRemote && f.Remote == ref.Name && f.Meta.Digest == d && f.Meta.Size == ref.Meta.Size {
					add(Ref{Store: st, Model: ref.Model, Name: f.Remote, Meta: f.Meta})
				}
			}
		}
		for _, p := range c.sumsOf(st, true).Find(d) {
			model, name, ok := strings.Cut(p, "/")
			if ok && !strings.Contains(name, "/") {
				add(Ref{Store: st, Model: model, Name: name, Meta: remote.Meta{Size: ref.Meta.Size, Digest: d, DigestFrom: remote.SumsFile}})
			}
		}
	}
	return out
}
