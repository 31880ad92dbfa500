package fs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
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
		// Not interrupted (the request's ctx is live): a cancellation
		// inside the HTTP layer is a failure, never EINTR (issue 13.1).
		{"canceled", context.Canceled, syscall.EIO, "EIO"},
		{"wrapped canceled", fmt.Errorf("GET x: %w", context.Canceled), syscall.EIO, "EIO"},
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
		{"errno", fmt.Errorf("write cache: %w", syscall.ENOSPC), syscall.EIO, "EIO"},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, syscall.EIO, "EIO"},
		{"reset", fmt.Errorf("GET x: %w", syscall.ECONNRESET), syscall.EIO, "EIO"},
		{"permission", fmt.Errorf("open: %w", syscall.EACCES), syscall.EACCES, "EACCES"},
		{"closed", cache.ErrClosed, syscall.EIO, "EIO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			f := &FS{log: zap.New(core), errs: map[string]int64{}}
			if got := f.toErrno(context.Background(), "read", tt.err, zap.String("url", "u")); got != tt.want {
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
	interrupted, cancel := context.WithCancel(context.Background())
	cancel()
	e.fsys.toErrno(interrupted, "op", errors.New("interrupted")) // EINTR: not counted
	for _, err := range []error{errors.New("a"), errors.New("b"), &remote.StatusError{Code: 403}, remote.ErrNotFound} {
		e.fsys.toErrno(context.Background(), "op", err)
	}
	got := e.fsys.Stats().Errors
	if len(got) != 2 || got["EIO"] != 2 || got["EACCES"] != 1 {
		t.Errorf("Stats().Errors = %v, want EIO: 2, EACCES: 1", got)
	}
	if n := e.logs.FilterMessage("op failed").Len(); n != 3 {
		t.Errorf("logged %d failures, want 3", n)
	}
}

// TestToErrnoInterrupted: EINTR only when the FUSE request itself ended,
// whatever the error; not logged, not counted.
func TestToErrnoInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	core, logs := observer.New(zapcore.DebugLevel)
	f := &FS{log: zap.New(core), errs: map[string]int64{}}
	for _, err := range []error{context.Canceled, errors.New("GET x: body stalled"), syscall.ECONNREFUSED} {
		if got := f.toErrno(ctx, "read", err); got != syscall.EINTR {
			t.Errorf("toErrno(interrupted, %v) = %v, want EINTR", err, got)
		}
	}
	if logs.Len() != 0 || len(f.errs) != 0 {
		t.Errorf("interruptions logged (%d) or counted (%v)", logs.Len(), f.errs)
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

// TestPanickedLoggedAndCounted: a handler that panics answers EIO with one
// log line and counts it with the other errnos.
func TestPanickedLoggedAndCounted(t *testing.T) {
	e := newEnv(t)
	if st := e.fsys.panicked("boom"); st != fuse.EIO {
		t.Errorf("panicked = %v, want EIO", st)
	}
	if n := e.logs.FilterMessage("BUG: FUSE handler panicked").Len(); n != 1 {
		t.Errorf("%d log lines, want 1", n)
	}
	if got := e.fsys.Stats().Errors["EIO"]; got != 1 {
		t.Errorf(".stats counts %d EIO, want 1", got)
	}
}
