package remote

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrNotFound is wrapped by errors for a 404 or 410 answer.
var ErrNotFound = errors.New("not found")

// ErrDenied is wrapped by errors for a 401 or 403 answer.
var ErrDenied = errors.New("access denied")

// StatusError is an unexpected HTTP status for a URL.
type StatusError struct {
	Method string
	URL    string
	Code   int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d %s", e.Method, e.URL, e.Code, http.StatusText(e.Code))
}

// Is makes errors.Is(err, ErrNotFound) true for 404 and 410, and
// errors.Is(err, ErrDenied) for 401 and 403.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == http.StatusNotFound || e.Code == http.StatusGone
	case ErrDenied:
		return e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden
	}
	return false
}

// temporary reports whether a retry may give another answer.
func (e *StatusError) temporary() bool {
	switch e.Code {
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false // the same request will be refused again
	}
	return e.Code >= 500 || e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout
}

// ErrStalled is wrapped by errors for a body that made no progress within
// the stall timeout. It never wraps context.Canceled: the request was
// cancelled by the guard, not by the caller.
var ErrStalled = errors.New("body stalled")

// ErrDestination is wrapped by errors of Body.CopyTo that come from the
// file written to, not from the network.
var ErrDestination = errors.New("writing the destination file")
