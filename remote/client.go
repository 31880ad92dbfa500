package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Options tune a Store's HTTP behaviour. The zero value gives the defaults.
type Options struct {
	// Transport replaces the tuned default transport (tests, proxies).
	Transport http.RoundTripper
	// ConnectTimeout bounds dialing and the TLS handshake (default 10s).
	ConnectTimeout time.Duration
	// HeaderTimeout bounds the wait for response headers (default 30s).
	HeaderTimeout time.Duration
	// StallTimeout aborts a body that makes no progress for this long (default 30s).
	StallTimeout time.Duration
	// Retries is how many times a failed request is retried (default 3; negative: none).
	Retries int
	// Backoff is the first retry delay, doubled each time up to MaxBackoff
	// (defaults 250ms and 5s).
	Backoff, MaxBackoff time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// RootCAs, when set, replaces the system's CAs for TLS verification
	// (a private CA). TLS is always verified.
	RootCAs *x509.CertPool
	// Header is sent with every request to the base URL's exact origin
	// (e.g. Authorization: Bearer ...), never after a redirect to another
	// one; keys in canonical form. It wins over the URL's userinfo.
	Header http.Header
	// Certificates are TLS client certificates, for a store (or its
	// proxy) that asks for one.
	Certificates []tls.Certificate
}

func (o Options) withDefaults() Options {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = 30 * time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 3
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "modelstorefs"
	}
	return o
}

// NewTransport returns the HTTP transport a Store uses by default: keep-alive
// connections (many per host, for parallel HEADs and ranged GETs), proxies
// from the environment, and bounded connect and header waits.
func NewTransport(o Options) *http.Transport {
	o = o.withDefaults()
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.HeaderTimeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, Certificates: o.Certificates, MinVersion: tls.VersionTLS12},
		// Content is stored byte-exact; a transparently gunzipped body would
		// not match Content-Length.
		DisableCompression: true,
	}
}

// Store is the HTTP client of one model store base URL. It is safe for
// concurrent use.
type Store struct {
	base     *url.URL // always ends in "/"
	hc       *http.Client
	opt      Options
	requests atomic.Int64
	bytes    atomic.Int64 // body bytes received
	ranges   atomic.Int32 // RangeUnknown, RangeYes or RangeNo
	// auth holds the base URL's credentials, taken out of every URL (so
	// they never reach a log line), and Options.Header. They are added
	// below the redirect logic, and only to requests for the base's exact
	// origin; nil when there are none.
	auth *originAuth
	// etagUnstable: the store sends a new ETag on every request for the
	// same bytes; versions are then judged by size and date only.
	etagUnstable atomic.Bool
	fast         bool          // ranged GETs may take the zero-copy path
	idle         chan *rawConn // its idle connections
	rawIdleAge   time.Duration // how long they may wait (maxRawIdleAge; tests)

	// A server without keep-alive (python's http.server speaks HTTP/1.0)
	// takes a new connection per request, and its listen backlog is small
	// (5): a burst of connects overflows it and costs a 1 s SYN retry
	// each. Once such a server is seen, its requests go a few at a time.
	oneShot  atomic.Bool
	oneSlots chan struct{}

	outcomes outcomes // by method and status class, for metrics

	// Pushback: answers 429 or 503 seen, and the latest Retry-After
	// (Unix nanoseconds), for callers that pace their own requests.
	pushbacks  atomic.Int64
	retryAfter atomic.Int64
}

// Pushback returns how many 429 and 503 answers the store gave, and until
// when its latest Retry-After asked to wait (zero when it gave none).
func (s *Store) Pushback() (int64, time.Time) {
	var until time.Time
	if ns := s.retryAfter.Load(); ns > 0 {
		until = time.Unix(0, ns)
	}
	return s.pushbacks.Load(), until
}

// notePushback records a 429 or 503 and its Retry-After.
func (s *Store) notePushback(after time.Duration) {
	s.pushbacks.Add(1)
	if after <= 0 {
		return
	}
	until := time.Now().Add(after).UnixNano()
	for {
		cur := s.retryAfter.Load()
		if cur >= until || s.retryAfter.CompareAndSwap(cur, until) {
			return
		}
	}
}

