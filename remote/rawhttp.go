package remote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The zero-copy path: ranged GETs of plain-http stores (no proxy) are sent
// on connections of our own, so that the body can be spliced from the
// socket straight into the cache file without passing through this
// process's memory. On this kind of machine that is the difference between
// about 1 GB/s and 2.5 GB/s on loopback. Anything unusual (a redirect,
// chunked encoding, a proxy, TLS) takes the net/http path instead.

// rawConn is one keep-alive connection of the zero-copy path.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
	// idleSince is when the connection went back to the pool.
	idleSince time.Time
}

// errNoFastPath sends a request down the net/http path.
var errNoFastPath = errors.New("zero-copy path not applicable")

const (
	// maxIdleRaw bounds the idle connections kept per store.
	maxIdleRaw = 16
	// maxRawIdleAge bounds how long a connection waits in the pool. Servers
	// close idle keep-alive connections after a while of their own (nginx
	// 75 s by default, often set to a few seconds, Apache 5 s), and a
	// request sent as the server closes is lost. Below any usual server
	// timeout, this keeps that race rare; a new connection costs one round
	// trip, and after a pause a kept one restarts slowly anyway (TCP slow
	// start after idle).
	maxRawIdleAge = time.Second
)

func (s *Store) fastPathOK() bool {
	if s.base.Scheme != "http" || s.opt.Transport != nil {
		return false
	}
	req := &http.Request{URL: s.base}
	proxy, err := http.ProxyFromEnvironment(req)
	return err == nil && proxy == nil
}

// getRaw returns an idle connection that is still usable, or a new one
// (always a new one with fresh set). reused tells which.
func (s *Store) getRaw(ctx context.Context, fresh bool) (rc *rawConn, reused bool, err error) {
	if !fresh {
		if rc := s.takeIdle(); rc != nil {
			return rc, true, nil
		}
	}
	d := net.Dialer{Timeout: s.opt.ConnectTimeout, KeepAlive: 30 * time.Second}
	host := s.base.Host
	if s.base.Port() == "" {
		host = net.JoinHostPort(s.base.Hostname(), "80")
	}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	return &rawConn{c: c, br: bufio.NewReaderSize(c, 64<<10)}, false, nil
}

// takeIdle returns a pooled connection that is young enough and still
// open, closing the others it meets; nil when there is none.
func (s *Store) takeIdle() *rawConn {
	for {
		select {
		case rc := <-s.idle:
			if time.Since(rc.idleSince) < s.rawIdleAge && rc.usable() {
				return rc
			}
			rc.c.Close()
		default:
			return nil
		}
	}
}

// usable reports whether an idle connection can carry a request. A server
// sends nothing unasked on an idle connection but its close (or a 408 before
// it), so anything to read, or the end of the stream, means no. net/http
// learns the same from a reader goroutine per connection; a non-blocking
// peek at the socket needs none.
func (rc *rawConn) usable() bool {
	if rc.br.Buffered() > 0 {
		return false
	}
	sc, ok := rc.c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		quiet = rerr == unix.EAGAIN // open, nothing to read; 0 bytes would be EOF
		return true                 // never wait for the socket
	})
	return err == nil && quiet
}

func (s *Store) putRaw(rc *rawConn) {
	_ = rc.c.SetDeadline(time.Time{})
	rc.idleSince = time.Now()
	select {
	case s.idle <- rc:
	default:
		rc.c.Close()
	}
}

// staleConn reports whether a request that got no byte of an answer on a
// reused connection met a connection the server had closed (or closed as
// the request arrived): its end of stream or reset, not a timeout or the
// caller giving up.
func staleConn(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) &&
		(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
			errors.Is(err, syscall.ECONNABORTED))
}

