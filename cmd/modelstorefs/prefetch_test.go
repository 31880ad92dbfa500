package main

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestSameURL(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"http://h/team/", "http://h/team", true},
		{"http://h:80/team/", "http://h/team/", true},
		{"https://h/", "https://h:443/", true},
		{"http://h/team/", "https://h/team/", false},
		{"http://h:8000/", "http://h:8001/", false},
		{"http://h/a/", "http://h/b/", false},
	}
	for _, tt := range tests {
		if got := sameURL(tt.a, tt.b); got != tt.same {
			t.Errorf("sameURL(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

// TestReadThroughAndWait: every byte is read once, in order, with
// progress; a short file is an error; waitCommitted ends with the commit
// or with the file gone from the cache.
func TestReadThroughAndWait(t *testing.T) {
	data := make([]byte, 9<<20+5)
	var seen []int64
	err := readThrough(context.Background(), int64(len(data)), func(n int64) { seen = append(seen, n) },
		func(p []byte, off int64) (int, error) {
			n := copy(p, data[off:])
			if off+int64(n) == int64(len(data)) {
				return n, io.EOF
			}
			return n, nil
		})
	if err != nil || len(seen) != 3 || seen[2] != int64(len(data)) {
		t.Errorf("readThrough: %v, progress %v", err, seen)
	}
	short := func(p []byte, off int64) (int, error) { return 0, io.EOF }
	if err := readThrough(context.Background(), 10, func(int64) {}, short); err == nil {
		t.Error("a file shorter than its size read without error")
	}

	calls := 0
	committing := func() (bool, bool) { calls++; return calls > 2, true }
	if err := waitCommitted(context.Background(), committing); err != nil || calls != 3 {
		t.Errorf("waitCommitted: %v after %d looks", err, calls)
	}
	if err := waitCommitted(context.Background(), func() (bool, bool) { return false, false }); err == nil {
		t.Error("a file gone from the cache counted as committed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := waitCommitted(ctx, func() (bool, bool) { return false, true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waitCommitted, never committed: %v", err)
	}
}
