package fs

import (
	"errors"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"go.uber.org/zap"
)

// invalidator sends kernel cache notifications from its own goroutine: a
// notification is a synchronous write to /dev/fuse that can deadlock when
// sent from inside a handler of a related operation.
type invalidator struct {
	log  *zap.Logger
	wait time.Duration
	jobs chan invalJob
	done chan struct{}

	mu     sync.Mutex // protects closed and sending on jobs
	closed bool
}

type invalJob struct {
	dir  *fusefs.Inode
	done chan struct{}
	// listing: drop dir's own listing only (dropListingSoon)
	listing bool
}

func newInvalidator(log *zap.Logger, wait time.Duration) *invalidator {
	iv := &invalidator{log: log, wait: wait, jobs: make(chan invalJob, 64), done: make(chan struct{})}
	go iv.run()
	return iv
}

func (iv *invalidator) run() {
	defer close(iv.done)
	for job := range iv.jobs {
		if job.listing {
			iv.checked("listing invalidation", "", job.dir.NotifyContent(0, 0))
			continue
		}
		iv.dropListings(job.dir)
		for name := range job.dir.Children() {
			iv.checked("entry invalidation", name, job.dir.NotifyEntry(name))
		}
		close(job.done)
	}
}

// dropListings has the kernel drop the listings it keeps (of every
// directory: noOpendir) of dir and of the store and model directories
// below it.
func (iv *invalidator) dropListings(dir *fusefs.Inode) {
	switch n := dir.Operations().(type) {
	case *modelDir:
		iv.checked("listing invalidation", n.name, dir.NotifyContent(0, 0))
	case *rootDir, *storeDir:
		if n, ok := n.(*storeDir); ok {
			iv.checked("listing invalidation", n.st.Name, dir.NotifyContent(0, 0))
		}
		for _, child := range dir.Children() {
			if child.IsDir() {
				iv.dropListings(child)
			}
		}
	}
}

// checked logs a notification's failure. ENOENT: the kernel had nothing
// cached, which is fine; ENOSYS: not mounted (yet, or any more).
func (iv *invalidator) checked(what, name string, errno syscall.Errno) {
	if errno != 0 && !errors.Is(errno, syscall.ENOENT) && !errors.Is(errno, syscall.ENOSYS) {
		iv.log.Debug(what+" failed", zap.String("name", name), zap.Error(errno))
	}
}

// forgetChildren has the kernel drop its cached entries below dir (their
// subtrees go with them) and the listings of model folders there, and
// waits for that a bounded time: long enough
// that the next command sees fresh entries, short enough that a kernel
// waiting on the caller can never deadlock us.
func (iv *invalidator) forgetChildren(dir *fusefs.Inode) {
	job := invalJob{dir: dir, done: make(chan struct{})}
	iv.mu.Lock()
	if iv.closed {
		iv.mu.Unlock()
		return
	}
	select {
	case iv.jobs <- job:
		iv.mu.Unlock()
	default:
		// A burst of refreshes: the kernel's short entry timeout covers it.
		iv.mu.Unlock()
		return
	}
	t := time.NewTimer(iv.wait)
	defer t.Stop()
	select {
	case <-job.done:
	case <-t.C:
		iv.log.Debug("kernel entry invalidation still running")
	}
}

// forgetChildrenLater is forgetChildren without the wait, for callers
// that must not block (a download goroutine); a full queue drops it (the
// kernel's timeouts then cover it).
func (iv *invalidator) forgetChildrenLater(dir *fusefs.Inode) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.closed {
		return
	}
	select {
	case iv.jobs <- invalJob{dir: dir, done: make(chan struct{})}:
	default:
		iv.log.Debug("kernel entry invalidation queue full")
	}
}

// dropListingSoon has the kernel drop the listing of dir it is being
// sent (a failure, shown until the store answers: the kernel keeps every
// listing, see noOpendir), once it has stored it: shortly after, and
// again a second later in case the reader had not run yet.
func (iv *invalidator) dropListingSoon(dir *fusefs.Inode) {
	for _, after := range []time.Duration{50 * time.Millisecond, time.Second} {
		time.AfterFunc(after, func() {
			iv.mu.Lock()
			defer iv.mu.Unlock()
			if iv.closed {
				return
			}
			select {
			case iv.jobs <- invalJob{dir: dir, listing: true}:
			default: // a full queue: the next listing of dir drops it again
			}
		})
	}
}

// close stops the goroutine after the queued jobs.
func (iv *invalidator) close() {
	iv.mu.Lock()
	if !iv.closed {
		iv.closed = true
		close(iv.jobs)
	}
	iv.mu.Unlock()
	<-iv.done
}
