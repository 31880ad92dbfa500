package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestTuneGC: the tuner sets GOGC 50 once the live heap is large, 35 once
// it is huge, and back to 100 once it is small again.
func TestTuneGC(t *testing.T) {
	t.Setenv("GOGC", "") // the tuner leaves a GOGC the user set alone
	tuneGC()
	t.Cleanup(func() { debug.SetGCPercent(int(gcPercent.Load())) })
	var held []byte
	for _, tc := range []struct {
		name string
		live int
		want int64
	}{
		{"large heap", largeHeap + largeHeap/2, 50},
		{"huge heap", 2 * hugeHeap, 35},
		{"small heap", 0, 100},
		{"large again", largeHeap + largeHeap/2, 50},
	} {
		held = make([]byte, tc.live)
		for i := range held {
			held[i] = 1 // touched: the pages are the process's
		}
		deadline := time.Now().Add(10 * time.Second)
		for gcPercent.Load() != tc.want && time.Now().Before(deadline) {
			runtime.GC()
			time.Sleep(10 * time.Millisecond) // the finalizer runs after the collection
		}
		if got := gcPercent.Load(); got != tc.want {
			t.Errorf("%s (%d MiB held): GOGC %d, want %d", tc.name, tc.live>>20, got, tc.want)
		}
		// The runtime's own setting, not only the tuner's record of it.
		if got := debug.SetGCPercent(int(tc.want)); int64(got) != tc.want {
			t.Errorf("%s: the runtime's GOGC is %d, want %d", tc.name, got, tc.want)
		}
	}
	runtime.KeepAlive(held)
}
