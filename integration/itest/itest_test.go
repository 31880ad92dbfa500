package itest

import (
	"errors"
	"strings"
	"testing"
)

func TestWithoutFUSE(t *testing.T) {
	noFuse := errors.New("open /dev/fuse: no such file or directory")
	cases := []struct {
		name     string
		ci, skip bool
		code     int
		says     string
	}{
		{"plain machine: fails", false, false, 1, "MODELSTOREFS_SKIP_FUSE=1 skips"},
		{"opted out: passes, loudly", false, true, 0, "NOTHING TESTED"},
		{"CI: fails", true, false, 1, "required in CI"},
		{"CI ignores the opt-out", true, true, 1, "required in CI"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, msg := withoutFUSE(noFuse, c.ci, c.skip)
			if code != c.code || !strings.Contains(msg, c.says) || !strings.Contains(msg, noFuse.Error()) {
				t.Errorf("withoutFUSE = %d %q, want %d and a message with %q and the cause", code, msg, c.code, c.says)
			}
		})
	}
}

func TestDaemonTrouble(t *testing.T) {
	cases := []struct {
		name, logs, want string
	}{
		{"clean", "INFO\tmounted\nINFO\tunmounted\n", ""},
		{"race", "==================\nWARNING: DATA RACE\nRead at 0x00c000\n", "a data race"},
		{"go panic", "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 7", "a panic"},
		{"handler", "ERROR\tfs\tBUG: FUSE handler panicked\t{\"panic\": \"boom\"}", "a FUSE handler that panicked"},
		{"a model named panicroom is fine", "DEBUG\tlisted\t{\"model\": \"panicroom\"}", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := DaemonTrouble(c.logs)
			if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
				t.Errorf("DaemonTrouble = %q, want %q", got, c.want)
			}
		})
	}
}
