package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Range support of a store, learned from its answers.
const (
	RangeUnknown int32 = iota
	RangeYes
	RangeNo
)

// RangeSupport tells whether the store has answered ranged GETs with 206.
func (s *Store) RangeSupport() int32 { return s.ranges.Load() }

// Body is the answer to a ranged GET, checked against what was asked.
type Body struct {
	io.ReadCloser
	// Off is the file offset of the first byte. A server that ignores Range
	// answers 200 with the whole file: then Whole is set and Off is 0,
	// whatever was asked; its bytes must never be placed elsewhere.
	Off   int64
	Whole bool
	// Len is how many bytes the body holds; reading more or fewer is an
	// error from Read.
	Len int64
	// Digest is the whole file's digest as the answer states it (zero
	// when it states none): a file listed without one learns it here.
	Digest Digest
	raw    *rawBody // set on the zero-copy path
}

// GetRange GETs n bytes at off of the file version want (n <= 0: to the
// end). The answer is validated: a 206 must carry exactly the asked
// Content-Range and the file's total size, a 200 must be the same version
// (else ErrChanged), and the body must have exactly the announced length.
// If-Range makes a server whose file changed answer 200 with the new
// version, which the validator check then refuses.
func (s *Store) GetRange(ctx context.Context, want Meta, off, n int64, segments ...string) (*Body, error) {
	u := s.URL(segments...)
	if want.Size >= 0 && (n <= 0 || off+n > want.Size) {
		n = want.Size - off
	}
	h := s.rangeHeader(want, off, n)
	var (
		resp *http.Response
		err  = errNoFastPath
	)
	if s.fast {
		resp, err = s.getRangeRaw(ctx, u, h)
	}
	if errors.Is(err, errNoFastPath) {
		resp, err = s.do(ctx, request{method: http.MethodGet, url: u, header: h})
	}
	if err != nil {
		return nil, err
	}
	var body *Body
	switch resp.StatusCode {
	case http.StatusPartialContent:
		body, err = s.partialBody(resp, u, want, off, n)
	case http.StatusOK:
		body, err = s.wholeBody(resp, u, want, h.Get("Range") != "")
	default:
		err = fmt.Errorf("unexpected HTTP %d", resp.StatusCode)
	}
	if err != nil {
		resp.Body.Close()
		if errors.Is(err, ErrChanged) {
			return nil, fmt.Errorf("GET %s: %w", u, err)
		}
		return nil, fmt.Errorf("GET %s (%s): %w", u, h.Get("Range"), err)
	}
	return body, nil
}

// rangeHeader asks for n bytes at off (n <= 0: to the end) of the version
// want. A whole file is asked as a range too: the 206 (or a 200) tells
// whether the server honours Range, so that more streams can follow. A
// store whose ETags change on every request cannot prove that two ranges
// come from one version: it gets one whole stream, checked by size and
// date.
func (s *Store) rangeHeader(want Meta, off, n int64) http.Header {
	h := http.Header{}
	if want.Size == 0 || s.ranges.Load() == RangeNo || s.etagUnstable.Load() {
		return h
	}
	if n > 0 {
		h.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	} else {
		h.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	if v := ifRange(want); v != "" {
		h.Set("If-Range", v)
	}
	return h
}

// partialBody validates a 206: exactly the range asked for, of the version
// asked for, with a matching length.
func (s *Store) partialBody(resp *http.Response, u string, want Meta, off, n int64) (*Body, error) {
	got := metaOf(resp)
	start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return nil, fmt.Errorf("bad Content-Range: %v", err)
	}
	// The part must come from the version asked for: same ETag, or the
	// same date when there is no ETag, and the same total size (a server
	// may ignore If-Range).
	if part := (Meta{Size: total, ETag: got.ETag, LastModified: got.LastModified, Digest: got.Digest}); !s.sameVersion(want, part) {
		return nil, fmt.Errorf("%w (got %s/%q/%q, want %s/%q/%q)", ErrChanged,
			sizeString(total), got.ETag, got.LastModified, sizeString(want.Size), want.ETag, want.LastModified)
	}
	wantEnd := off + n - 1
	if n <= 0 {
		wantEnd = end
	}
	if start != off || end != wantEnd {
		return nil, fmt.Errorf("server sent bytes %d-%d, asked %d-%d", start, end, off, wantEnd)
	}
	length := end - start + 1
	if resp.ContentLength >= 0 && resp.ContentLength != length {
		return nil, fmt.Errorf("Content-Length %d does not match Content-Range %d-%d", resp.ContentLength, start, end)
	}
	s.ranges.Store(RangeYes)
	b := newBody(resp.Body, length, u, off, false)
	b.Digest = got.Digest
	return b, nil
}

