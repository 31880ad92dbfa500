package remotetest

// The request log and the counters: what a test asks about the requests
// its client made.

import (
	"net/http"
	"time"
)

// Request is one request the server got.
type Request struct {
	Method          string
	Path            string // below the prefix, unescaped ("" is the base); else the URL path
	URLPath         string // the whole URL path, unescaped ("/team/m/f.bin")
	URI             string // the request target as sent, still escaped
	IfNoneMatch     string
	IfModifiedSince string
	Range           string
	Auth            bool   // it carried an Authorization header
	Fault           string // the injected fault that answered it (FaultKind), "" none
	Status          int    // 0 while it is being answered (Arrivals only)
	Arrived         time.Time
}

// Count returns how many requests with method ("" for any) were made for
// path ("" is the base).
func (s *Server) Count(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method != "" {
		return s.counts[path][method]
	}
	n := 0
	for _, c := range s.counts[path] {
		n += c
	}
	return n
}

// CountMethod returns how many requests of a method were made, for any
// path.
func (s *Server) CountMethod(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.counts {
		n += c[method]
	}
	return n
}

// Total returns how many requests were made, for any path.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.counts {
		for _, c := range m {
			n += c
		}
	}
	return n
}

// Requests returns the answered requests in the order they were answered
// (the optional filter keeps those for one path).
func (s *Server) Requests(path ...string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return filterRequests(s.done, path)
}

// Arrivals returns every request in the order it arrived, those still
// being answered (Status 0) included (the optional filter keeps those for
// one path).
func (s *Server) Arrivals(path ...string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return filterRequests(s.log, path)
}

func filterRequests(log []*Request, path []string) []Request {
	var out []Request
	if len(path) == 0 {
		out = make([]Request, 0, len(log)) // a fault row polls 200,000 of them
	}
	for _, r := range log {
		if len(path) == 0 || r.Path == path[0] {
			out = append(out, *r)
		}
	}
	return out
}

// ResetCounts forgets the counters and the request log.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]map[string]int{}
	s.log, s.done = nil, nil
}

// arrive counts and logs a request as it arrives (a client may have its
// answer before the handler returns). The headers are logged as the
// client sent them (NoRange and interceptors may drop them).
func (s *Server) arrive(r *http.Request, path string) *Request {
	req := &Request{
		Method:          r.Method,
		Path:            path,
		URLPath:         r.URL.Path,
		URI:             r.RequestURI,
		IfNoneMatch:     r.Header.Get("If-None-Match"),
		IfModifiedSince: r.Header.Get("If-Modified-Since"),
		Range:           r.Header.Get("Range"),
		Auth:            r.Header.Get("Authorization") != "",
		Arrived:         time.Now(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts[path] == nil {
		s.counts[path] = map[string]int{}
	}
	s.counts[path][r.Method]++
	s.log = append(s.log, req)
	return req
}

// answered logs the status a request was answered with.
func (s *Server) answered(req *Request, w *recorder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req.Status = w.status
	if req.Status == 0 {
		req.Status = http.StatusOK
	}
	s.done = append(s.done, req)
}