// getRangeRaw is GetRange on the zero-copy path. It returns errNoFastPath
// when the answer needs the net/http path (the connection is then closed).
// The returned response's body owns the connection: a *rawBody when the
// length is known, else a guarded reader of the chunked body.
func (s *Store) getRangeRaw(ctx context.Context, u string, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", s.opt.UserAgent)
	if s.auth != nil { // this path only ever talks to the base's own origin
		s.auth.add(req)
	}
	release := s.acquireConn(ctx)
	defer release()
	rc, resp, err := s.sendRaw(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.rawAnswer(ctx, u, rc, resp)
}

// sendRaw sends req on a raw connection and reads the answer's header.
// A connection from the pool may have been closed by the server just as
// the request went out (its keep-alive timeout). A request that got no
// byte of an answer there is sent again at once on a new connection (GET
// is idempotent), and is neither a failure nor an attempt: the server did
// not answer it. Anything else, and any failure on a new connection, is
// the caller's to retry, after a backoff.
func (s *Store) sendRaw(ctx context.Context, req *http.Request) (*rawConn, *http.Response, error) {
	for fresh := false; ; fresh = true {
		rc, reused, err := s.getRaw(ctx, fresh)
		if err != nil {
			return nil, nil, err
		}
		_ = rc.c.SetDeadline(time.Now().Add(s.opt.HeaderTimeout))
		stop := context.AfterFunc(ctx, func() { _ = rc.c.SetDeadline(time.Unix(1, 0)) })
		err = req.Write(rc.c)
		answered := false
		var resp *http.Response
		if err == nil {
			if _, err = rc.br.Peek(1); err == nil {
				answered = true
				resp, err = http.ReadResponse(rc.br, req)
			}
		}
		if !stop() {
			err = ctx.Err()
		}
		if err != nil && reused && !answered && staleConn(ctx, err) {
			rc.c.Close()
			continue
		}
		s.requests.Add(1)
		s.noteOutcome(ctx, http.MethodGet, resp, err)
		if err != nil {
			rc.c.Close()
			return nil, nil, err
		}
		return rc, resp, nil
	}
}

// rawAnswer checks an answer on the raw path and gives its body the
// connection. From here on every early return closes the connection
// before the body: net/http's Close drains a body it did not see the end
// of, which on a short or endless body waits for the deadline.
func (s *Store) rawAnswer(ctx context.Context, u string, rc *rawConn, resp *http.Response) (*http.Response, error) {
	discard := func() {
		rc.c.Close()
		resp.Body.Close()
	}
	if se := (&StatusError{Method: http.MethodGet, URL: u, Code: resp.StatusCode}); resp.StatusCode >= 400 {
		// Final ones (404, 403...) are final on any path. Temporary ones
		// go to the net/http path for its retries, after the server's
		// Retry-After if it gave one.
		discard()
		if !se.temporary() {
			return nil, se
		}
		if after := parseRetryAfter(resp.Header.Get("Retry-After")); after > 0 {
			t := time.NewTimer(min(after, s.opt.MaxBackoff))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		return nil, errNoFastPath
	}
	if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
		discard() // redirects and the like: the net/http path knows them
		return nil, errNoFastPath
	}
	s.noteKeepAlive(resp)
	if len(resp.TransferEncoding) > 0 || resp.ContentLength < 0 {
		// Chunked (or delimited by close): read through net/http's
		// decoder, each read bounded by the stall timeout, and never reuse
		// the connection. Fetching it again on the other path would cost a
		// second GET of the same bytes.
		resp.Body = &rawStream{s: s, rc: rc, body: resp.Body, ctx: ctx, url: u, stall: s.opt.StallTimeout}
		return resp, nil
	}
	resp.Body = &rawBody{s: s, rc: rc, ctx: ctx, left: resp.ContentLength, url: u, stall: s.opt.StallTimeout, lastOnConn: resp.Close}
	return resp, nil
}

// rawBody reads a response body of known length from a raw connection,
// by Read or by splicing into a file. Each step is bounded by the stall
// timeout; the connection goes back to the pool when the body was read to
// its end.
type rawBody struct {
	s     *Store
	rc    *rawConn
	ctx   context.Context
	left  int64
	url   string
	err   error
	stall time.Duration
	// lastOnConn: the server closes the connection after this response.
	lastOnConn bool
}

// guard arms the stall deadline and ctx cancellation for one step.
func (b *rawBody) guard() func() bool {
	_ = b.rc.c.SetReadDeadline(time.Now().Add(b.stall))
	return context.AfterFunc(b.ctx, func() { _ = b.rc.c.SetReadDeadline(time.Unix(1, 0)) })
}

func (b *rawBody) fail(err error) error {
	if b.ctx.Err() != nil {
		err = b.ctx.Err()
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: no data for %s", ErrStalled, b.stall)
	}
	b.err = fmt.Errorf("GET %s: %w", b.url, err)
	return b.err
}

func (b *rawBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	stop := b.guard()
	n, err := b.rc.br.Read(p)
	stop()
	b.left -= int64(n)
	b.s.bytes.Add(int64(n))
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		return n, b.fail(err)
	}
	return n, nil
}

