package engine

// Making room in the buffer budget: memory nobody reads now, taken back
// from the write-behind queue, files read into memory and downloads that
// gave up their cache copy.

import (
	"cmp"
	"slices"
	"time"
)

// reclaim frees at least need bytes of memory nobody reads now, if there
// is that much: for a reader, buffers queued for writing and not yet
// written (newest first: the writer reaches them last), then pages of
// files read into memory and chunks of downloads that gave up their cache
// copy, least recently read first; for background work, only pages
// nobody read for readerIdle. It is called with no lock held.
func (s *StreamContent) reclaim(need int64, forReader bool) {
	var freed int64
	if forReader {
		freed = s.queue.reclaim(need)
	}
	if freed >= need {
		return
	}
	s.mu.Lock()
	files := make([]*memFile, 0, len(s.uncached))
	for _, m := range s.uncached {
		files = append(files, m)
	}
	dls := make([]*download, 0, len(s.downloads))
	for d := range s.downloads {
		dls = append(dls, d)
	}
	s.mu.Unlock()
	var olderThan int64
	if !forReader {
		olderThan = time.Now().Add(-readerIdle).UnixNano()
	}
	var pages []pageRef
	for _, m := range files {
		pages = append(pages, m.reclaimable(olderThan)...)
	}
	slices.SortFunc(pages, func(a, b pageRef) int { return cmp.Compare(a.used, b.used) })
	for _, p := range pages {
		if freed >= need {
			return
		}
		freed += p.drop()
	}
	if !forReader {
		return
	}
	for _, d := range dls {
		if freed >= need {
			return
		}
		freed += d.reclaimIdle(need - freed)
	}
}