// oneShotParallel bounds the requests in flight to a server that closes
// every connection.
const oneShotParallel = 4

// noteKeepAlive records a server that closes connections after a response.
func (s *Store) noteKeepAlive(resp *http.Response) {
	if resp.Close || !resp.ProtoAtLeast(1, 1) {
		s.oneShot.Store(true)
	}
}

// acquireConn takes a request slot when the server needs pacing; the
// returned function gives it back.
func (s *Store) acquireConn(ctx context.Context) func() {
	if !s.oneShot.Load() {
		return func() {}
	}
	select {
	case s.oneSlots <- struct{}{}:
		return func() { <-s.oneSlots }
	case <-ctx.Done():
		return func() {}
	}
}

// Meta is what the server says about a file without its body.
type Meta struct {
	Size         int64  // -1 when the server did not say
	ETag         string // as sent, quotes included
	LastModified string // as sent (HTTP date)
	// Digest is the file's checksum as the store states it (headers of
	// its answers, or its SHA256SUMS); zero when it states none.
	Digest Digest
	// DigestFrom says where Digest came from when not from the answers'
	// headers (remote.SumsFile), for messages.
	DigestFrom string `json:",omitempty"`
	// Hint: Size comes from a listing that gives no validator (nginx's
	// HTML listing): it tells the size to show, not which version to
	// read; a HEAD must tell that first.
	Hint bool `json:",omitempty"`
}

// ModTime parses LastModified; zero when absent or malformed.
func (m Meta) ModTime() time.Time {
	t, err := http.ParseTime(m.LastModified)
	if err != nil {
		return time.Time{}
	}
	return t
}

// SameVersion reports whether two Metas describe the same content, judged by
// the strongest validator both carry.
func (m Meta) SameVersion(o Meta) bool {
	if m.Size >= 0 && o.Size >= 0 && m.Size != o.Size {
		return false
	}
	if m.Digest.Alg != "" && m.Digest.Alg == o.Digest.Alg && m.Digest.Sum != o.Digest.Sum {
		return false
	}
	if m.ETag != "" && o.ETag != "" {
		return m.ETag == o.ETag
	}
	if m.LastModified != "" && o.LastModified != "" {
		return m.LastModified == o.LastModified
	}
	return true
}

// ErrNotModified is returned by conditional requests answered with 304.
var ErrNotModified = errors.New("not modified")

// NewStore parses base (http or https) and returns its client.
func NewStore(base string, opt Options) (*Store, error) {
	u, err := ParseBaseURL(base)
	if err != nil {
		return nil, err
	}
	opt = opt.withDefaults()
	rt := opt.Transport
	if rt == nil {
		rt = NewTransport(opt)
	}
	var auth *originAuth
	if u.User != nil || len(opt.Header) > 0 {
		auth = &originAuth{next: rt, origin: originOf(u), auth: u.User, header: opt.Header}
		rt = auth
	}
	u.User = nil
	hc := &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	s := &Store{base: u, hc: hc, opt: opt, auth: auth, idle: make(chan *rawConn, maxIdleRaw),
		rawIdleAge: maxRawIdleAge, oneSlots: make(chan struct{}, oneShotParallel)}
	s.fast = s.fastPathOK()
	return s, nil
}

// ParseBaseURL validates a store URL: http or https, a host, no query or
// fragment. The returned URL's path ends in "/".
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("store URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("store URL %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("store URL %q: no host", s)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(s, "#") {
		return nil, fmt.Errorf("store URL %q: must not have a query or fragment", s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return u, nil
}

// errRedirect marks a redirect that was refused; it is never retried.
var errRedirect = errors.New("redirect refused")

// checkRedirect follows at most 5 redirects and only to http or https.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return fmt.Errorf("%w: stopped after %d redirects", errRedirect, len(via))
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: to %q scheme", errRedirect, req.URL.Scheme)
	}
	return nil
}

