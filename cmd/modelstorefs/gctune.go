package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// largeHeap is the live heap past which the daemon collects when the heap
// grew by half rather than doubled; past hugeHeap, by a third.
const (
	largeHeap = 32 << 20
	hugeHeap  = 64 << 20
)

// gcPercent is the GOGC the tuner set last.
var gcPercent atomic.Int64

// tuneGC adapts GOGC to what the heap holds, unless GOGC is set. A
// catalog of thousands of models keeps tens of MiB for as long as the
// mount lives, and a heap let double (GOGC 100) is what the RSS shows:
// there the garbage collector runs at half growth (GOGC 50), and at a
// third past 64 MiB (GOGC 35: 10,000 models walked, their 110,000 nodes
// included, hold about 80 MiB). A small store
// keeps the default and its cheaper collections (a cold walk of a few
// hundred models spends a sixth of its CPU collecting at GOGC 50). It is
// checked after every collection, by a finalizer re-armed each cycle: no
// goroutine of ours to stop.
func tuneGC() {
	if os.Getenv("GOGC") != "" || !gcPercent.CompareAndSwap(0, 100) {
		return // the user's choice, or tuned already
	}
	armGCTuner()
}

// gcSentinel is unreachable as soon as it is made: its finalizer runs
// after the next collection. It holds a pointer so that it is never one of
// the tiny objects the runtime batches (whose finalizers may never run).
type gcSentinel struct{ _ *byte }

func armGCTuner() {
	runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
		pct := int64(100)
		switch live := liveHeap(); {
		case live > hugeHeap:
			pct = 35
		case live > largeHeap:
			pct = 50
		}
		if gcPercent.Swap(pct) != pct {
			debug.SetGCPercent(int(pct))
		}
		armGCTuner()
	})
}

// liveHeap is the heap the last collection marked live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
