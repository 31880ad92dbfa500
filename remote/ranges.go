package remote

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	h := http.Header{}
	ranged := off > 0 || (want.Size >= 0 && n < want.Size) || want.Size < 0
	if ranged && s.ranges.Load() != RangeNo {
		if n > 0 {
			h.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
		} else {
			h.Set("Range", fmt.Sprintf("bytes=%d-", off))
		}
		if v := ifRange(want); v != "" {
			h.Set("If-Range", v)
		}
	}
	resp, err := s.do(ctx, request{method: http.MethodGet, url: u, header: h})
	if err != nil {
		return nil, err
	}
	got := metaOf(resp)
	fail := func(format string, args ...any) (*Body, error) {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s (%s): %s", u, h.Get("Range"), fmt.Sprintf(format, args...))
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fail("bad Content-Range: %v", err)
		}
		if want.ETag != "" && got.ETag != "" && got.ETag != want.ETag {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %w (ETag %s, want %s)", u, ErrChanged, got.ETag, want.ETag)
		}
		if total >= 0 && want.Size >= 0 && total != want.Size {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %w (size %d, want %d)", u, ErrChanged, total, want.Size)
		}
		wantEnd := off + n - 1
		if n <= 0 {
			wantEnd = end
		}
		if start != off || end != wantEnd {
			return fail("server sent bytes %d-%d, asked %d-%d", start, end, off, wantEnd)
		}
		length := end - start + 1
		if resp.ContentLength >= 0 && resp.ContentLength != length {
			return fail("Content-Length %d does not match Content-Range %d-%d", resp.ContentLength, start, end)
		}
		s.ranges.Store(RangeYes)
		return &Body{ReadCloser: exactBody(resp.Body, length, u), Off: off, Len: length}, nil
	case http.StatusOK:
		if !want.SameVersion(got) {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %w (want %s/%q, got %s/%q)", u, ErrChanged,
				sizeString(want.Size), want.ETag, sizeString(got.Size), got.ETag)
		}
		if h.Get("Range") != "" {
			s.ranges.Store(RangeNo)
		}
		length := want.Size
		if length < 0 {
			length = got.Size
		}
		if length < 0 {
			return &Body{ReadCloser: resp.Body, Whole: true, Len: -1}, nil
		}
		return &Body{ReadCloser: exactBody(resp.Body, length, u), Whole: true, Len: length}, nil
	default:
		return fail("unexpected HTTP %d", resp.StatusCode)
	}
}

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
