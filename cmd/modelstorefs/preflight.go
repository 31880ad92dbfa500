package main

// Checks before mounting that say what to do, instead of what go-fuse or
// the kernel would say later.

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/fs"
)

// checkMountpoint makes sure dir is a directory we can mount on: not a
// modelstorefs mount already (a second one would stack silently) and, unless
// allowNonEmpty, empty (a mount would hide its files). A dead FUSE mount
// left by a killed daemon ("transport endpoint is not connected") is
// detached first.
func checkMountpoint(dir string, allowNonEmpty bool, log *zap.Logger) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, syscall.ENOTCONN) {
		log.Warn("stale mount found (transport endpoint is not connected): detaching it", zap.String("mountpoint", dir))
		if lerr := fs.LazyUnmount(dir); lerr != nil {
			return fmt.Errorf("%s is a dead mount and detaching it failed (%v); run: modelstorefs unmount %s", dir, lerr, dir)
		}
		fi, err = os.Stat(dir)
	}
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("mountpoint %s does not exist: create it first (mkdir -p %s)", dir, dir)
	}
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mountpoint %s is not a directory", dir)
	}
	if info := mountAt(dir); info != nil && isOurs(info) {
		return fmt.Errorf("%s is already a modelstorefs mount (of %s); unmount it first: modelstorefs unmount %s", dir, info.Source, dir)
	}
	if allowNonEmpty {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	names, _ := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return fmt.Errorf("mountpoint %s is not empty: the mount would hide its files; use an empty directory, or --allow-non-empty (-o nonempty)", dir)
	}
	return nil
}

// mountAt returns the mount table's entry for dir, or nil.
func mountAt(dir string) *mountinfo.Info {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil || len(infos) == 0 {
		return nil
	}
	return infos[len(infos)-1] // the topmost
}

// isOurs reports whether a mount is a modelstorefs FUSE filesystem.
func isOurs(m *mountinfo.Info) bool { return m.FSType == "fuse.modelstorefs" }

// checkFUSEAccess explains up front what a non-root mount lacks, instead of
// go-fuse's "fusermount exited with code 256".
func checkFUSEAccess(allowOther bool) error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fuseOpenError(err, allowOther)
	}
	f.Close()
	if os.Geteuid() == 0 {
		return nil // mount(2) directly
	}
	if _, err := fusermountBinary(); err != nil {
		return errors.New("mounting as a user other than root needs fusermount3\n" +
			"  install the fuse3 package (apt-get install fuse3), or mount as root")
	}
	if allowOther && !userAllowOther() {
		return errors.New("--allow-other as a user other than root needs user_allow_other in /etc/fuse.conf\n" +
			"  add that line to /etc/fuse.conf, leave out --allow-other, or mount as root")
	}
	return nil
}

// fuseOpenError says why /dev/fuse cannot be opened: one short line, then
// what to check, one thing a line; --allow-other only when it was asked for.
func fuseOpenError(err error, allowOther bool) error {
	if errors.Is(err, iofs.ErrNotExist) {
		return errors.New("/dev/fuse does not exist\n" +
			"  load the fuse kernel module (modprobe fuse), or in a container pass the device (--device /dev/fuse)")
	}
	return withFuseHints("cannot open /dev/fuse", err, allowOther,
		"ls -l /dev/fuse should show crw-rw-rw- (read and write for every user)",
		"the fuse3 package should be installed (apt-get install fuse3)")
}

// withFuseHints is err after what, with hints of what to check, one a
// line, and the ones every FUSE failure shares.
func withFuseHints(what string, err error, allowOther bool, hints ...string) error {
	if allowOther {
		hints = append(hints, "--allow-other needs user_allow_other in /etc/fuse.conf")
	}
	hints = append(hints, "or mount as root")
	return fmt.Errorf("%s: %w\n  %s", what, err, strings.Join(hints, "\n  "))
}

// fusermountBinary finds fusermount3 or fusermount as go-fuse does (PATH,
// then /bin).
func fusermountBinary() (string, error) {
	var err error
	for _, name := range []string{"fusermount3", "fusermount"} {
		for _, p := range []string{name, "/bin/" + name} {
			var path string
			if path, err = exec.LookPath(p); err == nil {
				return path, nil
			}
		}
	}
	return "", err
}

// userAllowOther reports whether /etc/fuse.conf allows allow_other.
func userAllowOther() bool {
	data, err := os.ReadFile("/etc/fuse.conf")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}

// mountFailed adds what to check to a failed mount by fusermount.
func mountFailed(err error, allowOther bool) error {
	if !strings.Contains(err.Error(), "fusermount") {
		return err
	}
	return withFuseHints("fusermount3 refused the mount", err, allowOther,
		"you should own the mountpoint (or be able to write to it)",
		"ls -l /dev/fuse should show crw-rw-rw-, and the fuse3 package be installed")
}
