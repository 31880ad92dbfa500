package fs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

func TestToErrno(t *testing.T) {
	status := func(code int) error {
		return fmt.Errorf("read: %w", &remote.StatusError{Method: "GET", URL: "http://x/y", Code: code})
	}
	tests := []struct {
		name    string
		err     error
		want    syscall.Errno
		counted string // key in Stats().Errors; "" when not counted (nor logged)
	}{
		{"nil", nil, 0, ""},
		{"canceled", context.Canceled, syscall.EINTR, ""},
		{"wrapped canceled", fmt.Errorf("GET x: %w", context.Canceled), syscall.EINTR, ""},
		{"cache not found", fmt.Errorf("s/m: %w", cache.ErrNotFound), syscall.ENOENT, ""},
		{"remote not found", fmt.Errorf("x: %w", remote.ErrNotFound), syscall.ENOENT, ""},
		{"404", status(http.StatusNotFound), syscall.ENOENT, ""},
		{"410", status(http.StatusGone), syscall.ENOENT, ""},
		{"403", status(http.StatusForbidden), syscall.EACCES, "EACCES"},
		{"401", status(http.StatusUnauthorized), syscall.EACCES, "EACCES"},
		{"500", status(http.StatusInternalServerError), syscall.EIO, "EIO"},
		{"400", status(http.StatusBadRequest), syscall.EIO, "EIO"},
		{"plain", errors.New("boom"), syscall.EIO, "EIO"},
		{"deadline", context.DeadlineExceeded, syscall.EIO, "EIO"},
		{"errno", fmt.Errorf("write cache: %w", syscall.ENOSPC), syscall.ENOSPC, "ENOSPC"},
		{"closed", cache.ErrClosed, syscall.EIO, "EIO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			f := &FS{log: zap.New(core), errs: map[string]int64{}}
			if got := f.toErrno("read", tt.err, zap.String("url", "u")); got != tt.want {
				t.Errorf("toErrno(%v) = %v, want %v", tt.err, got, tt.want)
			}
			f.errMu.Lock()
			errs := f.errs
			f.errMu.Unlock()
			if tt.counted == "" {
				if len(errs) != 0 {
					t.Errorf("counted %v, want nothing", errs)
				}
				if logs.Len() != 0 {
					t.Errorf("logged %d lines, want none", logs.Len())
				}
				return
			}
			if len(errs) != 1 || errs[tt.counted] != 1 {
				t.Errorf("counted %v, want %s: 1", errs, tt.counted)
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("logged %d lines, want 1", len(entries))
			}
			ctx := entries[0].ContextMap()
			if entries[0].Message != "read failed" || ctx["url"] != "u" || ctx["errno"] != tt.want.Error() || ctx["error"] != tt.err.Error() {
				t.Errorf("log %q %v", entries[0].Message, ctx)
			}
		})
	}
}

// TestToErrnoCountsInStats: errors returned to readers show in .stats by
// errno name, and accumulate.
func TestToErrnoCountsInStats(t *testing.T) {
	e := newEnv(t)
	for _, err := range []error{errors.New("a"), errors.New("b"), &remote.StatusError{Code: 403}, context.Canceled, remote.ErrNotFound} {
		e.fsys.toErrno("op", err)
	}
	got := e.fsys.Stats().Errors
	if len(got) != 2 || got["EIO"] != 2 || got["EACCES"] != 1 {
		t.Errorf("Stats().Errors = %v, want EIO: 2, EACCES: 1", got)
	}
	if n := e.logs.FilterMessage("op failed").Len(); n != 3 {
		t.Errorf("logged %d failures, want 3", n)
	}
}

func TestErrnoName(t *testing.T) {
	tests := []struct {
		e    syscall.Errno
		want string
	}{
		{syscall.EIO, "EIO"},
		{syscall.EACCES, "EACCES"},
		{syscall.ENOENT, "ENOENT"},
		{syscall.EINTR, "EINTR"},
		{syscall.ENOSPC, "ENOSPC"},
		{syscall.EROFS, syscall.EROFS.Error()},
	}
	for _, tt := range tests {
		if got := errnoName(tt.e); got != tt.want {
			t.Errorf("errnoName(%d) = %q, want %q", tt.e, got, tt.want)
		}
	}
}