// Base returns the store's base URL (ending in "/").
func (s *Store) Base() *url.URL { u := *s.base; return &u }

// Requests returns how many HTTP requests (attempts) this Store has sent.
func (s *Store) Requests() int64 { return s.requests.Load() }

// BytesReceived returns how many body bytes this Store has received.
func (s *Store) BytesReceived() int64 { return s.bytes.Load() }

// URL returns the URL of a path below the base, one escaped segment per
// element: URL("my model", "info.json") -> base + "my%20model/info.json".
// Segments never contain "/" (callers validate names), so the result always
// stays below the base.
func (s *Store) URL(segments ...string) string {
	esc := make([]string, len(segments))
	for i, seg := range segments {
		esc[i] = url.PathEscape(seg)
	}
	return s.base.String() + strings.Join(esc, "/")
}

// request describes one logical request, retried as a whole.
type request struct {
	method string
	url    string
	header http.Header
}

// do sends r with retries and returns a response whose body is guarded by
// the stall timeout; closing the body releases everything. Non-2xx statuses
// other than 304 are returned as *StatusError (after retries for 5xx/429).
func (s *Store) do(ctx context.Context, r request) (*http.Response, error) {
	delay := s.opt.Backoff
	for attempt := 0; ; attempt++ {
		resp, err := s.once(ctx, r)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil || attempt >= s.opt.Retries || !retryable(err) {
			return nil, err
		}
		// Jitter on the exponential step keeps many clients apart; a
		// server's Retry-After is honoured as given (up to MaxBackoff).
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		var se *retryAfterError
		if errors.As(err, &se) && se.after > 0 {
			wait = min(se.after, s.opt.MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s %s: %w (after %d attempts: %v)", r.method, r.url, ctx.Err(), attempt+1, err)
		case <-t.C:
		}
		delay = min(delay*2, s.opt.MaxBackoff)
	}
}

// retryAfterError carries a server's Retry-After with a retryable status.
type retryAfterError struct {
	*StatusError
	after time.Duration
}

func (e *retryAfterError) Unwrap() error { return e.StatusError }

func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.temporary()
	}
	// Redirect policy refusals are final; transport failures are not.
	return !errors.Is(err, errRedirect)
}

func (s *Store) once(ctx context.Context, r request) (*http.Response, error) {
	reqCtx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(reqCtx, r.method, r.url, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", r.method, r.url, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", s.opt.UserAgent)
	// An S3 bucket behind the store states its checksums only when asked.
	req.Header.Set("X-Amz-Checksum-Mode", "ENABLED")
	s.requests.Add(1)
	release := s.acquireConn(ctx)
	resp, err := s.hc.Do(req)
	release() // paces connection setup, not the body
	s.noteOutcome(ctx, r.method, resp, err)
	if err != nil {
		cancel()
		if errors.Is(err, errRedirect) {
			return nil, fmt.Errorf("%s %s: %w", r.method, r.url, err)
		}
		return nil, err // *url.Error already names method and URL
	}
	s.noteKeepAlive(resp)
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
		resp.Body = newStallGuard(resp.Body, s.opt.StallTimeout, cancel, &s.bytes)
		return resp, nil
	}
	// Drain a little so the connection can be reused, then report.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	cancel()
	se := &StatusError{Method: r.method, URL: r.url, Code: resp.StatusCode}
	after := parseRetryAfter(resp.Header.Get("Retry-After"))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		s.notePushback(after)
	}
	if after > 0 {
		return nil, &retryAfterError{StatusError: se, after: after}
	}
	return nil, se
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// stallGuard cancels a request whose body makes no progress for a while.
type stallGuard struct {
	rc      io.ReadCloser
	counter *atomic.Int64
	d       time.Duration
	timer   *time.Timer
	cancel  context.CancelFunc
	stalled atomic.Bool
}

func newStallGuard(rc io.ReadCloser, d time.Duration, cancel context.CancelFunc, counter *atomic.Int64) *stallGuard {
	g := &stallGuard{rc: rc, d: d, cancel: cancel, counter: counter}
	g.timer = time.AfterFunc(d, func() { g.stalled.Store(true); cancel() })
	return g
}

