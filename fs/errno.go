package fs

import (
	"context"
	"errors"
	"net/http"
	"syscall"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

// toErrno is the one place that turns errors into errnos. It logs the
// error (once: callers only return the errno) unless it is a plain
// interruption or absence.
func (f *FS) toErrno(op string, err error, fields ...zap.Field) syscall.Errno {
	if err == nil {
		return 0
	}
	var (
		errno syscall.Errno
		se    *remote.StatusError
	)
	switch {
	case errors.Is(err, context.Canceled):
		// The FUSE request was interrupted; the shared fetch goes on.
		return syscall.EINTR
	case errors.Is(err, cache.ErrNotFound), errors.Is(err, remote.ErrNotFound):
		return syscall.ENOENT
	case errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden):
		errno = syscall.EACCES
	case errors.As(err, &errno):
	default:
		errno = syscall.EIO
	}
	f.log.Warn(op+" failed", append(fields, zap.Error(err), zap.String("errno", errno.Error()))...)
	f.errMu.Lock()
	f.errs[errnoName(errno)]++
	f.errMu.Unlock()
	return errno
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
