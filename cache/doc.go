// Package cache holds everything modelstorefs remembers about its stores:
// model lists and per-model metadata in memory (expirable LRUs, one shared
// fetch per key, stale-while-error), and file bodies on disk (Content).
//
// Fetches run on the Catalog's own context, never on a caller's: a FUSE
// request that is interrupted stops waiting, but the shared fetch goes on for
// the other waiters. Close stops and waits for every goroutine.
package cache
