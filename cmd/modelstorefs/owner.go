package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
)

// Ownership and permissions of the mounted tree (--uid, --gid, --umask;
// -o uid=,gid=,umask=), as rclone mount, gcsfuse and s3fs take them.

// ownership is the tree's owner and umask; nil IDs are the daemon's.
type ownership struct {
	UID, GID *uint32
	Umask    uint32
}

func ownerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "uid", Usage: "owner of every file and directory: user `ID` or name (default: the user mounting); others need --allow-other to enter"},
		&cli.StringFlag{Name: "gid", Usage: "group of every file and directory: group `ID` or name (default: the mounting user's group)"},
		&cli.StringFlag{Name: "umask", Usage: "permission bits to clear, in `OCTAL` (e.g. 027: files 0440, directories 0550); default none: files 0444, directories 0555"},
	}
}

// ownershipFrom reads --uid, --gid and --umask.
func ownershipFrom(c *cli.Context) (ownership, error) {
	var o ownership
	var err error
	if v := c.String("uid"); v != "" {
		if o.UID, err = parseID(v, lookupUser); err != nil {
			return o, fmt.Errorf("--uid: %w", err)
		}
	}
	if v := c.String("gid"); v != "" {
		if o.GID, err = parseID(v, lookupGroup); err != nil {
			return o, fmt.Errorf("--gid: %w", err)
		}
	}
	if v := c.String("umask"); v != "" {
		if o.Umask, err = parseUmask(v); err != nil {
			return o, fmt.Errorf("--umask: %w", err)
		}
	}
	return o, nil
}

// parseID reads a numeric ID, or a name through lookup.
func parseID(v string, lookup func(string) (string, error)) (*uint32, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return new(uint32(n)), nil
	}
	id, err := lookup(v)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%q has the ID %q, not a number", v, id)
	}
	return new(uint32(n)), nil
}

func lookupUser(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", fmt.Errorf("%q is neither a number nor a known user", name)
	}
	return u.Uid, nil
}

func lookupGroup(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", fmt.Errorf("%q is neither a number nor a known group", name)
	}
	return g.Gid, nil
}

// parseUmask reads an octal umask, 0 to 0777 ("022", "0022", "0o22").
func parseUmask(v string) (uint32, error) {
	s := strings.TrimPrefix(strings.TrimSpace(v), "0o")
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%q is not an octal umask between 000 and 777", v)
	}
	return uint32(n), nil
}

// warnOwner says when the tree is given to someone the kernel will not
// let in: without allow_other a FUSE mount is the mounting user's alone.
func warnOwner(cfg mountConfig, log *zap.Logger) {
	other := cfg.Owner.UID != nil && int(*cfg.Owner.UID) != os.Getuid() ||
		cfg.Owner.GID != nil && int(*cfg.Owner.GID) != os.Getgid()
	if other && !cfg.AllowOther {
		log.Warn("--uid/--gid name another user or group, who cannot enter the mount without --allow-other (-o allow_other)")
	}
}
