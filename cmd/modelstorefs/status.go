package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/moby/sys/mountinfo"
	"github.com/urfave/cli/v2"

	"github.com/modelstorefs/modelstorefs/fs"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "list the active modelstorefs mounts: stores, cache, daemon and health",
		Description: `One block per modelstorefs mount of this mount namespace (the mount table,
/proc/self/mountinfo): its stores (never with credentials), its cache
directory and how full it is, the daemon's PID, and its health from
MOUNTPOINT/.stats: "ok", the errors returned to readers since it mounted,
"dead" (the daemon is gone: modelstorefs unmount MOUNTPOINT), or "not
answering". --json prints the same, with the whole .stats of each mount.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			mounts, err := activeMounts(statsTimeout)
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(mounts)
			}
			writeStatus(c.App.Writer, mounts)
			return nil
		},
	}
}

// statsTimeout bounds the read of a mount's .stats: a hung daemon must
// not hang status.
const statsTimeout = 5 * time.Second

// mountStatus is one active mount as status shows it.
type mountStatus struct {
	Mountpoint string `json:"mountpoint"`
	// Source is the mount table's SOURCE: the store URLs.
	Source   string          `json:"source"`
	PID      int             `json:"pid,omitempty"`
	CacheDir string          `json:"cache_dir,omitempty"`
	Stores   []fs.StoreStats `json:"stores"`
	Health   string          `json:"health"`
	// Stats is the mount's .stats (store URLs without credentials).
	Stats *fs.Stats `json:"stats,omitempty"`
}

// activeMounts lists the modelstorefs mounts, each with its .stats.
func activeMounts(timeout time.Duration) ([]mountStatus, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("fuse.modelstorefs"))
	if err != nil {
		return nil, err
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Mountpoint < infos[j].Mountpoint })
	out := []mountStatus{}
	for _, m := range infos {
		out = append(out, statusOf(m, timeout))
	}
	return out, nil
}

// statusOf reads one mount's .stats and judges its health.
func statusOf(m *mountinfo.Info, timeout time.Duration) mountStatus {
	ms := mountStatus{Mountpoint: m.Mountpoint, Source: redactURLs(m.Source), Stores: []fs.StoreStats{}}
	data, err := readStatsFile(m.Mountpoint, timeout)
	var st fs.Stats
	if err == nil {
		if err = json.Unmarshal(data, &st); err != nil {
			err = fmt.Errorf(".stats: %w", err)
		}
	}
	ms.Health = health(&st, err)
	if err != nil {
		return ms
	}
	for i := range st.Stores {
		st.Stores[i].URL = redactURLs(st.Stores[i].URL)
	}
	ms.PID, ms.CacheDir, ms.Stats = st.PID, st.CacheDir, &st
	ms.Stores = append(ms.Stores, st.Stores...)
	return ms
}

// errNoAnswer: .stats was not read within the timeout.
var errNoAnswer = errors.New("no answer")

// readStatsFile reads MOUNTPOINT/.stats, giving up after timeout. A read
// stuck in the kernel cannot be cancelled: its goroutine ends when the
// read does, or with this short-lived process.
func readStatsFile(dir string, timeout time.Duration) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		data, err := os.ReadFile(filepath.Join(dir, fs.StatsName))
		ch <- result{data, err}
	}()
	select {
	case r := <-ch:
		return r.data, r.err
	case <-time.After(timeout):
		return nil, fmt.Errorf("%w within %s", errNoAnswer, timeout)
	}
}

// health is one line on a mount: its errors from .stats, or why there
// is no .stats.
func health(st *fs.Stats, err error) string {
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return "dead: its daemon is gone (modelstorefs unmount the mountpoint)"
	case errors.Is(err, errNoAnswer):
		return "not answering: " + err.Error()
	case errors.Is(err, os.ErrPermission):
		return "unknown: .stats not readable (another user's mount?)"
	case err != nil:
		return "unknown: " + err.Error()
	}
	var problems []string
	names := make([]string, 0, len(st.Errors))
	for name := range st.Errors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		problems = append(problems, fmt.Sprintf("%s ×%d", name, st.Errors[name]))
	}
	if len(problems) > 0 {
		problems = []string{"errors returned to readers: " + strings.Join(problems, ", ")}
	}
	if n := st.Content.DigestMismatches; n > 0 {
		problems = append(problems, fmt.Sprintf("%d files refused for their digest", n))
	}
	if len(problems) == 0 {
		return "ok"
	}
	return strings.Join(problems, "; ")
}

// redactURLs takes the userinfo out of a comma-separated list of URLs
// (mount sources are written without it; a hand-made mount may not be).
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func writeStatus(w io.Writer, mounts []mountStatus) {
	if len(mounts) == 0 {
		fmt.Fprintln(w, "no modelstorefs mount")
		return
	}
	for i, m := range mounts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, m.Mountpoint)
		if m.PID > 0 {
			fmt.Fprintf(w, "  daemon:  pid %d\n", m.PID)
		}
		if len(m.Stores) == 0 {
			fmt.Fprintf(w, "  stores:  %s\n", m.Source)
		}
		for _, s := range m.Stores {
			models := "not listed yet"
			if s.Models >= 0 {
				models = fmt.Sprintf("%d models", s.Models)
			}
			fmt.Fprintf(w, "  store:   %s = %s (%s)\n", s.Name, s.URL, models)
		}
		if m.Stats != nil {
			c := m.Stats.Content
			fmt.Fprintf(w, "  cache:   %s (%s of %s, %d files)\n", m.CacheDir, humanize.IBytes(uint64(max(c.UsedBytes, 0))),
				humanize.IBytes(uint64(max(c.MaxBytes, 0))), c.Files)
		}
		fmt.Fprintf(w, "  health:  %s\n", m.Health)
	}
}
