package main

import (
	"errors"
	iofs "io/fs"
	"strings"
	"syscall"
	"testing"
)

// TestFUSEAccessMessages: a short first line, then one thing to check a
// line; --allow-other is mentioned only when it was asked for.
func TestFUSEAccessMessages(t *testing.T) {
	denied := &iofs.PathError{Op: "open", Path: "/dev/fuse", Err: syscall.EACCES}
	refused := errors.New("fusermount exited with code 256")
	tests := []struct {
		name       string
		err        error
		first      string
		allowOther bool
	}{
		{"no device", fuseOpenError(&iofs.PathError{Op: "open", Path: "/dev/fuse", Err: syscall.ENOENT}, false), "/dev/fuse does not exist", false},
		{"permission", fuseOpenError(denied, false), "cannot open /dev/fuse: open /dev/fuse: permission denied", false},
		{"permission, --allow-other", fuseOpenError(denied, true), "cannot open /dev/fuse: open /dev/fuse: permission denied", true},
		{"fusermount refused", mountFailed(refused, false), "fusermount3 refused the mount: fusermount exited with code 256", false},
		{"fusermount refused, --allow-other", mountFailed(refused, true), "fusermount3 refused the mount: fusermount exited with code 256", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines := strings.Split(tc.err.Error(), "\n")
			if lines[0] != tc.first {
				t.Errorf("first line %q, want %q", lines[0], tc.first)
			}
			if len(lines) < 2 {
				t.Errorf("no hint:\n%s", tc.err)
			}
			for _, l := range lines {
				if len(l) > 110 {
					t.Errorf("line of %d characters: %q", len(l), l)
				}
			}
			if got := strings.Contains(tc.err.Error(), "allow-other"); got != tc.allowOther {
				t.Errorf("mentions --allow-other: %v, want %v:\n%s", got, tc.allowOther, tc.err)
			}
		})
	}
	if err := errors.New("other"); mountFailed(err, true) != err {
		t.Errorf("an error that is not fusermount's was changed")
	}
}