// spliceTo moves the next n bytes into the file at path, offset off.
func (b *rawBody) spliceTo(path string, off, n int64) error {
	if b.err != nil {
		return b.err
	}
	if n > b.left {
		return fmt.Errorf("GET %s: asked %d bytes, %d left in the body", b.url, n, b.left)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDestination, err)
	}
	defer f.Close()
	// What bufio already holds goes first, then the socket is spliced.
	if buffered := min(int64(b.rc.br.Buffered()), n); buffered > 0 {
		head, _ := b.rc.br.Peek(int(buffered))
		if _, err := f.WriteAt(head, off); err != nil {
			return fmt.Errorf("%w: %w", ErrDestination, err)
		}
		_, _ = b.rc.br.Discard(int(buffered))
		b.s.bytes.Add(buffered)
		off, n, b.left = off+buffered, n-buffered, b.left-buffered
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("%w: %w", ErrDestination, err)
	}
	const piece = 8 << 20 // the stall deadline is re-armed per piece
	for n > 0 {
		step := min(n, piece)
		stop := b.guard()
		m, err := f.ReadFrom(io.LimitReader(b.rc.c, step))
		stop()
		b.s.bytes.Add(m)
		n, b.left = n-m, b.left-m
		if err == nil && m < step {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return b.fail(err)
		}
	}
	return nil
}

func (b *rawBody) Close() error {
	if b.err == nil && b.left == 0 && !b.lastOnConn {
		b.s.putRaw(b.rc)
	} else {
		b.rc.c.Close()
	}
	b.err = errors.New("body closed")
	return nil
}

// rawStream reads a body of unknown length (chunked) from a raw
// connection, each read bounded by the stall timeout. The connection is
// closed, never reused, when the body is closed.
type rawStream struct {
	s     *Store
	rc    *rawConn
	body  io.ReadCloser
	ctx   context.Context
	url   string
	stall time.Duration
	err   error
}

func (b *rawStream) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	_ = b.rc.c.SetReadDeadline(time.Now().Add(b.stall))
	stop := context.AfterFunc(b.ctx, func() { _ = b.rc.c.SetReadDeadline(time.Unix(1, 0)) })
	n, err := b.body.Read(p)
	stop()
	b.s.bytes.Add(int64(n))
	if err != nil && err != io.EOF {
		switch {
		case b.ctx.Err() != nil:
			err = b.ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("%w: no data for %s", ErrStalled, b.stall)
		}
		b.err = fmt.Errorf("GET %s: %w", b.url, err)
		return n, b.err
	}
	return n, err
}

func (b *rawStream) Close() error {
	b.rc.c.Close() // first: the body's Close would drain it
	b.body.Close()
	b.err = errors.New("body closed")
	return nil
}
