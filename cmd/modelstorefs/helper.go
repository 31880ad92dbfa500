package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// mount(8) runs a FUSE filesystem from /etc/fstab as
//
//	modelstorefs SOURCE MOUNTPOINT -o OPTIONS
//
// (fstab type fuse.modelstorefs, or "modelstorefs#SOURCE" with type fuse,
// through mount.fuse3), or as /sbin/mount.fuse.modelstorefs with the same
// arguments, and expects it to return once the filesystem is mounted.
// SOURCE is the store list (comma-separated; "modelstorefs" or "none" for
// $DIGITS_MODEL_STORE_URL); OPTIONS map to the mount flags.

// helperOptions maps fstab options to mount flags.
var helperOptions = map[string]string{
	"cache_dir": "--cache-dir", "cache_size": "--cache-size", "cache_min_free": "--cache-min-free",
	"ttl": "--ttl", "retry_window": "--retry-window", "jobs_dir": "--jobs-dir", "ca_cert": "--ca-cert",
	"log_level": "--log-level", "log_format": "--log-format", "store": "--store",
	"metrics_addr": "--metrics-addr",
}

// ignoredOptions are generic mount options that mean nothing here (the
// mount is read-only whatever ro/rw say).
var ignoredOptions = map[string]bool{
	"ro": true, "rw": true, "defaults": true, "auto": true, "noauto": true, "user": true, "users": true,
	"nouser": true, "owner": true, "group": true, "_netdev": true, "nofail": true, "exec": true, "noexec": true,
	"suid": true, "nosuid": true, "dev": true, "nodev": true, "atime": true, "noatime": true, "relatime": true,
	"nodiratime": true, "sync": true, "async": true, "silent": true, "loud": true, "foreground": true,
}

// helperInvocation is a parsed mount(8)-style command line.
type helperInvocation struct {
	mountArgs  []string // arguments of "modelstorefs mount", MOUNTPOINT last
	mountpoint string
	foreground bool
	logFile    string
	cacheDir   string
}

// isHelperInvocation reports whether args (os.Args) are mount(8)'s.
func isHelperInvocation(args []string) bool {
	if strings.HasPrefix(filepath.Base(args[0]), "mount.") {
		return true
	}
	if len(args) < 3 || strings.HasPrefix(args[1], "-") {
		return false
	}
	switch args[1] {
	case "mount", "unmount", "umount", "import", "ls", "serve", "check", "completion", "help", "h":
		return false
	}
	return true
}

// parseHelperArgs translates mount(8)'s arguments.
func parseHelperArgs(args []string) (*helperInvocation, error) {
	var positional, opts []string
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" && i+1 < len(args):
			opts = append(opts, strings.Split(args[i+1], ",")...)
			i++
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, strings.Split(a[2:], ",")...)
		case a == "-f":
			opts = append(opts, "foreground")
		case strings.HasPrefix(a, "-"): // -n, -s, -v from mount(8)
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) != 2 {
		return nil, fmt.Errorf("usage as a mount helper: modelstorefs SOURCE MOUNTPOINT [-o OPTIONS], got %q", args[1:])
	}
	source, mnt := strings.TrimPrefix(positional[0], "modelstorefs#"), positional[1]
	h := &helperInvocation{mountpoint: mnt}
	if source != "modelstorefs" && source != "none" && source != "" {
		h.mountArgs = append(h.mountArgs, "--store", source)
	}
	for _, o := range opts {
		key, value, hasValue := strings.Cut(strings.TrimSpace(o), "=")
		switch {
		case key == "":
		case key == "allow_other":
			h.mountArgs = append(h.mountArgs, "--allow-other")
		case key == "foreground":
			h.foreground = true
		case key == "log_file" && hasValue:
			h.logFile = value
		case helperOptions[key] != "" && hasValue:
			h.mountArgs = append(h.mountArgs, helperOptions[key], value)
			if key == "cache_dir" {
				h.cacheDir = value
			}
		case ignoredOptions[key] || strings.HasPrefix(key, "x-") || key == "comment":
		default:
			return nil, fmt.Errorf("unknown mount option %q", o)
		}
	}
	h.mountArgs = append(h.mountArgs, mnt)
	return h, nil
}

// runHelper mounts as mount(8) expects: a daemon in the background, and
// this process returns once the filesystem is up (or the daemon failed).
func runHelper(args []string) error {
	h, err := parseHelperArgs(args)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if h.foreground {
		cmd := exec.Command(self, append([]string{"mount"}, h.mountArgs...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		return cmd.Run()
	}
	if h.logFile == "" {
		dir := h.cacheDir
		if dir == "" {
			if dir, err = defaultCacheDir(); err != nil {
				return err
			}
		}
		h.logFile = filepath.Join(dir, "modelstorefs.log")
	}
	if err := os.MkdirAll(filepath.Dir(h.logFile), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(h.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	start, _ := logf.Seek(0, 2)
	cmd := exec.Command(self, append([]string{"mount"}, h.mountArgs...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive mount(8) and its terminal
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	mnt, _ := filepath.Abs(h.mountpoint)
	deadline := time.After(60 * time.Second)
	for {
		if mountedHere(mnt) {
			return nil // the daemon runs on, detached
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the daemon exited (%v) before mounting; its log (%s):\n%s", err, h.logFile, tail(h.logFile, start))
		case <-deadline:
			_ = cmd.Process.Kill()
			return fmt.Errorf("not mounted after 60s; see %s", h.logFile)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// mountedHere reports whether dir is a modelstorefs mount.
func mountedHere(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir && strings.Contains(sc.Text(), "modelstorefs") {
			return true
		}
	}
	return false
}

// tail returns what was appended to a log file since offset.
func tail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return ""
	}
	buf := make([]byte, 8<<10)
	n, err := f.Read(buf)
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return string(buf[:n])
	}
	return string(buf[:n])
}
