package fs

import (
	"context"
	"errors"
	"syscall"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// toErrno is the one place that turns errors into errnos. It logs the
// error (once: callers only return the errno) unless it is an interruption
// or an absence.
//
// EINTR is returned only when ctx, the FUSE request's own context, has
// ended: the kernel and the reader asked to stop. An error that merely
// wraps context.Canceled (a request the HTTP layer cancelled itself, a
// download stopped by a stall guard) is a failure, EIO: answering it with
// EINTR would make the kernel and the reader retry the read forever.
// Likewise a network errno (ECONNREFUSED, ECONNRESET, ...) never reaches a
// reader: read(2) callers expect EIO; the log says why.
func (f *FS) toErrno(ctx context.Context, op string, err error, fields ...zap.Field) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	switch {
	case ctx != nil && ctx.Err() != nil:
		// The FUSE request was interrupted; the shared fetch goes on.
		return syscall.EINTR
	case errors.Is(err, cache.ErrNotFound), errors.Is(err, cache.ErrFileNotFound):
		return syscall.ENOENT
	case errors.Is(err, cache.ErrDenied):
		errno = syscall.EACCES
	case errors.As(err, &errno) && passedThrough[errno]:
	default:
		errno = syscall.EIO
	}
	f.log.Warn(op+" failed", append(fields, zap.Error(err), zap.String("errno", errno.Error()))...)
	f.countErrno(errno)
	return errno
}

// countErrno counts an errno returned to a reader (.stats, metrics).
func (f *FS) countErrno(errno syscall.Errno) {
	f.errMu.Lock()
	f.errs[errnoName(errno)]++
	f.errMu.Unlock()
}

// passedThrough are the errnos a filesystem caller can act on; any other
// errno found in an error becomes EIO.
var passedThrough = map[syscall.Errno]bool{
	syscall.ENOENT: true, syscall.EACCES: true, syscall.EPERM: true, syscall.EROFS: true,
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EIO:
		return "EIO"
	case syscall.EACCES:
		return "EACCES"
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.EINTR:
		return "EINTR"
	case syscall.ENOSPC:
		return "ENOSPC"
	}
	return e.Error()
}
