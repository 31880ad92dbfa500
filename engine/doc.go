// Package engine is the byte engine: how one file's bytes get from the
// store to its readers and into the cache file. It implements
// cache.Content (StreamContent); the catalog of stores and models, and the
// Ref, Store and Handle types it is used through, are in package cache.
//
// The map: who owns what, and under which lock.
//
//	StreamContent (stream.go)   opens, stats; its mu guards:
//	  index (index.go)          entries, bytes against the bound, eviction,
//	                            the start and end (commit) of downloads
//	  uncached, unsized         files read into memory (memfile.go), unsized
//	                            downloads (unsized.go)
//	download (download.go)      one file into the cache: its lifecycle, the
//	                            cache copy, buffers; its mu guards:
//	  chunkTable (chunks.go)    chunk states; where a stream starts (pure)
//	  fetcher (streams.go)      workers, ranged and whole-file streams
//	  readers (reader.go)       reads, demand, handles
//	  verifier (verify.go)      the hash that gates the file's end; the
//	                            digest answers state (stated.go)
//	  mirrors (mirror.go)       other stores' copies, when the store fails
//	memFile (memfile.go)        a file the cache has no room for, in pages;
//	                            its mu guards its pages, fetches (memfetch.go)
//	                            and memHash (memverify.go)
//	leaves, each with a private lock or atomics:
//	  bufferPool (pool.go)      the buffer budget
//	  writeQueue (writeback.go) chunks waiting for the cache disk
//	  storePolicy (policy.go)   streams per store
//	  diskWatch (diskbusy.go)   whether the cache disk keeps up
//	controller.go, fetch.go     how many streams; the validated GET, retries
//	cachedir.go, handles.go     the cache directory; the Handles
//
// A read walks: fs -> streamHandle.Read -> readers.read (download.mu):
// bytes in a buffer (pinned, answered in place), in the cache file (its
// descriptor, spliced by the caller) or missing: readers.demand asks the
// fetcher for a stream (chunkTable.pick), whose worker takes memory from
// the bufferPool (or splices into the file), fills the chunk and wakes
// the reader; a read of the file's end also waits for the verifier.
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
//     (diskWatch.busyNow).
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
// 256 MiB by default), and no fetch is ever granted past it. A fetch a
// reader waits for first makes room: buffers queued for writing but not
// yet written are reclaimed (their chunks go back to missing and are
// fetched again later: the cache copy is finished later, never the
// reader), then memory nobody reads now, least recently read first; if
// there is still none, it waits until memory is freed or becomes
// reclaimable. Background fetches (read-ahead beyond the reader's window,
// completing the cache copy) only take room the budget has, or memory
// idle for readerIdle. If the cache file cannot be written (ENOSPC, EIO),
// the download gives up its cache copy and goes on serving its readers
// from memory, keeping a small window of chunks around the latest read.
//
// Files the cache has no room for (larger than it, or it is full of files
// in use) are read into memory (memFile): one per file version, shared by
// its handles, in 256 KiB pages. A random reader fetches the pages its
// read covers; a sequential one gets a read-ahead window that starts at
// its read size and doubles with each sequential read, up to 8 MiB,
// fetched in GETs of at least half the window. Readers copy pages as they
// arrive, so a reader waiting for a page holds none. Memory follows what
// is read, never the size a store claims.
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
// reader far from every stream gets a stream of its own at its offset,
// within the store's cap (a download's first stream always runs). A
// server that ignores Range gets one whole-file stream.
//
// Lock order: StreamContent.mu, then download.mu or memFile.mu, then the
// leaves (bufferPool, writeQueue, storePolicy), none of which is held
// while taking another lock. Reclaiming memory
// takes StreamContent.mu only to list the files, then each file's lock on
// its own: it runs with no lock held.
//
// No lock is held across network or disk I/O: an open of a cached file
// counts the open under the lock and opens the file after it; a download
// creates, sizes and reserves its cache file in its own goroutine;
// evicted files are unlinked after the lock is released (unlockAndReap),
// and go back into the index if the unlink fails; free space is read
// before the lock is taken, less what downloads started meanwhile will
// take. Readers copy from the cache file without download.mu.
package engine
