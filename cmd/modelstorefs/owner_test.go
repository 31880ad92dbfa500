package main

import (
	"os/user"
	"strings"
	"testing"
)

// TestMountConfigOwner: --uid, --gid, --umask and their -o forms, by
// number or name; bad values are refused naming the flag.
func TestMountConfigOwner(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root, err := user.Lookup("root")
	if err != nil || root.Uid != "0" {
		t.Skip("no root user in the user database")
	}
	rootGroup, _ := user.LookupGroupId("0")
	tests := []struct {
		args     []string
		uid, gid int // -1: not set
		umask    uint32
		err      string
	}{
		{nil, -1, -1, 0, ""},
		{[]string{"--uid", "1000", "--gid", "100", "--umask", "022"}, 1000, 100, 0o022, ""},
		{[]string{"-o", "uid=1001,gid=101,umask=0027,allow_other"}, 1001, 101, 0o027, ""},
		{[]string{"--uid", "root"}, 0, -1, 0, ""},
		{[]string{"--gid", rootGroup.Name}, -1, 0, 0, ""},
		{[]string{"--umask", "0o77"}, -1, -1, 0o077, ""},
		{[]string{"--uid", "no-such-user-here"}, -1, -1, 0, `--uid: "no-such-user-here" is neither a number nor a known user`},
		{[]string{"--gid", "-1"}, -1, -1, 0, "--gid:"},
		{[]string{"--umask", "999"}, -1, -1, 0, `--umask: "999" is not an octal umask between 000 and 777`},
		{[]string{"--umask", "1777"}, -1, -1, 0, "--umask:"},
	}
	for _, tt := range tests {
		cfg, err := configFrom(t, append([]string{t.TempDir(), "--store", "http://127.0.0.1:8001/"}, tt.args...)...)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if got := idOf(cfg.Owner.UID); got != tt.uid {
			t.Errorf("%q: uid %d, want %d", tt.args, got, tt.uid)
		}
		if got := idOf(cfg.Owner.GID); got != tt.gid {
			t.Errorf("%q: gid %d, want %d", tt.args, got, tt.gid)
		}
		if cfg.Owner.Umask != tt.umask {
			t.Errorf("%q: umask %o, want %o", tt.args, cfg.Owner.Umask, tt.umask)
		}
	}
}

func idOf(p *uint32) int {
	if p == nil {
		return -1
	}
	return int(*p)
}
