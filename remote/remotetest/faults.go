package remotetest

// Injected faults: answers spoiled per path and per request, as a flaky
// network or a broken server spoils them. The unit tests and the fault
// matrix (integration/faults) share them, so that a fault means the same
// bytes on the wire at both levels.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"
)

// FaultKind is a way of spoiling one answer.
type FaultKind int

const (
	FaultStatus      FaultKind = iota // answer Status (with Retry-After if set)
	FaultReset                        // right headers, Cut of the body, then a TCP RST
	FaultTruncate                     // right Content-Length, Cut of the body, then FIN
	FaultLyingLength                  // Content-Length (and Content-Range) of the Cut only, as if it were all
	FaultDelay                        // wait Delay before the headers, then answer as usual
	FaultStall                        // right headers, Cut of the body, then silence until the client gives up
	FaultRedirect                     // 302 to Location
	FaultNoRange                      // 200 with the whole file: Range, If-Range and conditionals ignored
	FaultReplace                      // NewData becomes the file's next version; this request gets the old one
	FaultThrottle                     // answer as usual, the body at Rate bytes per second
)

func (k FaultKind) String() string {
	names := [...]string{"status", "reset", "truncate", "lying-length", "delay", "stall", "redirect", "no-range", "replace", "throttle"}
	if k < 0 || int(k) >= len(names) {
		return fmt.Sprintf("fault(%d)", int(k))
	}
	return names[k]
}

// Fault spoils the next Times answers (negative: every one) to requests
// for one path with Method ("" any).
type Fault struct {
	Kind       FaultKind
	Method     string
	Times      int
	Status     int           // FaultStatus
	RetryAfter string        // FaultStatus: the Retry-After header, if set
	Cut        float64       // fraction of the body sent before the fault
	Delay      time.Duration // FaultDelay
	Location   string        // FaultRedirect
	NewData    []byte        // FaultReplace
	Rate       int64         // FaultThrottle, bytes per second
}

// AddFault adds a fault for path. A path's faults apply in the order
// added, each as many times as it says. They act after the path's gate
// and before its interceptor; the answer they spoil (or delay, or slow) is
// the server's own. The request log names the fault (Request.Fault).
func (s *Server) AddFault(path string, f Fault) {
	f.NewData = bytes.Clone(f.NewData)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[path] = append(s.faults[path], &f)
}

// ClearFaults removes every fault of path.
func (s *Server) ClearFaults(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, path)
}

// takeFault returns the fault that spoils this request, if any, and names
// it in the request's log entry.
func (s *Server) takeFault(req *Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults[req.Path] {
		if f.Times == 0 || (f.Method != "" && f.Method != req.Method) {
			continue
		}
		if f.Times > 0 {
			f.Times--
		}
		req.Fault = f.Kind.String()
		return f
	}
	return nil
}

// inject answers a request as fault f says.
func (s *Server) inject(w *recorder, r *http.Request, path string, inStore bool, f *Fault) {
	switch f.Kind {
	case FaultStatus:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		http.Error(w, fmt.Sprintf("injected %d", f.Status), f.Status)
	case FaultDelay:
		select {
		case <-time.After(f.Delay):
		case <-s.quit:
			return
		}
		s.answer(w, r, path, inStore, nil)
	case FaultRedirect:
		w.Header().Set("Location", f.Location)
		w.WriteHeader(http.StatusFound)
	case FaultNoRange:
		s.wholeIgnoringRange(w, r, path)
	case FaultReplace:
		s.answer(w, r, path, inStore, s.replace(path, f.NewData))
	case FaultThrottle:
		w.rate = f.Rate
		s.answer(w, r, path, inStore, nil)
	default:
		s.spoil(w, r, path, inStore, f)
	}
}

// replace makes data the next version of path (an hour newer) and returns
// the version it replaces (nil if path is no file).
func (s *Server) replace(path string, data []byte) *File {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.files[path]
	if !ok {
		return nil
	}
	s.files[path] = withETag(File{Data: data, ModTime: old.ModTime.Add(time.Hour)})
	return &old
}

// wholeIgnoringRange answers 200 with the whole current file, as a server
// that knows neither Range nor conditional requests does.
func (s *Server) wholeIgnoringRange(w http.ResponseWriter, r *http.Request, path string) {
	s.mu.Lock()
	f, ok := s.files[path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", f.etag())
	w.Header().Set("Last-Modified", f.ModTime.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Length", strconv.Itoa(len(f.Data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(f.Data)
	}
}

// spoil builds the usual answer, then sends it broken as f says, on the
// raw connection.
func (s *Server) spoil(w *recorder, r *http.Request, path string, inStore bool, f *Fault) {
	rec := httptest.NewRecorder()
	s.answer(rec, r, path, inStore, nil)
	res := rec.Result()
	body := rec.Body.Bytes()
	part := int(float64(len(body)) * f.Cut)
	hdr := spoiledHeader(res.Header, f.Kind, len(body), part)
	w.status = res.StatusCode // for the log: the status the client was sent
	conn, bufrw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, fmt.Sprintf("remotetest: %v: %v", f.Kind, err), http.StatusInternalServerError)
		return
	}
	if !s.startSpoiling() {
		conn.Close() // closed: as if the connection had been cut
		return
	}
	defer s.spoiling.Done()
	fmt.Fprintf(bufrw, "HTTP/1.1 %d %s\r\n", res.StatusCode, http.StatusText(res.StatusCode))
	_ = hdr.Write(bufrw)
	bufrw.WriteString("\r\n")
	if r.Method != http.MethodHead {
		_, _ = bufrw.Write(body[:part])
	}
	if err := bufrw.Flush(); err != nil {
		conn.Close()
		return
	}
	s.endSpoiled(conn, f.Kind)
}

// spoiledHeader is the header of a spoiled answer: the full length, or
// with FaultLyingLength the length (and range) of the part sent.
func spoiledHeader(h http.Header, kind FaultKind, size, part int) http.Header {
	hdr := h.Clone()
	hdr.Set("Content-Length", strconv.Itoa(size))
	if kind != FaultLyingLength {
		return hdr
	}
	hdr.Set("Content-Length", strconv.Itoa(part))
	if cr := hdr.Get("Content-Range"); cr != "" && part > 0 {
		var start, end, total int64
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &total); err == nil {
			hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+int64(part)-1, total))
		}
	}
	return hdr
}

// endSpoiled ends a spoiled answer's connection: a reset, silence until
// the client hangs up (or the server closes), or a plain close.
func (s *Server) endSpoiled(conn net.Conn, kind FaultKind) {
	switch kind {
	case FaultReset:
		if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
	case FaultStall:
		hungUp := make(chan struct{})
		defer close(hungUp)
		go func() {
			select {
			case <-s.quit:
				conn.Close()
			case <-hungUp:
			}
		}()
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
	}
	conn.Close()
}

// startSpoiling counts a spoiled answer in, for Close to wait for; it
// refuses once the server is closed. (SetDown closes the connection of
// one in progress, as the connections of every answer.)
func (s *Server) startSpoiling() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.spoiling.Add(1)
	return true
}

// pace writes p at w.rate bytes per second, in pieces, until the server
// closes.
func (w *recorder) pace(p []byte) (int, error) {
	const piece = 32 << 10
	n := 0
	for len(p) > 0 {
		k := min(len(p), piece)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
		select {
		case <-time.After(time.Duration(int64(k) * int64(time.Second) / w.rate)):
		case <-w.quit:
			return n, io.ErrClosedPipe
		}
	}
	return n, nil
}
