package fs

import fusefs "github.com/hanwen/go-fuse/v2/fs"

// Every go-fuse interface each node and handle type is meant to implement,
// in one place (as gocryptfs keeps them): go-fuse finds methods by type
// assertion at run time, so a renamed method or a changed signature would
// otherwise silently stop being called.

// readOnly answers every write of the tree with EROFS (embedded by all
// nodes).
var (
	_ = (fusefs.NodeSetattrer)((*readOnly)(nil))
	_ = (fusefs.NodeSetxattrer)((*readOnly)(nil))
	_ = (fusefs.NodeRemovexattrer)((*readOnly)(nil))
	_ = (fusefs.NodeCreater)((*readOnly)(nil))
	_ = (fusefs.NodeMkdirer)((*readOnly)(nil))
	_ = (fusefs.NodeMknoder)((*readOnly)(nil))
	_ = (fusefs.NodeLinker)((*readOnly)(nil))
	_ = (fusefs.NodeSymlinker)((*readOnly)(nil))
	_ = (fusefs.NodeUnlinker)((*readOnly)(nil))
	_ = (fusefs.NodeRmdirer)((*readOnly)(nil))
	_ = (fusefs.NodeRenamer)((*readOnly)(nil))
)

// Directories: the root, a store, a model folder.
var (
	_ = (fusefs.NodeGetattrer)((*rootDir)(nil))
	_ = (fusefs.NodeLookuper)((*rootDir)(nil))
	_ = (fusefs.NodeReaddirer)((*rootDir)(nil))

	_ = (fusefs.NodeGetattrer)((*storeDir)(nil))
	_ = (fusefs.NodeLookuper)((*storeDir)(nil))
	_ = (fusefs.NodeReaddirer)((*storeDir)(nil))
	_ = (fusefs.NodeOpendirHandler)((*storeDir)(nil))

	_ = (fusefs.NodeGetattrer)((*modelDir)(nil))
	_ = (fusefs.NodeLookuper)((*modelDir)(nil))
	_ = (fusefs.NodeReaddirer)((*modelDir)(nil))
	_ = (fusefs.NodeOpendirHandler)((*modelDir)(nil))

	// A store or model folder opened for reading; READDIRPLUS looks up
	// through it.
	_ = (fusefs.FileReaddirenter)((*dirHandle)(nil))
	_ = (fusefs.FileSeekdirer)((*dirHandle)(nil))
	_ = (fusefs.FileLookuper)((*dirHandle)(nil))
	_ = (fusefs.FileReleasedirer)((*dirHandle)(nil))
)

// Files.
var (
	// A file of the store, read through the content cache.
	_ = (fusefs.NodeGetattrer)((*remoteFile)(nil))
	_ = (fusefs.NodeOpener)((*remoteFile)(nil))
	_ = (fusefs.NodeGetxattrer)((*remoteFile)(nil))
	_ = (fusefs.NodeListxattrer)((*remoteFile)(nil))
	_ = (fusefs.FileReader)((*contentHandle)(nil))
	_ = (fusefs.FileReleaser)((*contentHandle)(nil))
	_ = (fusefs.FilePassthroughFder)((*contentHandle)(nil))

	// A file held in memory (info.json, status.pickle, error.txt...).
	_ = (fusefs.NodeGetattrer)((*dataFile)(nil))
	_ = (fusefs.NodeOpener)((*dataFile)(nil))
	_ = (fusefs.NodeReader)((*dataFile)(nil))
	_ = (fusefs.NodeGetxattrer)((*dataFile)(nil))
	_ = (fusefs.NodeListxattrer)((*dataFile)(nil))

	_ = (fusefs.NodeGetattrer)((*symlink)(nil))
	_ = (fusefs.NodeReadlinker)((*symlink)(nil))

	// .refresh: written (or truncated) to refresh; its own Setattr
	// overrides readOnly's.
	_ = (fusefs.NodeGetattrer)((*refreshFile)(nil))
	_ = (fusefs.NodeOpener)((*refreshFile)(nil))
	_ = (fusefs.NodeSetattrer)((*refreshFile)(nil))

	// models.tsv and .stats: built at open.
	_ = (fusefs.NodeGetattrer)((*tableFile)(nil))
	_ = (fusefs.NodeOpener)((*tableFile)(nil))
	_ = (fusefs.NodeGetattrer)((*statsFile)(nil))
	_ = (fusefs.NodeOpener)((*statsFile)(nil))

	// The in-memory handle of .refresh, models.tsv and .stats.
	_ = (fusefs.FileReader)((*memHandle)(nil))
	_ = (fusefs.FileWriter)((*memHandle)(nil))
	_ = (fusefs.FileFlusher)((*memHandle)(nil))
	_ = (fusefs.FileReleaser)((*memHandle)(nil))
)
