package remotetest

import (
	"fmt"
	"net"
	"sync"
)

// switchListener is a Server's listener: it can stop listening, so that
// clients get connection refused, and listen again on the same address, so
// that a test can take a store down and bring it back under a mount. It
// keeps the connections it accepted, hijacked ones included, to close them
// when it goes down: a connection accepted as it went down could otherwise
// escape httptest's tracking and keep answering.
type switchListener struct {
	addr net.Addr

	mu     sync.Mutex    // protects the fields below
	ln     net.Listener  // nil while down
	up     chan struct{} // closed when listening again or closed
	closed bool
	conns  map[*trackedConn]bool
}

func listen(host string) (*switchListener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("remotetest: listen on %s: %w", host, err)
	}
	return &switchListener{addr: ln.Addr(), ln: ln, up: make(chan struct{}), conns: map[*trackedConn]bool{}}, nil
}

// Accept waits while the listener is down; it fails only once closed, or
// on an error of the listener that is up.
func (l *switchListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		ln, up, closed := l.ln, l.up, l.closed
		l.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		if ln == nil {
			<-up
			continue
		}
		c, err := ln.Accept()
		l.mu.Lock()
		current := l.ln == ln && !l.closed
		if err == nil && current {
			tc := &trackedConn{Conn: c, l: l}
			l.conns[tc] = true
			l.mu.Unlock()
			return tc, nil
		}
		l.mu.Unlock()
		if err == nil {
			c.Close() // accepted as the listener went down
			continue
		}
		if current {
			return nil, err
		}
		// Taken down (or closed) under Accept: look again.
	}
}

// Addr is the address, the same whether up or down.
func (l *switchListener) Addr() net.Addr { return l.addr }

// Close stops listening for good.
func (l *switchListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.ln == nil {
		close(l.up)
		return nil
	}
	return l.ln.Close()
}

// setDown closes the socket (down) or listens again on the same address.
func (l *switchListener) setDown(down bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed || down == (l.ln == nil):
		return nil
	case down:
		err := l.ln.Close()
		l.ln, l.up = nil, make(chan struct{})
		for c := range l.conns {
			c.Conn.Close()
		}
		clear(l.conns)
		return err
	}
	ln, err := net.Listen("tcp", l.addr.String())
	if err != nil {
		return fmt.Errorf("remotetest: listen again on %s: %w", l.addr, err)
	}
	l.ln = ln
	close(l.up)
	return nil
}

// trackedConn is an accepted connection its listener can close.
type trackedConn struct {
	net.Conn
	l *switchListener
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// SetLinger is the TCP connection's (a spoiled answer's reset uses it).
func (c *trackedConn) SetLinger(sec int) error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.SetLinger(sec)
	}
	return nil
}

// BlackHole is a TCP listener on 127.0.0.1 that accepts connections and
// never answers: a store whose host is up and whose server hangs.
type BlackHole struct {
	// Addr is the listener's host:port.
	Addr string

	ln       net.Listener
	mu       sync.Mutex // protects the fields below
	accepted int
	conns    []net.Conn
	closed   bool
}

// NewBlackHole starts a BlackHole; Close stops it.
func NewBlackHole() (*BlackHole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("remotetest: black hole: %w", err)
	}
	b := &BlackHole{Addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.accepted++
			if b.closed {
				c.Close()
			} else {
				b.conns = append(b.conns, c)
			}
			b.mu.Unlock()
		}
	}()
	return b, nil
}

// Accepted returns how many connections were accepted.
func (b *BlackHole) Accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted
}

// Close stops listening and closes every accepted connection.
func (b *BlackHole) Close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, c := range b.conns {
		c.Close()
	}
}
