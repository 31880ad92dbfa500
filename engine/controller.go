package engine

import (
	"time"

	"go.uber.org/zap"
)

// The stream controller: how many streams one download runs (see doc.go).

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
	for n := d.s.policy.remembered(d.ref.Store); c.target < n && c.add(d); {
	}
}

// add starts one more stream if the caps and the work allow; the window
// after it waits for the stream to connect.
func (c *controller) add(d *download) bool {
	if c.target >= d.s.cfg.Parallel || d.noCache != nil || !d.s.policy.room(d.ref.Store) {
		return false
	}
	if _, _, ok := d.pickLocked(); !ok {
		return false
	}
	c.target++
	c.warming = true
	c.connecting++
	c.winStart = time.Now()
	d.fetch.spawn()
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
			c.winStart, c.winBytes = now, d.fetch.bytesIn
		}
		return
	}
	if dt < ctlWindow/2 {
		return
	}
	rate := float64(d.fetch.bytesIn-c.winBytes) / dt.Seconds()
	// A clear gain (or the first measure) is taken after half a window;
	// a step is judged unpaid only after a whole one.
	full := c.best == 0 || rate >= c.best*(1+ctlFull*float64(c.target-c.bestAt)/float64(c.bestAt))
	if dt < ctlWindow && !full {
		return
	}
	c.winStart, c.winBytes = now, d.fetch.bytesIn
	if !pays(c.best, c.bestAt, rate, c.target) {
		// The last step did not pay: stop its streams at their next chunk.
		d.log.Debug("the last streams did not pay", zap.Int("streams", c.target), zap.Float64("MBps", rate/1e6),
			zap.Int("before", c.bestAt), zap.Float64("before_MBps", c.best/1e6))
		c.target -= c.added
		d.fetch.stop += c.added
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
	d.s.policy.remember(d.ref.Store, c.target)
}
