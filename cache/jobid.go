package cache

import (
	"strings"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/digits"
)

// jobIDs caches digits.JobIDSuffixes over the listings it was computed
// from; it is computed again when any of them changes.
type jobIDs struct {
	from     []*StoreListing
	suffixes map[digits.ModelRef]string
}

// jobIDSuffix returns the job id suffix of a model: unique among every
// model of every configured store whose listing is known (fresh, or the
// last good one, also kept in the cache directory across remounts), so two
// configured models never share a job id. A store never listed yet is not
// waited for: its models join the table when it is listed.
func (c *Catalog) jobIDSuffix(st *Store, name string) string {
	from := make([]*StoreListing, len(c.stores))
	for i, s := range c.stores {
		from[i] = c.knownListing(s)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	same := len(c.ids.from) == len(from)
	for i := 0; same && i < len(from); i++ {
		same = c.ids.from[i] == from[i]
	}
	if !same {
		var refs []digits.ModelRef
		for i, l := range from {
			if l == nil {
				continue
			}
			for _, m := range l.Models {
				refs = append(refs, digits.ModelRef{StoreURL: storeURL(c.stores[i]), Model: m})
			}
		}
		suffixes, redrawn := digits.JobIDSuffixes(refs)
		c.ids = jobIDs{from: from, suffixes: suffixes}
		for _, r := range redrawn {
			c.log.Info("job id collision between configured models: drew another id", zap.String("store_url", r.StoreURL),
				zap.String("model", r.Model), zap.String("suffix", suffixes[r]))
		}
	}
	ref := digits.ModelRef{StoreURL: storeURL(st), Model: name}
	if s, ok := c.ids.suffixes[ref]; ok {
		return s
	}
	// Not in a known listing (cannot happen for a listed model): its own
	// first choice, alone.
	s, _ := digits.JobIDSuffixes([]digits.ModelRef{ref})
	return s[ref]
}

// storeURL identifies a store in job ids: its base URL without credentials
// and without the trailing slash.
func storeURL(st *Store) string {
	return strings.TrimSuffix(st.Remote.Base().String(), "/")
}

// knownListing returns a store's listing as known now (fresh, or the
// last good one from memory or the cache directory), never fetching: a
// model of one store never waits on, or touches, another store.
func (c *Catalog) knownListing(st *Store) *StoreListing {
	if l, ok := c.listings.Fresh(st.idx); ok {
		return l
	}
	return c.lastGoodListing(st)
}