func (g *stallGuard) Read(p []byte) (int, error) {
	n, err := g.rc.Read(p)
	if n > 0 {
		g.timer.Reset(g.d)
		g.counter.Add(int64(n))
	}
	if err != nil && err != io.EOF && g.stalled.Load() {
		// The cancellation was ours, not the caller's: report a stall, not
		// a context.Canceled that callers take for an interrupted reader.
		err = fmt.Errorf("%w: no data for %s (%v)", ErrStalled, g.d, err)
	}
	return n, err
}

func (g *stallGuard) Close() error {
	g.timer.Stop()
	err := g.rc.Close()
	g.cancel()
	return err
}

// metaOf reads size and validators from a response.
func metaOf(resp *http.Response) Meta {
	return Meta{
		Size:         resp.ContentLength,
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		Digest:       digestOf(resp.Header),
	}
}

// conditional returns headers that ask "changed since prev?".
func conditional(prev *Meta) http.Header {
	h := http.Header{}
	if prev == nil {
		return h
	}
	if prev.ETag != "" {
		h.Set("If-None-Match", prev.ETag)
	} else if prev.LastModified != "" {
		h.Set("If-Modified-Since", prev.LastModified)
	}
	return h
}

// Fetch GETs a small file below the base (info.json, aux.json) and returns
// its body, refusing bodies over limit bytes. With prev set, the request is
// conditional and an unchanged file gives an error wrapping ErrNotModified.
func (s *Store) Fetch(ctx context.Context, prev *Meta, limit int64, segments ...string) ([]byte, Meta, error) {
	return s.fetchURL(ctx, s.URL(segments...), prev, limit)
}

// fetchURL GETs u whole; a body cut short (reset, stall) is fetched again,
// a bounded number of times.
func (s *Store) fetchURL(ctx context.Context, u string, prev *Meta, limit int64) ([]byte, Meta, error) {
	for attempt := 0; ; attempt++ {
		body, m, err := s.fetchOnce(ctx, u, prev, limit)
		if !errors.Is(err, errBody) || attempt >= s.opt.Retries || ctx.Err() != nil {
			return body, m, err
		}
	}
}

// errBody marks a failure while reading a body, after good headers.
var errBody = errors.New("reading body")

func (s *Store) fetchOnce(ctx context.Context, u string, prev *Meta, limit int64) ([]byte, Meta, error) {
	resp, err := s.do(ctx, request{method: http.MethodGet, url: u, header: conditional(prev)})
	if err != nil {
		return nil, Meta{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		if prev == nil { // a 304 nobody asked for
			return nil, Meta{}, &StatusError{Method: http.MethodGet, URL: u, Code: resp.StatusCode}
		}
		return nil, *prev, fmt.Errorf("GET %s: %w", u, ErrNotModified)
	}
	if resp.ContentLength > limit {
		return nil, Meta{}, fmt.Errorf("GET %s: %d bytes: %w (limit %d)", u, resp.ContentLength, ErrTooLarge, limit)
	}
	body, err := readBody(resp, limit)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("GET %s: %w: %w", u, errBody, err)
	}
	if int64(len(body)) > limit {
		return nil, Meta{}, fmt.Errorf("GET %s: %w (limit %d bytes)", u, ErrTooLarge, limit)
	}
	m := metaOf(resp)
	if m.Size >= 0 && m.Size != int64(len(body)) {
		return nil, Meta{}, fmt.Errorf("GET %s: %w: got %d bytes, Content-Length said %d", u, errBody, len(body), m.Size)
	}
	m.Size = int64(len(body))
	if !m.Digest.Check(body) {
		// Damaged in transit (or a bad upload): fetched again, a bounded
		// number of times, as a body cut short is.
		return nil, Meta{}, fmt.Errorf("GET %s: %w: %w (the answer states %s)", u, errBody, ErrDigestMismatch, m.Digest)
	}
	return body, m, nil
}

