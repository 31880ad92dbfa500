package remotetest

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Throttle makes a listener's connections behave like TCP streams over a
// long link: every connection sends at most Rate bytes per second on its
// own, and the first byte of every answer (the first write after the
// connection has read a request) comes FirstByte after the request. More
// connections get more throughput, as with a throttled CDN or a WAN.
type Throttle struct {
	Rate      int64         // bytes per second per connection; 0: unlimited
	FirstByte time.Duration // added before the first byte of each answer
}

// ThrottledListener wraps l; its Accepted count is the number of distinct
// connections clients opened.
type ThrottledListener struct {
	net.Listener
	th       Throttle
	accepted atomic.Int64
}

// Listen wraps l so that each accepted connection follows th.
func (th Throttle) Listen(l net.Listener) *ThrottledListener {
	return &ThrottledListener{Listener: l, th: th}
}

// Accepted is the number of connections accepted so far.
func (l *ThrottledListener) Accepted() int64 { return l.accepted.Load() }

func (l *ThrottledListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return &throttledConn{Conn: c, th: l.th}, nil
}

// throttledConn paces its writes: each chunk is sent once the time the
// link needs for it (at th.Rate) has passed since the previous one. A
// writer that overslept (a loaded machine) catches up by at most
// throttleBurst bytes, so the rate holds on average without ever exceeding
// it by more than that; idle time earns no more credit than that either,
// as a TCP window after idle restarts small.
type throttledConn struct {
	net.Conn
	th Throttle

	mu      sync.Mutex // serializes writes and guards the fields below
	next    time.Time  // when the link is free for the next chunk
	replied bool       // the answer to the last request has started
}

// throttleChunk is how many bytes go out per pacing step; throttleBurst is
// how far ahead of the pace a connection may get after a late wake-up.
const (
	throttleChunk = 32 << 10
	throttleBurst = 256 << 10
)

func (c *throttledConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.replied = false
		c.mu.Unlock()
	}
	return n, err
}

func (c *throttledConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.replied {
		c.replied = true
		if c.th.FirstByte > 0 {
			time.Sleep(c.th.FirstByte)
		}
		c.next = time.Time{}
	}
	if c.th.Rate <= 0 {
		return c.Conn.Write(p)
	}
	written := 0
	for len(p) > 0 {
		k := min(len(p), throttleChunk)
		if earliest := time.Now().Add(-c.linkTime(throttleBurst)); c.next.Before(earliest) {
			c.next = earliest
		}
		c.next = c.next.Add(c.linkTime(k))
		time.Sleep(time.Until(c.next))
		n, err := c.Conn.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// linkTime is how long n bytes take at th.Rate.
func (c *throttledConn) linkTime(n int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / c.th.Rate)
}
