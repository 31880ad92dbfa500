// Package engine is the byte engine: how one file's bytes get from the
// store to its readers and into the cache file. It implements
// cache.Content (StreamContent); the catalog of stores and models, and the
// Ref, Store and Handle types it is used through, are in package cache.
//
// Files: stream.go holds StreamContent (cache files on disk, their index,
// eviction, handles); download.go one file's download (chunk states,
// streams, readers); engine.go what downloads share (the buffer budget,
// the write-behind writer, the per-store connection policy).
//
// A file is cut into chunks (ChunkSize, 8 MiB by default). A chunk is
//
//	missing  -> fetching -> inMemory -> onDisk
//	   ^           |  \            |      ^
//	   |           |   +-----------|------+  (spliced straight into the file)
//	   +-----------+---------------+  (a failed fetch; a buffer reclaimed
//	                                   before the writer reached it)
//
// A chunk takes one of two paths, chosen when its fetch starts:
//
//   - Straight into the cache file, while the cache disk keeps up: the
//     body is spliced from the socket into the file a 1 MiB piece at a
//     time (no copy through this process), and readers splice each piece
//     from the file as soon as it has landed. Nothing waits for the disk
//     here: the pages are in the page cache, and the path is left as soon
//     as the system has so much dirty data that writes would be throttled
//     (StreamContent.diskBusy).
//   - Through memory, when the disk is busy: bytes arrive into a memory
//     buffer of the chunk and readers are answered from it a 256 KiB piece
//     at a time, in place (the FUSE reply is written from the buffer; a
//     buffer released while replies point into it is freed by the last
//     one); a full buffer goes to the write-behind queue, and one writer
//     per cache writes chunks into the cache file and marks them onDisk.
//     A reader never waits for the disk.
//
// When all chunks are on disk the file is synced and renamed into place
// (atomic commit: nothing partial is ever taken as complete).
//
// Memory. All buffers come from one daemon-wide budget (BufferBudget,
// 256 MiB by default). A fetch a reader waits for always gets a buffer:
// when the budget is spent, buffers queued for writing but not yet written
// are reclaimed first (their chunks go back to missing and are fetched
// again later: the cache copy is finished later, never the reader).
// Background fetches (read-ahead beyond the reader's window, completing the
// cache copy) only start when the budget has room. If the cache file cannot
// be written (ENOSPC, EIO, no room at all), the download gives up its cache
// copy and goes on serving its readers from memory, keeping a small window
// of chunks around the latest read.
//
// Connections (policy). A file starts with one sequential stream: a ranged
// GET from the first chunk wanted to the end of the run of missing chunks.
// A stream goes on chunk after chunk until it meets a chunk that is not
// missing. After the first 206 the controller (engine.go) measures the
// download's throughput over a window (100 ms, opened once a step's new
// streams have their first bytes; a clear gain is taken after half of it)
// and adds streams: four times as many after the first window and after a
// step whose streams each brought nearly a full share (streams capped each
// on its own, a long link), twice as many otherwise, for as long as each
// added stream brings at least half of what each stream brought before.
// Less means they contend for one bottleneck: on loopback a second stream
// adds 10-40% to the download but takes that CPU from the reader. The
// streams of a step that did not pay are stopped at their next chunk, and
// the count is remembered for the store, whose next files start there.
// A new stream starts in the largest missing run no stream is heading
// into, or takes the back half of a run one is heading into (a single
// chunk only while that stream is less than half-way through the chunk
// before it). Caps: Parallel streams per file, StoreParallel per store. A
// reader far from every stream gets a stream of its own at its offset. A
// server that ignores Range gets one whole-file stream.
//
// Lock order: StreamContent.mu, then download.mu, then the leaves
// (StreamContent.poolMu, StreamContent.wmu, StreamContent.polMu), none of
// which is held while taking another lock. No lock is held across network
// or disk I/O.
package engine
