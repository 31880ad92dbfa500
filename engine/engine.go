package engine

import (
	"cmp"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// The byte engine's shared mechanisms (see doc.go for the design):
// the buffer budget, the write-behind queue and its writer, and the
// per-store connection policy.

// ---- buffers ----

// keptFree is how many free buffers of each size are kept for reuse.
const keptFree = 4

// allocBuf returns a buffer of size bytes for a chunk, within the budget,
// or nil. A reader's fetch first makes room: buffers queued for writing
// are reclaimed (their chunks are fetched again later), then memory
// nobody reads now; background work takes only memory that has been idle
// for readerIdle.
func (s *StreamContent) allocBuf(size int64, forReader bool) []byte {
	if b := s.takeBuf(size); b != nil {
		return b
	}
	s.reclaim(size, forReader)
	return s.takeBuf(size)
}

// allocBufWait returns a buffer for a reader's chunk, waiting for the
// budget to have room (nil once ctx ends).
func (s *StreamContent) allocBufWait(ctx context.Context, size int64) []byte {
	for ctx.Err() == nil {
		freed := s.budgetFreed()
		if b := s.allocBuf(size, true); b != nil {
			return b
		}
		select {
		case <-ctx.Done():
		case <-freed:
		}
	}
	return nil
}

func (s *StreamContent) takeBuf(size int64) []byte {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	if s.memUsed+size > s.cfg.BufferBudget {
		return nil
	}
	s.memUsed += size
	if n := len(s.freeBufs); n > 0 && int64(cap(s.freeBufs[n-1])) == size {
		b := s.freeBufs[n-1]
		s.freeBufs = s.freeBufs[:n-1]
		return b[:size]
	}
	return make([]byte, size)
}

// reserveMem counts up to want bytes, in whole units, against the budget
// for pages of files read into memory (pageBuf gives the pages). A
// reader's fetch (wait) gets all of it, waiting for memory to be freed (at
// most until ctx ends); read-ahead gets what fits now. It returns the
// bytes reserved.
func (s *StreamContent) reserveMem(ctx context.Context, want, unit int64, wait bool) int64 {
	try := func(n int64) bool {
		s.poolMu.Lock()
		defer s.poolMu.Unlock()
		if s.memUsed+n > s.cfg.BufferBudget {
			return false
		}
		s.memUsed += n
		return true
	}
	for ctx.Err() == nil {
		freed := s.budgetFreed()
		if try(want) {
			return want
		}
		s.reclaim(want, wait)
		if try(want) {
			return want
		}
		if !wait {
			for n := want - unit; n > 0; n -= unit {
				if try(n) {
					return n
				}
			}
			return 0
		}
		select {
		case <-ctx.Done():
		case <-freed:
		}
	}
	return 0
}

// pageBuf returns a page for memory reserved with reserveMem.
func (s *StreamContent) pageBuf() []byte {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	if n := len(s.freePages); n > 0 {
		b := s.freePages[n-1]
		s.freePages = s.freePages[:n-1]
		return b[:memPageSize]
	}
	return make([]byte, memPageSize)
}

// freeBuf gives a buffer (a chunk's or a page) back and wakes fetches
// waiting for room.
func (s *StreamContent) freeBuf(b []byte) {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	s.memUsed -= int64(cap(b))
	switch int64(cap(b)) {
	case s.cfg.ChunkSize:
		if len(s.freeBufs) < keptFree {
			s.freeBufs = append(s.freeBufs, b)
		}
	case memPageSize:
		if len(s.freePages) < keptFree*(memAheadMax/memPageSize) {
			s.freePages = append(s.freePages, b)
		}
	}
	close(s.freed)
	s.freed = make(chan struct{})
}

// mayReclaim wakes fetches waiting for the budget: memory they may
// reclaim was released (a fetch ended, a reply let its page go).
func (s *StreamContent) mayReclaim() {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	close(s.freed)
	s.freed = make(chan struct{})
}

// budgetFreed is closed the next time buffer memory is freed, or may be
// reclaimed.
func (s *StreamContent) budgetFreed() <-chan struct{} {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	return s.freed
}

// bufferBytes is the memory held in buffers now.
func (s *StreamContent) bufferBytes() int64 {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	return s.memUsed
}

// reclaim frees at least need bytes of memory nobody reads now, if there
// is that much: for a reader, buffers queued for writing and not yet
// written (newest first: the writer reaches them last), then pages of
// files read into memory and chunks of downloads that gave up their cache
// copy, least recently read first; for background work, only pages
// nobody read for readerIdle. It is called with no lock held.
func (s *StreamContent) reclaim(need int64, forReader bool) {
	var freed int64
	if forReader {
		freed = s.reclaimQueued(need)
	}
	if freed >= need {
		return
	}
	s.mu.Lock()
	files := make([]*memFile, 0, len(s.uncached))
	for _, m := range s.uncached {
		files = append(files, m)
	}
	dls := make([]*download, 0, len(s.downloads))
	for d := range s.downloads {
		dls = append(dls, d)
	}
	s.mu.Unlock()
	var olderThan int64
	if !forReader {
		olderThan = time.Now().Add(-readerIdle).UnixNano()
	}
	var pages []pageRef
	for _, m := range files {
		pages = append(pages, m.reclaimable(olderThan)...)
	}
	slices.SortFunc(pages, func(a, b pageRef) int { return cmp.Compare(a.used, b.used) })
	for _, p := range pages {
		if freed >= need {
			return
		}
		freed += p.drop()
	}
	if !forReader {
		return
	}
	for _, d := range dls {
		if freed >= need {
			return
		}
		freed += d.reclaimIdle(need - freed)
	}
}

// reclaimQueued frees at least size bytes of buffers queued for writing
// and not yet written, newest first (the writer reaches them last); it
// returns what it freed.
func (s *StreamContent) reclaimQueued(size int64) int64 {
	s.wmu.Lock()
	jobs := append([]writeJob(nil), s.wqueue...)
	s.wmu.Unlock()
	var freed int64
	for i := len(jobs) - 1; i >= 0 && freed < size; i-- {
		if jobs[i].d.reclaim(jobs[i].k) {
			freed += jobs[i].d.chunk
		}
	}
	return freed
}

// ---- write-behind ----

// writeJob is a chunk in memory waiting for the cache file.
type writeJob struct {
	d *download
	k int
}

func (s *StreamContent) queueWrite(d *download, k int) {
	s.wmu.Lock()
	s.wqueue = append(s.wqueue, writeJob{d, k})
	s.wmu.Unlock()
	select {
	case s.wready <- struct{}{}:
	default:
	}
}

// writer writes queued chunks into their cache files, in order, until the
// cache closes. It is the only goroutine that waits on the cache disk.
func (s *StreamContent) writer() {
	for {
		s.wmu.Lock()
		var job writeJob
		ok := len(s.wqueue) > 0
		if ok {
			job = s.wqueue[0]
			s.wqueue[0] = writeJob{}
			s.wqueue = s.wqueue[1:]
		}
		s.wmu.Unlock()
		if !ok {
			select {
			case <-s.wready:
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

// ---- connection policy ----

// storeSlot counts a stream of store; the returned function ends it.
func (s *StreamContent) storeSlot(st *cache.Store) func() {
	s.polMu.Lock()
	s.storeConn[st]++
	s.polMu.Unlock()
	return func() {
		s.polMu.Lock()
		s.storeConn[st]--
		s.polMu.Unlock()
	}
}

// storeRoom reports whether the store may have one more stream.
func (s *StreamContent) storeRoom(st *cache.Store) bool {
	s.polMu.Lock()
	defer s.polMu.Unlock()
	return s.storeConn[st] < s.cfg.StoreParallel
}

func (s *StreamContent) remembered(st *cache.Store) int {
	s.polMu.Lock()
	defer s.polMu.Unlock()
	return s.storeBest[st]
}

func (s *StreamContent) remember(st *cache.Store, n int) {
	s.polMu.Lock()
	defer s.polMu.Unlock()
	s.storeBest[st] = n
}

// controller decides how many streams one download runs: it doubles them
// while each step pays, and drops the last step when it did not (see
// doc.go). All its methods run with the download's lock held.
type controller struct {
	probing  bool
	target   int // streams wanted
	winStart time.Time
	winBytes int64
	best     float64 // bytes/s with bestAt streams (0: not measured yet)
	bestAt   int
	added    int // streams added by the last step
	// warming: the window after a step is not opened until its new
	// streams have connected (connecting: those whose first bytes have
	// not arrived yet), or ctlWarmUp has passed.
	warming    bool
	connecting int
}

const (
	ctlWindow = 100 * time.Millisecond // measurement window
	ctlWarmUp = 500 * time.Millisecond // at most this long waiting for a step's streams to connect
	// ctlShare: a step pays when each added stream brings at least this
	// share of what each stream brought before it. Less means the streams
	// contend for one bottleneck (the link, the server, or this machine's
	// CPU): on loopback a second stream adds 10-40% to the download and
	// takes that much CPU from the reader. Streams capped each on its own
	// (a long link) bring nearly a full share.
	ctlShare = 0.5
	ctlFull  = 0.8 // "nearly a full share"
)

// pays reports whether going from before streams at rate best to after
// streams at rate is worth its streams.
func pays(best float64, before int, rate float64, after int) bool {
	if best == 0 || before == 0 {
		return true // the first window: nothing to compare with
	}
	perStream := best / float64(before)
	return rate >= best+ctlShare*perStream*float64(after-before)
}

// start runs at the download's first 206: from here on, streams may be
// added. A store that was measured before starts at what worked.
func (c *controller) start(d *download) {
	c.target, c.probing = 1, true
	c.warming, c.connecting = true, 1 // the first stream's first bytes open the first window
	c.winStart = time.Now()
	// From what worked last for the store; probing goes on from there.
	for n := d.s.remembered(d.ref.Store); c.target < n && c.add(d); {
	}
}

// add starts one more stream if the caps and the work allow; the window
// after it waits for the stream to connect.
func (c *controller) add(d *download) bool {
	if c.target >= d.s.cfg.Parallel || d.noCache != nil || !d.s.storeRoom(d.ref.Store) {
		return false
	}
	if _, _, ok := d.pickLocked(); !ok {
		return false
	}
	c.target++
	c.warming = true
	c.connecting++
	c.winStart = time.Now()
	d.spawn()
	return true
}

// connected runs when a GET's first bytes arrive.
func (c *controller) connected() {
	if c.connecting > 0 {
		c.connecting--
	}
}

// observe runs after each piece received; it opens the window once the
// last step's streams are up, closes it after ctlWindow, and decides.
func (c *controller) observe(d *download) {
	if !c.probing {
		return
	}
	now := time.Now()
	dt := now.Sub(c.winStart)
	if c.warming {
		if c.connecting == 0 || dt >= ctlWarmUp { // the measured window starts now
			c.warming, c.connecting = false, 0
			c.winStart, c.winBytes = now, d.bytesIn
		}
		return
	}
	if dt < ctlWindow/2 {
		return
	}
	rate := float64(d.bytesIn-c.winBytes) / dt.Seconds()
	// A clear gain (or the first measure) is taken after half a window;
	// a step is judged unpaid only after a whole one.
	full := c.best == 0 || rate >= c.best*(1+ctlFull*float64(c.target-c.bestAt)/float64(c.bestAt))
	if dt < ctlWindow && !full {
		return
	}
	c.winStart, c.winBytes = now, d.bytesIn
	if !pays(c.best, c.bestAt, rate, c.target) {
		// The last step did not pay: stop its streams at their next chunk.
		d.log.Debug("the last streams did not pay", zap.Int("streams", c.target), zap.Float64("MBps", rate/1e6),
			zap.Int("before", c.bestAt), zap.Float64("before_MBps", c.best/1e6))
		c.target -= c.added
		d.stop += c.added
		c.settle(d)
		return
	}
	d.log.Debug("streams pay", zap.Int("streams", c.target), zap.Float64("MBps", rate/1e6),
		zap.Int("before", c.bestAt), zap.Float64("before_MBps", c.best/1e6))
	// Slow start: a long link needs many streams, and each step costs a
	// window. The first step and a step whose streams each brought nearly
	// a full share (streams capped each on its own) quadruple the
	// streams; others double them.
	more := c.target
	if full {
		more = 3 * c.target
	}
	c.best, c.bestAt = rate, c.target
	c.added = 0
	for range more {
		if !c.add(d) {
			break
		}
		c.added++
	}
	if c.added == 0 {
		c.settle(d)
	}
}

// end runs when the download's streams are over: a probe cut short by the
// end of the file still tells what worked.
func (c *controller) end(d *download) {
	if c.probing {
		c.settle(d)
	}
}

func (c *controller) settle(d *download) {
	c.probing = false
	d.s.remember(d.ref.Store, c.target)
}

// ---- the cache disk ----

// diskBusy reports whether the system has so much dirty data waiting to be
// written back that writes into the cache file would be throttled (the
// kernel holds writers in balance_dirty_pages above half-way between the
// background threshold and the dirty limit): then chunks go through memory
// and are written behind, so that readers never wait for the disk. The
// answer is kept for a moment (it reads /proc/meminfo).
func (s *StreamContent) diskBusy() bool {
	if s.busyHook != nil {
		return s.busyHook()
	}
	if s.cfg.WriteBehind {
		return true
	}
	now := time.Now().UnixNano()
	if last := s.busyAt.Load(); now-last < int64(100*time.Millisecond) {
		return s.busy.Load()
	}
	s.busyAt.Store(now)
	busy := dirtyBytes() > dirtyThreshold()
	s.busy.Store(busy)
	return busy
}

// dirtyBytes is the data waiting for or under writeback, system-wide.
func dirtyBytes() int64 {
	m := meminfo("Dirty", "Writeback")
	return m["Dirty"] + m["Writeback"]
}

// dirtyThreshold is three quarters of the point where the kernel starts
// throttling writers (balance_dirty_pages' "freerun": half-way between the
// background writeback threshold and the dirty limit): past it, writes into
// the cache file would soon wait for the disk.
func dirtyThreshold() int64 {
	avail := meminfo("MemAvailable")["MemAvailable"]
	limit := func(bytesFile, ratioFile string, defRatio int64) int64 {
		if b := readInt(bytesFile); b > 0 {
			return b
		}
		ratio := readInt(ratioFile)
		if ratio <= 0 {
			ratio = defRatio
		}
		return avail * ratio / 100
	}
	if avail <= 0 {
		return 256 << 20
	}
	bg := limit("/proc/sys/vm/dirty_background_bytes", "/proc/sys/vm/dirty_background_ratio", 10)
	hard := limit("/proc/sys/vm/dirty_bytes", "/proc/sys/vm/dirty_ratio", 20)
	freerun := (bg + hard) / 2
	return max(freerun*3/4, 64<<20)
}

// meminfo reads the named /proc/meminfo fields, in bytes.
func meminfo(names ...string) map[string]int64 {
	out := map[string]int64{}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) > 0 {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[name] = kb << 10
			}
		}
	}
	return out
}

func readInt(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}