// readBody reads a body of at most limit+1 bytes into a buffer of its
// size (a catalog keeps a hundred thousand info.json: io.ReadAll's
// growing buffer doubled them).
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= limit {
		body := make([]byte, n, n+1)
		k, err := io.ReadFull(resp.Body, body)
		switch {
		case err == io.ErrUnexpectedEOF || err == io.EOF && n > 0:
			return body[:k], nil // shorter than announced: the caller says so
		case err != nil:
			return nil, err
		}
		// Longer than announced: the caller says so.
		if extra, err := resp.Body.Read(body[n : n+1]); extra > 0 {
			return body[:n+1], nil
		} else if err != nil && err != io.EOF {
			return nil, err
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	return bytes.Clone(body), err
}

// Stat learns a file's size and validators with HEAD. When the server
// refuses HEAD or gives no length, it asks for the first byte (a ranged
// GET): a 206 tells the total size in Content-Range, and a 200 with a
// length tells it too. The body is never read: a file of unknown length is
// never downloaded to learn its size here (Size is then -1). With prev
// set, the request is conditional (ErrNotModified when unchanged).
func (s *Store) Stat(ctx context.Context, prev *Meta, segments ...string) (Meta, error) {
	u := s.URL(segments...)
	resp, err := s.do(ctx, request{method: http.MethodHead, url: u, header: conditional(prev)})
	var se *StatusError
	switch {
	case errors.As(err, &se) && (se.Code == http.StatusMethodNotAllowed || se.Code == http.StatusNotImplemented):
	case err != nil:
		return Meta{}, err
	default:
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotModified {
			if prev == nil {
				return Meta{}, &StatusError{Method: http.MethodHead, URL: u, Code: resp.StatusCode}
			}
			return *prev, fmt.Errorf("HEAD %s: %w", u, ErrNotModified)
		}
		if resp.ContentLength >= 0 {
			return metaOf(resp), nil
		}
	}
	h := conditional(prev)
	h.Set("Range", "bytes=0-0")
	resp, err = s.do(ctx, request{method: http.MethodGet, url: u, header: h})
	if errors.As(err, &se) && se.Code == http.StatusRequestedRangeNotSatisfiable {
		// Only an empty file has no first byte.
		h.Del("Range")
		resp, err = s.do(ctx, request{method: http.MethodGet, url: u, header: h})
	}
	if err != nil {
		return Meta{}, err
	}
	resp.Body.Close() // abort: only the headers were wanted
	if resp.StatusCode == http.StatusNotModified {
		if prev == nil {
			return Meta{}, &StatusError{Method: http.MethodGet, URL: u, Code: resp.StatusCode}
		}
		return *prev, fmt.Errorf("GET %s: %w", u, ErrNotModified)
	}
	m := metaOf(resp)
	if resp.StatusCode == http.StatusPartialContent {
		m.Size = -1
		if _, _, total, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil {
			m.Size = total
		}
	}
	return m, nil
}

// ErrChanged means the file on the server is not the version asked for.
var ErrChanged = errors.New("file changed on the server")

// Download GETs a whole file into w. want is what Stat said: the answer must
// carry the same validators, and exactly want.Size bytes must arrive (when
// known), else nothing written may be used. It returns the bytes written.
func (s *Store) Download(ctx context.Context, w io.Writer, want Meta, segments ...string) (int64, error) {
	u := s.URL(segments...)
	resp, err := s.do(ctx, request{method: http.MethodGet, url: u})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	got := metaOf(resp)
	if !s.sameVersion(want, got) {
		return 0, fmt.Errorf("GET %s: %w (want %s/%q, got %s/%q)", u, ErrChanged,
			sizeString(want.Size), want.ETag, sizeString(got.Size), got.ETag)
	}
	src := io.Reader(resp.Body)
	if want.Size >= 0 {
		src = io.LimitReader(resp.Body, want.Size+1)
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", u, n, err)
	}
	if want.Size >= 0 && n != want.Size {
		return n, fmt.Errorf("GET %s: got %d bytes, want %d", u, n, want.Size)
	}
	return n, nil
}

func sizeString(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}
