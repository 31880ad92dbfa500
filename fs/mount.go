package fs

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/splice"
	"go.uber.org/zap"
)

// MountOptions are the user's mount choices.
type MountOptions struct {
	AllowOther bool // let other users see the mount (needs user_allow_other when not root)
	// DirectIO opens files not yet complete in the cache with
	// FOPEN_DIRECT_IO (see remoteFile.Open), where the kernel still allows
	// them to be mmapped (FUSE_DIRECT_IO_ALLOW_MMAP, Linux 6.6+).
	DirectIO bool
	Debug    bool // log every FUSE operation
	// ReadOnly has the kernel itself keep the mount read-only (findmnt
	// shows "ro"). The kernel then refuses touch .refresh with EROFS
	// before the daemon sees it; FS.Refresh is the refresh instead.
	ReadOnly bool
	// Source is what mount tables (findmnt, /proc/mounts) show as the
	// mount's SOURCE: the store URLs, without credentials. Default
	// "modelstorefs".
	Source string
}

// Kernel cache lifetimes. Lookups are cheap (answered from memory), so the
// kernel keeps entries only briefly; .refresh also invalidates them at once.
var (
	entryTimeout = time.Second
	attrTimeout  = time.Second
)

// Mount mounts f on dir and returns the running server. Unless
// mo.ReadOnly, the mount is not marked "ro" for the kernel: read-only is
// enforced by the daemon (every write path gives EROFS), so that touch
// .refresh reaches it.
func Mount(dir string, f *FS, mo MountOptions) (*fuse.Server, error) {
	stdlog := zap.NewStdLog(f.log.Named("fuse"))
	opts := &fusefs.Options{
		EntryTimeout:   &entryTimeout,
		AttrTimeout:    &attrTimeout,
		RootStableAttr: &fusefs.StableAttr{Ino: 1},
		UID:            f.uid,
		GID:            f.gid,
		Logger:         stdlog,
		MountOptions: fuse.MountOptions{
			FsName:       fsName(mo.Source),
			Name:         "modelstorefs",
			AllowOther:   mo.AllowOther,
			DirectMount:  true, // mount(2) as root, fusermount otherwise
			MaxWrite:     maxRequest(splice.MaxPipeSize()),
			MaxReadAhead: 1 << 20,
			Debug:        mo.Debug,
			Logger:       stdlog,
			PanicHandler: f.panicked,
			// A symlink's inode number includes its target (fileVersion),
			// so the kernel may keep the target: no READLINK per ls -l.
			EnableSymlinkCaching: true,
			// Lets cold files (FOPEN_DIRECT_IO, see remoteFile.Open) be mmapped.
			ExtraCapabilities: fuse.CAP_DIRECT_IO_ALLOW_MMAP,
		},
	}
	if mo.AllowOther {
		// Let the kernel check the 0444/0555 modes for other users.
		opts.MountOptions.Options = append(opts.MountOptions.Options, "default_permissions")
	}
	if mo.ReadOnly {
		// MS_RDONLY marks both the mount and the superblock read-only
		// (mount(2) as root; go-fuse's flags otherwise are these two);
		// "ro" does it through fusermount3.
		opts.MountOptions.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_RDONLY
		opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	}
	server, err := fuse.NewServer(noOpendir{fusefs.NewNodeFS(f.Root(), opts)}, dir, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	f.coldDirect.Store(mo.DirectIO && server.KernelSettings().Flags64()&fuse.CAP_DIRECT_IO_ALLOW_MMAP != 0)
	return server, nil
}

// maxRequest is the largest READ the kernel is asked to send: 1 MiB, or
// the largest power of two whose reply (16-byte header, plus the page
// go-fuse keeps free) fits in a pipe, so that every reply from a cache
// file is spliced. A reply that does not fit is read into memory and
// copied instead (and go-fuse logs each one).
func maxRequest(pipeMax int) int {
	n := 1 << 20
	for n > 128<<10 && n+16+os.Getpagesize() > pipeMax {
		n /= 2
	}
	return n
}

// fsName makes source fit a mount table's SOURCE column: no blanks or
// control characters (go-fuse escapes commas for fusermount), bounded.
func fsName(source string) string {
	if source == "" {
		return "modelstorefs"
	}
	source = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, source)
	const maxLen = 512
	if len(source) > maxLen {
		source = source[:maxLen]
	}
	return source
}

// panicked turns a bug in a handler into EIO and one log line, counted
// with the other errnos (.stats, metrics).
func (f *FS) panicked(v any) fuse.Status {
	f.log.Error("BUG: FUSE handler panicked", zap.Any("panic", v), zap.String("errno", syscall.EIO.Error()), zap.Stack("stack"))
	f.countErrno(syscall.EIO)
	return fuse.EIO
}

// Unmount detaches the filesystem at dir; lazy reports whether it had to
// fall back to a lazy unmount (files still open).
func Unmount(server *fuse.Server, dir string) (lazy bool, err error) {
	if server != nil {
		if err = server.Unmount(); err == nil {
			return false, nil
		}
	}
	if lerr := LazyUnmount(dir); lerr != nil {
		if err == nil {
			err = lerr
		}
		return false, fmt.Errorf("unmount %s: %w (lazy unmount: %v)", dir, err, lerr)
	}
	return true, nil
}

// LazyUnmount detaches a (possibly dead) mount: umount2(MNT_DETACH) as
// root, else fusermount3/fusermount -u -z.
func LazyUnmount(dir string) error {
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err == nil {
		return nil
	}
	var lastErr error
	for _, tool := range []string{"fusermount3", "fusermount"} {
		out, err := exec.Command(tool, "-u", "-z", dir).CombinedOutput()
		if err == nil {
			return nil
		}
		lastErr = fmt.Errorf("%s: %w: %s", tool, err, out)
	}
	return lastErr
}
