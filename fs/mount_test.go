package fs

import "testing"

// TestMaxRequest: READs are as large as a spliced reply allows (header and
// go-fuse's spare page included), in powers of two, at most 1 MiB.
func TestMaxRequest(t *testing.T) {
	tests := []struct {
		pipeMax, want int
	}{
		{1 << 20, 512 << 10}, // the default pipe-max-size: 1 MiB + header would not fit
		{1<<20 + 8192, 1 << 20},
		{4 << 20, 1 << 20},
		{512 << 10, 256 << 10},
		{64 << 10, 128 << 10}, // never below 128 KiB (the kernel's old default)
	}
	for _, tt := range tests {
		if got := maxRequest(tt.pipeMax); got != tt.want {
			t.Errorf("maxRequest(%d) = %d, want %d", tt.pipeMax, got, tt.want)
		}
	}
}
