package cache

// A store's SHA256SUMS is read with its listing, in parallel with
// master.json, and asked again (conditionally) with every new listing. It
// gives the digest of each file it names whose answers state none
// (headers are stronger: they come with the bytes); a store without one
// (404) is asked again only with the next listing.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/remote"
)

// sumsGrace is how long a listing waits for SHA256SUMS once master.json
// is in: a store slow to answer for its sums does not hold up its listing.
const sumsGrace = 5 * time.Second

// awaitSums waits for fetchSums, at most sumsGrace; then cancel stops it.
func awaitSums(sums <-chan listedSums, cancel context.CancelFunc) listedSums {
	defer cancel()
	t := time.NewTimer(sumsGrace)
	defer t.Stop()
	select {
	case got := <-sums:
		return got
	case <-t.C:
		cancel()
		return <-sums
	}
}

// listedSums is what a listing learned of the store's SHA256SUMS.
type listedSums struct {
	sums *remote.Sums
	meta remote.Meta
}

// fetchSums asks for the store's SHA256SUMS. A failure keeps the last
// good sums (a store that stops answering for its sums must not stop
// files being checked); a 404 says the store has none.
func (c *Catalog) fetchSums(ctx context.Context, st *Store) listedSums {
	last := c.lastGoodListing(st)
	var prev *remote.Meta
	if last != nil && last.Sums != nil {
		prev = &last.sumsMeta
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
		return listedSums{last.Sums, last.sumsMeta}
	case errors.Is(err, remote.ErrNotFound):
		return listedSums{}
	case last != nil && last.Sums != nil:
		c.log.Warn("SHA256SUMS failed, using the last good one", zap.String("store", st.Name), zap.Error(err))
		return listedSums{last.Sums, last.sumsMeta}
	default:
		c.log.Warn("SHA256SUMS failed: files are checked against the digests their answers state", zap.String("store", st.Name), zap.Error(err))
		return listedSums{}
	}
}

// withSums gives the remote files of a model's folder the digest the
// store's SHA256SUMS names for them, where their answers stated none.
func (c *Catalog) withSums(st *Store, model string, files []File) {
	l := c.lastGoodListing(st)
	if l == nil || l.Sums == nil {
		return
	}
	for i := range files {
		f := &files[i]
		if f.Kind != KindRemote || !f.Meta.Digest.IsZero() {
			continue
		}
		if d, ok := l.Sums.Lookup(model + "/" + f.Remote); ok {
			f.Meta.Digest = d
		}
	}
}

// checkSmall checks a small file read whole (info.json, aux.json)
// against the store's SHA256SUMS, when its answer stated no digest (one
// it states is checked by remote).
func (c *Catalog) checkSmall(st *Store, model, name string, data []byte, meta remote.Meta) error {
	l := c.lastGoodListing(st)
	if !meta.Digest.IsZero() || l == nil {
		return nil
	}
	if d, ok := l.Sums.Lookup(model + "/" + name); ok && !d.Check(data) {
		return fmt.Errorf("%s/%s: %w (%s names %s)", model, name, remote.ErrDigestMismatch, remote.SumsFile, d)
	}
	return nil
}
