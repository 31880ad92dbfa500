package engine

// The write-behind queue: chunks in memory waiting for their cache file,
// written in order by one writer per cache (the only goroutine that waits
// on the cache disk). The queue is a leaf.

import (
	"os"
	"sync"
)

// writeJob is a chunk in memory waiting for the cache file.
type writeJob struct {
	d *download
	k int
}

type writeQueue struct {
	mu    sync.Mutex // protects jobs
	jobs  []writeJob
	ready chan struct{} // has a value when jobs is not empty
}

func newWriteQueue() *writeQueue { return &writeQueue{ready: make(chan struct{}, 1)} }

func (q *writeQueue) push(d *download, k int) {
	q.mu.Lock()
	q.jobs = append(q.jobs, writeJob{d, k})
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *writeQueue) pop() (writeJob, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.jobs) == 0 {
		return writeJob{}, false
	}
	job := q.jobs[0]
	q.jobs[0] = writeJob{}
	q.jobs = q.jobs[1:]
	return job, true
}

// reclaim frees at least size bytes of buffers queued and not yet
// written, newest first (the writer reaches them last); it returns what
// it freed.
func (q *writeQueue) reclaim(size int64) int64 {
	q.mu.Lock()
	jobs := append([]writeJob(nil), q.jobs...)
	q.mu.Unlock()
	var freed int64
	for i := len(jobs) - 1; i >= 0 && freed < size; i-- {
		if jobs[i].d.reclaim(jobs[i].k) {
			freed += jobs[i].d.chunk
		}
	}
	return freed
}

// writer writes queued chunks into their cache files, in order, until the
// cache closes.
func (s *StreamContent) writer() {
	for {
		job, ok := s.queue.pop()
		if !ok {
			select {
			case <-s.queue.ready:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		buf := job.d.takeForWrite(job.k)
		if buf == nil {
			continue // reclaimed, given up, or failed meanwhile
		}
		write := s.writeAt
		if write == nil {
			write = (*os.File).WriteAt
		}
		_, err := write(job.d.f, buf, int64(job.k)*job.d.chunk)
		job.d.written(job.k, err)
	}
}
