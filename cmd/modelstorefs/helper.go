package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// mount(8) runs a FUSE filesystem from /etc/fstab as
//
//	modelstorefs SOURCE MOUNTPOINT -o OPTIONS
//
// (fstab type fuse.modelstorefs, or "modelstorefs#SOURCE" with type fuse,
// through mount.fuse3), or as /sbin/mount.fuse.modelstorefs with the same
// arguments, and expects it to return once the filesystem is mounted.
// SOURCE is the store list (comma-separated; "modelstorefs" or "none" for
// $DIGITS_MODEL_STORE_URL); OPTIONS map to the mount flags, and "modelstorefs
// mount -o OPTIONS" takes the same ones.

// valueOptions maps fstab options with a value to mount flags.
var valueOptions = map[string]string{
	"cache_dir": "--cache-dir", "cache_size": "--cache-size", "cache_min_free": "--cache-min-free", "buffer_size": "--buffer-size",
	"ttl": "--ttl", "retry_window": "--retry-window", "jobs_dir": "--jobs-dir", "ca_cert": "--ca-cert",
	"log_level": "--log-level", "log_format": "--log-format", "store": "--store", "store_file": "--store-file",
	"log_file": "--log-file", "metrics_addr": "--metrics-addr",
	"uid": "--uid", "gid": "--gid", "umask": "--umask",
	"header_file": "--header-file", "client_cert": "--client-cert", "client_key": "--client-key",
}

// switchOptions maps fstab options without a value to mount flags
// ("nonempty" is libfuse's name for the same thing).
var switchOptions = map[string]string{
	"allow_other": "--allow-other", "allow_non_empty": "--allow-non-empty", "nonempty": "--allow-non-empty",
	"no_direct_io": "--direct-io=false", "no_verify": "--verify=false", "ro": "--read-only",
}

// ignoredOptions are generic mount options that mean nothing here ("rw":
// the daemon keeps the mount read-only anyway, see --read-only for "ro";
// "foreground" is the helper's).
var ignoredOptions = map[string]bool{
	"rw": true, "defaults": true, "auto": true, "noauto": true, "user": true, "users": true,
	"nouser": true, "owner": true, "group": true, "_netdev": true, "nofail": true, "exec": true, "noexec": true,
	"suid": true, "nosuid": true, "dev": true, "nodev": true, "atime": true, "noatime": true, "relatime": true,
	"nodiratime": true, "sync": true, "async": true, "silent": true, "loud": true, "foreground": true,
}

// optionFlags translates fstab-style options into mount flags.
func optionFlags(opts []string) ([]string, error) {
	var flags []string
	for _, o := range opts {
		key, value, hasValue := strings.Cut(strings.TrimSpace(o), "=")
		switch {
		case key == "":
		case switchOptions[key] != "" && !hasValue:
			flags = append(flags, switchOptions[key])
		case valueOptions[key] != "" && hasValue:
			flags = append(flags, valueOptions[key], value)
		case ignoredOptions[key] || strings.HasPrefix(key, "x-") || key == "comment":
		default:
			return nil, fmt.Errorf("unknown mount option %q (see 'modelstorefs mount --help')", o)
		}
	}
	return flags, nil
}

// isHelperInvocation reports whether args (os.Args) are mount(8)'s.
func isHelperInvocation(args []string) bool {
	if strings.HasPrefix(filepath.Base(args[0]), "mount.") {
		return true
	}
	if len(args) < 3 || strings.HasPrefix(args[1], "-") || args[len(args)-1] == "--"+completionFlag {
		return false
	}
	return !isCommand(args[1]) && isSource(args[1])
}

// isSource reports whether s can be an fstab SOURCE: a store list, or
// "none"/"modelstorefs". Anything else ("unmont /mnt") is a mistyped
// command, which the command line answers with the one meant.
func isSource(s string) bool {
	s = strings.TrimPrefix(s, "modelstorefs#")
	return s == "none" || s == "modelstorefs" || strings.Contains(s, "://")
}

// isCommand reports whether name is one of the app's commands (or an
// alias), or the help command urfave/cli adds.
func isCommand(name string) bool {
	if name == "help" || name == "h" {
		return true
	}
	for _, c := range newApp(nil).Commands {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return true
		}
	}
	return false
}

// helperInvocation is a parsed mount(8)-style command line.
type helperInvocation struct {
	mountArgs  []string // arguments of "modelstorefs mount", MOUNTPOINT last
	stores     string   // SOURCE: the store list, or "" for $DIGITS_MODEL_STORE_URL
	foreground bool
}

// parseHelperArgs translates mount(8)'s arguments. The stores are kept out
// of the mount arguments: the daemon gets them in its environment, where
// other users cannot read a password in them (they can read argv in ps).
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
	h := &helperInvocation{}
	if source != "modelstorefs" && source != "none" {
		h.stores = source
	}
	for _, o := range opts {
		if strings.TrimSpace(o) == "foreground" {
			h.foreground = true
		}
	}
	flags, err := optionFlags(opts)
	if err != nil {
		return nil, err
	}
	h.mountArgs = append(flags, mnt)
	return h, nil
}

// runHelper mounts as mount(8) expects: "modelstorefs mount --daemon", which
// returns once the filesystem is up (or the daemon failed); with
// "foreground", the mount in this process.
func runHelper(args []string) error {
	h, err := parseHelperArgs(args)
	if err != nil {
		return err
	}
	mountArgs := []string{args[0], "mount"}
	if !h.foreground {
		mountArgs = append(mountArgs, "--daemon")
	}
	mountArgs = append(mountArgs, h.mountArgs...)
	env := map[string]string{}
	if h.stores != "" {
		env[storeEnv] = h.stores
	}
	if hasPassword(h.stores) {
		fmt.Fprintln(os.Stderr, "modelstorefs: warning: the mount source carries a password, which every user can read in "+
			"/etc/fstab and in ps while mounting; put it in root's ~/.netrc, or in a store_file= only root can read")
	}
	err = runMain(mountArgs, env)
	if errors.Is(err, errNoStore) { // mount(8)'s user writes an fstab line, not flags
		return errors.New("no model store given: write the store URLs in the SOURCE field (the first column of the fstab line, " +
			"comma-separated) instead of none, or give store= or store_file= in the options")
	}
	return err
}
