package main

import (
	"slices"
	"strings"
	"testing"
)

func TestIsHelperInvocation(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{[]string{"modelstorefs", "http://h/s", "/mnt", "-o", "ro"}, true},
		{[]string{"/sbin/mount.fuse.modelstorefs", "http://h/s", "/mnt"}, true},
		{[]string{"modelstorefs", "mount", "/mnt"}, false},
		{[]string{"modelstorefs", "ls", "--json"}, false},
		{[]string{"modelstorefs", "--version"}, false},
		{[]string{"modelstorefs", "import", "s/m"}, false},
		{[]string{"modelstorefs"}, false},
		{[]string{"modelstorefs", "version"}, false},
		{[]string{"modelstorefs", "ver", "--generate-bash-completion"}, false},
		{[]string{"modelstorefs", "none", "/mnt", "-o", "store=http://h/"}, true},
		{[]string{"modelstorefs", "modelstorefs#http://h/s", "/mnt"}, true},
		{[]string{"modelstorefs", "team=http://h/s,http://g/", "/mnt"}, true},
		{[]string{"modelstorefs", "unmont", "/mnt"}, false}, // a typo of unmount, not a SOURCE
		{[]string{"modelstorefs", "imprt", "s/m", "--jobs-dir", "/j"}, false},
	}
	for _, c := range cases {
		if got := isHelperInvocation(c.args); got != c.want {
			t.Errorf("isHelperInvocation(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

func TestParseHelperArgs(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		want   []string
		stores string
		fg     bool
		err    string
	}{
		{
			name: "fstab line as mount.fuse3 passes it",
			args: []string{"modelstorefs", "http://a:8000,http://b/team", "/mnt/models", "-o", "ro,allow_other,cache_dir=/var/cache/m,ttl=1h,dev,suid"},
			want: []string{"--read-only", "--allow-other", "--cache-dir", "/var/cache/m", "--ttl", "1h", "/mnt/models"}, stores: "http://a:8000,http://b/team",
		},
		{
			name: "modelstorefs#SOURCE and every option",
			args: []string{"mount.fuse.modelstorefs", "modelstorefs#http://u:pw@a", "/m", "-o",
				"cache_size=5G,cache_min_free=0,retry_window=1m,jobs_dir=/jobs,ca_cert=/ca.pem,log_level=debug,log_format=json,store=http://c,log_file=/tmp/l,nonempty,x-systemd.automount,_netdev,nofail,noatime"},
			want: []string{"--cache-size", "5G", "--cache-min-free", "0", "--retry-window", "1m",
				"--jobs-dir", "/jobs", "--ca-cert", "/ca.pem", "--log-level", "debug", "--log-format", "json", "--store", "http://c",
				"--log-file", "/tmp/l", "--allow-non-empty", "/m"},
			stores: "http://u:pw@a",
		},
		{
			name: "stores from the environment, -o glued, foreground",
			args: []string{"modelstorefs", "modelstorefs", "/m", "-orw", "-f", "-n"},
			want: []string{"/m"}, fg: true,
		},
		{name: "unknown option", args: []string{"modelstorefs", "none", "/m", "-o", "cache_sise=1G"}, err: "unknown mount option"},
		{name: "missing mountpoint", args: []string{"modelstorefs", "http://a", "-o", "ro"}, err: "usage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := parseHelperArgs(c.args)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(h.mountArgs, c.want) || h.foreground != c.fg || h.stores != c.stores {
				t.Errorf("got %q fg=%v stores=%q\nwant %q fg=%v stores=%q", h.mountArgs, h.foreground, h.stores, c.want, c.fg, c.stores)
			}
			for _, a := range h.mountArgs {
				if strings.Contains(a, "pw@") {
					t.Errorf("the password reached the daemon's argv: %q", h.mountArgs)
				}
			}
		})
	}
}

func TestDaemonArgs(t *testing.T) {
	child, stores, headers := daemonArgs([]string{"mount", "--daemon", "--store", "http://u:pw@a/", "--cache-dir", "/c", "--header", "b=Authorization: Bearer x",
		"--store", "b=http://b/", "--header", "X-Key: k,v", "--", "/mnt"})
	if want := []string{"mount", "--cache-dir", "/c", "--", "/mnt"}; !slices.Equal(child, want) {
		t.Errorf("daemon argv %q, want %q", child, want)
	}
	if want := []string{"http://u:pw@a/", "b=http://b/"}; !slices.Equal(stores, want) {
		t.Errorf("daemon stores %q, want %q", stores, want)
	}
	if want := []string{"b=Authorization: Bearer x", "X-Key: k,v"}; !slices.Equal(headers, want) {
		t.Errorf("daemon headers %q, want %q", headers, want)
	}
}
