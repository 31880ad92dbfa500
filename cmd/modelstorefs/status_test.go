package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/modelstorefs/modelstorefs/cache"
	msfs "github.com/modelstorefs/modelstorefs/fs"
)

func TestStatusHealth(t *testing.T) {
	tests := []struct {
		name string
		st   msfs.Stats
		err  error
		want string
	}{
		{"quiet", msfs.Stats{}, nil, "ok"},
		{"errors", msfs.Stats{Errors: map[string]int64{"EIO": 3, "EACCES": 1}}, nil, "errors returned to readers: EACCES ×1, EIO ×3"},
		{"digests", msfs.Stats{Content: cache.ContentStats{DigestMismatches: 2}}, nil, "2 files refused for their digest"},
		{"dead", msfs.Stats{}, &fs.PathError{Op: "open", Path: "/m/.stats", Err: syscall.ENOTCONN}, "dead: its daemon is gone"},
		{"hung", msfs.Stats{}, fmt.Errorf("%w within 5s", errNoAnswer), "not answering: no answer within 5s"},
		{"other user's", msfs.Stats{}, &fs.PathError{Op: "open", Path: "/m/.stats", Err: syscall.EACCES}, "unknown: .stats not readable"},
	}
	for _, tt := range tests {
		if got := health(&tt.st, tt.err); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"http://h/a/,https://h2:8443/b/":     "http://h/a/,https://h2:8443/b/",
		"http://alice:pw@h/a/,http://bob@h/": "http://h/a/,http://h/",
		"modelstorefs":                       "modelstorefs",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStatusOf reads a .stats file from a directory standing in for a
// mount, and one that does not answer in time.
func TestStatusOf(t *testing.T) {
	dir := t.TempDir()
	st := msfs.Stats{Daemon: msfs.Daemon{PID: 4242, CacheDir: "/var/cache/m"},
		Stores:  []msfs.StoreStats{{Name: "team", URL: "http://u:pw@h/team/", Models: 3}},
		Content: cache.ContentStats{UsedBytes: 3 << 20, MaxBytes: 10 << 30, Files: 2}}
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, msfs.StatsName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	ms := statusOf(&mountinfo.Info{Mountpoint: dir, Source: "http://h/team/"}, time.Second)
	if ms.PID != 4242 || ms.CacheDir != "/var/cache/m" || ms.Health != "ok" || len(ms.Stores) != 1 || ms.Stores[0].URL != "http://h/team/" {
		t.Errorf("status %+v", ms)
	}
	var b bytes.Buffer
	writeStatus(&b, []mountStatus{ms})
	want := dir + "\n  daemon:  pid 4242\n  store:   team = http://h/team/ (3 models)\n  cache:   /var/cache/m (3.0 MiB of 10 GiB, 2 files)\n  health:  ok\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	js, _ := json.Marshal([]mountStatus{ms})
	if strings.Contains(string(js), "pw") || !strings.Contains(string(js), `"pid":4242`) {
		t.Errorf("json %s", js)
	}

	// A FIFO nobody writes stands in for a daemon that does not answer.
	hung := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(hung, msfs.StatsName), 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	ms = statusOf(&mountinfo.Info{Mountpoint: hung, Source: "http://h/"}, 50*time.Millisecond)
	if !strings.HasPrefix(ms.Health, "not answering") || ms.PID != 0 {
		t.Errorf("hung mount: %+v", ms)
	}
	// Let the blocked reader go.
	if f, err := os.OpenFile(filepath.Join(hung, msfs.StatsName), os.O_WRONLY, 0); err == nil {
		f.Close()
	}
}
