package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/modelstorefs/modelstorefs/cache"
)

// xattrPrefix names modelstorefs's extended attributes (getfattr -d).
const xattrPrefix = "user.modelstore."

// xattrs are a remote file's attributes: where it comes from, its version,
// and how much of it is cached.
func (n *remoteFile) xattrs() map[string]string {
	ref := n.version()
	content := n.fsys.cat.Content()
	a := refXattrs(ref, content.Cached(ref))
	if sha, verified := content.Digest(ref); sha != "" {
		a["sha256"], a["verified"] = sha, verified
	}
	return a
}

// refXattrs are the attributes of a file fetched from the store; cached
// is how many of its bytes are held.
func refXattrs(ref cache.Ref, cached int64) map[string]string {
	a := map[string]string{
		"url":    ref.URL(),
		"store":  ref.Store.Name,
		"cached": strconv.FormatInt(cached, 10),
	}
	if ref.Meta.ETag != "" {
		a["etag"] = ref.Meta.ETag
	}
	if ref.Meta.LastModified != "" {
		a["last_modified"] = ref.Meta.LastModified
	}
	return a
}

// xattrs of info.json and aux.json: fetched whole and held in memory.
func (n *dataFile) xattrs() map[string]string {
	if n.file.Remote == "" {
		return nil
	}
	ref := cache.Ref{Store: n.st, Model: n.name, Name: n.file.Remote, Meta: n.file.Meta}
	data := n.file.Bytes()
	a := refXattrs(ref, int64(len(data)))
	sum := sha256.Sum256(data)
	a["sha256"], a["verified"] = hex.EncodeToString(sum[:]), "computed"
	return a
}

func (n *remoteFile) Getxattr(_ context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getXattr(n.xattrs(), attr, dest)
}

func (n *remoteFile) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return listXattr(n.xattrs(), dest)
}

func (n *dataFile) Getxattr(_ context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getXattr(n.xattrs(), attr, dest)
}

func (n *dataFile) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return listXattr(n.xattrs(), dest)
}

func getXattr(attrs map[string]string, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno := xattrNamespace(attr); errno != 0 {
		return 0, errno
	}
	if len(attr) <= len(xattrPrefix) || attr[:len(xattrPrefix)] != xattrPrefix {
		return 0, syscall.ENODATA
	}
	v, ok := attrs[attr[len(xattrPrefix):]]
	if !ok {
		return 0, syscall.ENODATA
	}
	return xattrReply([]byte(v), dest)
}

func listXattr(attrs map[string]string, dest []byte) (uint32, syscall.Errno) {
	var names []string
	for k := range attrs {
		names = append(names, xattrPrefix+k)
	}
	sort.Strings(names)
	var list []byte
	for _, name := range names {
		list = append(append(list, name...), 0)
	}
	return xattrReply(list, dest)
}

// xattrReply follows getxattr(2): an empty buffer asks for the size.
func xattrReply(v, dest []byte) (uint32, syscall.Errno) {
	if len(dest) == 0 {
		return uint32(len(v)), 0
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// xattrNamespace answers EOPNOTSUPP for names outside "user.": this file
// system keeps no security.*, system.* (ACLs) or trusted.* attributes. GNU ls
// -l asks every file for security.selinux and system.posix_acl_access; ENODATA
// makes it ask again for the next file (one GETXATTR round trip per file),
// while EOPNOTSUPP makes it remember the device as unsupported and stop.
// Never ENOSYS: the kernel would then stop sending any getxattr to the mount,
// user.modelstore.* included.
func xattrNamespace(attr string) syscall.Errno {
	if !strings.HasPrefix(attr, "user.") {
		return syscall.EOPNOTSUPP
	}
	return 0
}

// Getxattr of nodes without attributes of their own (directories, synthesized
// files): EOPNOTSUPP outside "user.", ENODATA inside.
func (*readOnly) Getxattr(_ context.Context, attr string, _ []byte) (uint32, syscall.Errno) {
	if errno := xattrNamespace(attr); errno != 0 {
		return 0, errno
	}
	return 0, syscall.ENODATA
}
