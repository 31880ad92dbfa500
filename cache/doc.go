// Package cache holds everything modelstorefs remembers about its stores'
// metadata: model lists and per-model metadata in memory, kept on disk
// across restarts (a listing file and one model log per store: persist.go,
// modellog.go). Both go through one stale-while-error cache (swr.go: fresh
// entries, remembered failures, the last good value, a generation per
// store and one shared fetch per key). File bodies are served through the
// Content interface (content.go), implemented by package engine.
//
// A model is resolved from info.json, aux.json and one answer about its
// folder (folder.go: master.json "folders", else the folder's listing,
// else a HEAD per file); sizes a listing does not give are asked for when
// a folder is opened (size.go), and the folder is laid out from the
// store's answers when first asked for (Model.Files). Background resolves
// are paced per store (pace.go). A store of a hundred thousand models is
// the size this is built for.
//
// Fetches run on the Catalog's own context, never on a caller's: a FUSE
// request that is interrupted stops waiting, but the shared fetch goes on for
// the other waiters. Close stops and waits for every goroutine.
package cache
