package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"

	"github.com/modelstorefs/modelstorefs/remote"
)

// Ref names one version of a remote file.
type Ref struct {
	Store *Store
	Model string      // model folder on the store
	Name  string      // file name below it
	Meta  remote.Meta // the version: size and validators
}

// URL is the file's address.
func (r Ref) URL() string { return r.Store.Remote.URL(r.Model, r.Name) }

// Key identifies a version: URL plus validators plus size (a hex string,
// usable as a file name).
func (r Ref) Key() string {
	h := sha256.New()
	for _, s := range []string{r.URL(), r.Meta.ETag, r.Meta.LastModified, strconv.FormatInt(r.Meta.Size, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Content serves file bodies. It is the one seam between the filesystem and
// however bytes get from the store to the reader.
type Content interface {
	// Open returns a reader of the file's bytes, starting their download if
	// needed; reads wait for bytes not yet there, each at most until its
	// own ctx ends (the download goes on for the other readers).
	Open(ctx context.Context, ref Ref) (Handle, error)
	// Cached returns how many bytes of ref are in the cache now.
	Cached(ref Ref) int64
	// Digest returns the SHA-256 (hex) of ref's complete cache copy and
	// how it was verified: "store" (it matched the digest the store
	// states) or "computed" (the store states none); empty when unknown.
	Digest(ref Ref) (sha256, verified string)
	// Stats returns the cache's counters.
	Stats() ContentStats
	// Close stops all downloads and waits for them.
	Close() error
}

// ContentStats counts what the content cache did.
type ContentStats struct {
	Hits int64 `json:"hits"` // opens of a file complete in the cache
	// SharedHits: opens answered by a cached file of another name or store
	// with the same SHA-256 (among Hits too).
	SharedHits int64 `json:"shared_hits"`
	Joins      int64 `json:"joins"`      // opens that joined a running download
	Misses     int64 `json:"misses"`     // opens that started a download
	Direct     int64 `json:"direct"`     // opens served straight from the store (no room)
	InFlight   int   `json:"in_flight"`  // downloads running now
	InMemory   int   `json:"in_memory"`  // files read from the store into memory now (no room in the cache)
	Files      int   `json:"files"`      // complete files in the cache
	UsedBytes  int64 `json:"used_bytes"` // complete plus reserved
	MaxBytes   int64 `json:"max_bytes"`
	// Memory held for downloads' buffers and pages, and its bound.
	BufferBytes int64 `json:"buffer_bytes"`
	BufferMax   int64 `json:"buffer_max"`

	// Files refused because their bytes did not match the store's digest.
	DigestMismatches int64 `json:"digest_mismatches"`
	// Files removed to make room, and their bytes.
	Evictions    int64 `json:"evictions"`
	EvictedBytes int64 `json:"evicted_bytes"`
}

// ChangeNotifier is a Content that finds out when a file changed on the
// store (a validated download refused the new version); the catalog
// registers with it, to forget the model's stale metadata.
type ChangeNotifier interface {
	OnChange(func(Ref))
}

// MirrorUser is a Content that reads a file from another store when its
// own fails for good, given the files of the same digest (the catalog
// registers how to find them: Catalog.mirrors).
type MirrorUser interface {
	UseMirrors(func(Ref) []Ref)
}

// Handle reads one opened file.
type Handle interface {
	// Read answers a read of p at off in one call, waiting for bytes still
	// on their way at most until ctx ends: either the bytes (in Data, a
	// prefix of p) or, when they are in a file, that file's descriptor and
	// range (Fd >= 0), for the caller to splice without a copy through this
	// process. io.EOF when the file ends before p is full.
	Read(ctx context.Context, p []byte, off int64) (ReadResult, error)
	// ReadAt fills p from off unless the file ends first (then io.EOF), as
	// Read does but always copying into p.
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// Size is the file's length.
	Size() int64
	// Fd is an OS file descriptor holding the complete bytes, or -1 while
	// the file is incomplete.
	Fd() int
	Close() error
}

// ReadResult is the answer to Handle.Read: Data, or N bytes at Off of the
// file Fd (when Fd >= 0). When Done is set, Data lies in the engine's own
// buffer, which stays valid until Done is called (once, after the bytes
// have been sent).
type ReadResult struct {
	Data []byte
	Fd   int
	Off  int64
	N    int
	Done func()
}

// Errors of the layers below, named here so that users of the cache (the
// filesystem) match them without knowing HTTP: errors.Is(err, ErrDenied).
var (
	// ErrFileNotFound: the store has no such file (HTTP 404 or 410).
	ErrFileNotFound = remote.ErrNotFound
	// ErrDenied: the store refused access (HTTP 401 or 403).
	ErrDenied = remote.ErrDenied
)

// ErrUnsizedTooLarge: a file whose size the server does not tell grew past
// the room the content cache has; it was not kept.
var ErrUnsizedTooLarge = errors.New("the store gives no size for this file (no Content-Length, no Range) and it does not fit in the cache")
