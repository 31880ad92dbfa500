package engine

// Whether the cache disk keeps up: past the point where the kernel would
// throttle writers, chunks go through memory (see doc.go).

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// diskWatch tells whether the cache disk keeps up. A leaf (atomics).
type diskWatch struct {
	writeBehind bool        // every chunk through memory (StreamConfig.WriteBehind)
	hook        func() bool // the answer, in tests
	busy        atomic.Bool // the last answer
	at          atomic.Int64
}

// busyNow reports whether the system has so much dirty data waiting to be
// written back that writes into the cache file would be throttled (the
// kernel holds writers in balance_dirty_pages above half-way between the
// background threshold and the dirty limit): then chunks go through memory
// and are written behind, so that readers never wait for the disk. The
// answer is kept for a moment (it reads /proc/meminfo).
func (w *diskWatch) busyNow() bool {
	if w.hook != nil {
		return w.hook()
	}
	if w.writeBehind {
		return true
	}
	now := time.Now().UnixNano()
	if last := w.at.Load(); now-last < int64(100*time.Millisecond) {
		return w.busy.Load()
	}
	w.at.Store(now)
	busy := dirtyBytes() > dirtyThreshold()
	w.busy.Store(busy)
	return busy
}

// dirtyBytes is the data waiting for or under writeback, system-wide.
func dirtyBytes() int64 {
	m := meminfo("Dirty", "Writeback")
	return m["Dirty"] + m["Writeback"]
}

// dirtyThreshold is three quarters of the point where the kernel starts
// throttling writers (balance_dirty_pages' "freerun": half-way between the
// background writeback threshold and the dirty limit): past it, writes into
// the cache file would soon wait for the disk.
func dirtyThreshold() int64 {
	avail := meminfo("MemAvailable")["MemAvailable"]
	limit := func(bytesFile, ratioFile string, defRatio int64) int64 {
		if b := readInt(bytesFile); b > 0 {
			return b
		}
		ratio := readInt(ratioFile)
		if ratio <= 0 {
			ratio = defRatio
		}
		return avail * ratio / 100
	}
	if avail <= 0 {
		return 256 << 20
	}
	bg := limit("/proc/sys/vm/dirty_background_bytes", "/proc/sys/vm/dirty_background_ratio", 10)
	hard := limit("/proc/sys/vm/dirty_bytes", "/proc/sys/vm/dirty_ratio", 20)
	freerun := (bg + hard) / 2
	return max(freerun*3/4, 64<<20)
}

// meminfo reads the named /proc/meminfo fields, in bytes.
func meminfo(names ...string) map[string]int64 {
	out := map[string]int64{}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) > 0 {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[name] = kb << 10
			}
		}
	}
	return out
}

func readInt(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}
