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
	}
	for _, c := range cases {
		if got := isHelperInvocation(c.args); got != c.want {
			t.Errorf("isHelperInvocation(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

func TestParseHelperArgs(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		want    []string
		fg      bool
		logFile string
		err     string
	}{
		{
			name: "fstab line as mount.fuse3 passes it",
			args: []string{"modelstorefs", "http://a:8000,http://b/team", "/mnt/models", "-o", "ro,allow_other,cache_dir=/var/cache/m,ttl=1h,dev,suid"},
			want: []string{"--store", "http://a:8000,http://b/team", "--allow-other", "--cache-dir", "/var/cache/m", "--ttl", "1h", "/mnt/models"},
		},
		{
			name: "modelstorefs#SOURCE and every option",
			args: []string{"mount.fuse.modelstorefs", "modelstorefs#http://a", "/m", "-o",
				"cache_size=5G,cache_min_free=0,retry_window=1m,jobs_dir=/jobs,ca_cert=/ca.pem,log_level=debug,log_format=json,store=http://c,log_file=/tmp/l,x-systemd.automount,_netdev,nofail,noatime"},
			want: []string{"--store", "http://a", "--cache-size", "5G", "--cache-min-free", "0", "--retry-window", "1m",
				"--jobs-dir", "/jobs", "--ca-cert", "/ca.pem", "--log-level", "debug", "--log-format", "json", "--store", "http://c", "/m"},
			logFile: "/tmp/l",
		},
		{
			name: "stores from the environment, -o glued, foreground",
			args: []string{"modelstorefs", "modelstorefs", "/m", "-oro", "-f", "-n"},
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
			if !slices.Equal(h.mountArgs, c.want) || h.foreground != c.fg || h.logFile != c.logFile {
				t.Errorf("got %q fg=%v log=%q\nwant %q fg=%v log=%q", h.mountArgs, h.foreground, h.logFile, c.want, c.fg, c.logFile)
			}
		})
	}
}
