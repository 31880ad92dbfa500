// Package cache holds everything modelstorefs remembers about its stores'
// metadata: model lists and per-model metadata in memory, kept on disk
// across restarts. Both go through one stale-while-error cache (swr.go:
// fresh entries, remembered failures, the last good value, a generation
// per store and one shared fetch per key). File bodies are served through the Content interface
// (content.go), implemented by package engine.
//
// Fetches run on the Catalog's own context, never on a caller's: a FUSE
// request that is interrupted stops waiting, but the shared fetch goes on for
// the other waiters. Close stops and waits for every goroutine.
package cache