// wholeBody validates a 200: the version asked for, of the length known.
// asked says whether a Range was sent (and so ignored: the server does not
// honour Range).
func (s *Store) wholeBody(resp *http.Response, u string, want Meta, asked bool) (*Body, error) {
	got := metaOf(resp)
	if !s.sameVersion(want, got) {
		return nil, fmt.Errorf("%w (want %s/%q, got %s/%q)", ErrChanged,
			sizeString(want.Size), want.ETag, sizeString(got.Size), got.ETag)
	}
	if asked {
		s.ranges.Store(RangeNo)
	}
	length := want.Size
	if length < 0 {
		length = got.Size
	}
	if length < 0 {
		return &Body{ReadCloser: resp.Body, Whole: true, Len: -1, Digest: got.Digest}, nil
	}
	if resp.ContentLength >= 0 && resp.ContentLength != length {
		return nil, fmt.Errorf("Content-Length %d, want %d", resp.ContentLength, length)
	}
	b := newBody(resp.Body, length, u, 0, true)
	b.Digest = got.Digest
	return b, nil
}

func newBody(rc io.ReadCloser, length int64, u string, off int64, whole bool) *Body {
	b := &Body{Off: off, Whole: whole, Len: length}
	if raw, ok := rc.(*rawBody); ok {
		b.ReadCloser, b.raw = raw, raw
	} else {
		b.ReadCloser = exactBody(rc, length, u)
	}
	return b
}

// CopyTo moves the next n bytes of the body into f at offset off: spliced
// from the socket on the zero-copy path, copied through a bounded buffer
// otherwise. Fewer than n bytes is an error.
func (b *Body) CopyTo(f *os.File, off, n int64) error {
	if b.raw != nil {
		return b.raw.spliceTo(f.Name(), off, n)
	}
	buf := make([]byte, min(n, copyBuffer))
	for n > 0 {
		m, err := io.ReadFull(b, buf[:min(n, int64(len(buf)))])
		if m > 0 {
			if _, werr := f.WriteAt(buf[:m], off); werr != nil {
				return fmt.Errorf("%w: %w", ErrDestination, werr)
			}
			off, n = off+int64(m), n-int64(m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// copyBuffer bounds the memory one copy uses, whatever the file size.
const copyBuffer = 1 << 20

// ifRange picks the validator for If-Range: a strong ETag, else the date.
func ifRange(m Meta) string {
	if m.ETag != "" && !strings.HasPrefix(m.ETag, "W/") {
		return m.ETag
	}
	return m.LastModified
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(v string) (start, end, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%q", v)
	}
	span, size, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%q", v)
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%q", v)
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("%q", v)
	}
	if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start || start < 0 {
		return 0, 0, 0, fmt.Errorf("%q", v)
	}
	total = -1
	if size != "*" {
		if total, err = strconv.ParseInt(size, 10, 64); err != nil || total <= end {
			return 0, 0, 0, fmt.Errorf("%q", v)
		}
	}
	return start, end, total, nil
}

// exactBody fails a body that ends before, or goes on after, n bytes.
func exactBody(rc io.ReadCloser, n int64, u string) io.ReadCloser {
	return &exactReader{rc: rc, left: n, url: u}
}

type exactReader struct {
	rc   io.ReadCloser
	left int64
	url  string
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		// Anything beyond the announced length means the server lied.
		var one [1]byte
		if m, _ := r.rc.Read(one[:]); m > 0 {
			return 0, fmt.Errorf("GET %s: body longer than announced", r.url)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		return n, fmt.Errorf("GET %s: body ended %d bytes early: %w", r.url, r.left, io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }
