package engine

// What every fetch of a file's bytes shares, whichever path it feeds:
// the validated ranged GET and the retry policy.

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote"
)

// getRange is a validated ranged GET of ref. When the server says the
// file changed, it first asks whether the store merely changes its ETag on
// every request; if so (logged once per store), the GET is sent again,
// now as one whole stream checked by size and date.
func getRange(ctx context.Context, ref cache.Ref, log *zap.Logger, off, n int64) (*remote.Body, error) {
	rs := ref.Store.Remote
	body, err := rs.GetRange(ctx, ref.Meta, off, n, ref.Model, ref.Name)
	if !errors.Is(err, remote.ErrChanged) {
		return body, err
	}
	marked, perr := rs.ProbeUnstableETag(ctx, ref.Meta, ref.Model, ref.Name)
	if perr != nil || (!marked && !rs.ETagUnstable()) {
		return nil, err
	}
	if marked {
		log.Warn("the store sends a new ETag on every request: its files are read as one whole stream each, checked by size and date",
			zap.String("store", ref.Store.Name))
	}
	return rs.GetRange(ctx, ref.Meta, off, n, ref.Model, ref.Name)
}

// retrier decides when a file's failed fetches are final. Its owner's
// lock protects it.
type retrier struct {
	window   time.Duration
	failures int
	progress time.Time
}

func newRetrier(window time.Duration) retrier {
	return retrier{window: window, progress: time.Now()}
}

// progressed records bytes that landed: the failures so far are forgiven.
func (r *retrier) progressed() { r.progress, r.failures = time.Now(), 0 }

// terminal records a failed fetch and reports whether it is final: a
// changed or gone file, the owner's shutdown, or no progress for the
// retry window. A failing server gets the window, and at least one retry:
// a single stall can last as long as the window itself. Only the owner's
// own context ending is a shutdown: an error that merely wraps
// context.Canceled (a request the HTTP layer cancelled itself) is a
// failure like any other, retried.
func (r *retrier) terminal(ctx context.Context, err error) bool {
	r.failures++
	return ctx.Err() != nil || errors.Is(err, remote.ErrChanged) || errors.Is(err, remote.ErrNotFound) ||
		(r.failures > 1 && time.Since(r.progress) > r.window)
}

// backoff is how long to wait before the next attempt after failures.
func (r *retrier) backoff() time.Duration {
	d := 250 * time.Millisecond
	for i := 1; i < r.failures && d < 5*time.Second; i++ {
		d *= 2
	}
	return min(d, 5*time.Second)
}
