// Package remote talks HTTP to one DIGITS Model Store: it discovers the
// store's model folders (master.json, or an HTML or JSON directory
// listing), learns what a folder holds from one answer where the server
// gives one (master.json "folders", a folder's listing: folder.go),
// fetches small files such as info.json, learns file sizes and validators,
// and downloads file bodies. It knows nothing about caching or FUSE.
//
// Every request runs with a context, is bounded in time (connect, response
// headers, stalled body) and is retried a bounded number of times with
// backoff on connection errors, 5xx and 429 answers. Errors name the URL and
// the HTTP status.
package remote
