package remote

import (
	"net/http"
	"net/url"
	"strings"
)

// originAuth adds a store's credentials (the base URL's userinfo as Basic
// auth, and Options.Header) to requests for the store's exact origin
// (scheme, host and port), and to no other. It sits below the HTTP
// client's redirect logic, so a redirect to another port, to plain http on
// the same host, or to another host never carries them, whatever Go's
// client would copy (it keeps Authorization for the same host name, with
// any scheme or port: curl's CVE-2022-27774).
type originAuth struct {
	next   http.RoundTripper
	origin string
	auth   *url.Userinfo // nil: no Basic auth
	header http.Header   // set after Basic auth: an Authorization here wins
}

func (a *originAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	if originOf(req.URL) != a.origin {
		if !a.carries(req.Header) {
			return a.next.RoundTrip(req)
		}
		req = req.Clone(req.Context())
		req.Header.Del("Authorization")
		for name := range a.header {
			req.Header.Del(name)
		}
		return a.next.RoundTrip(req)
	}
	req = req.Clone(req.Context()) // a RoundTripper must not change its request
	a.add(req)
	return a.next.RoundTrip(req)
}

// add sets the credentials on a request for the store's own origin.
func (a *originAuth) add(req *http.Request) {
	if a.auth != nil {
		pw, _ := a.auth.Password()
		req.SetBasicAuth(a.auth.Username(), pw)
	}
	for name, values := range a.header {
		req.Header[name] = values
	}
}

// carries reports whether h holds any header a credential could be in.
func (a *originAuth) carries(h http.Header) bool {
	if h.Get("Authorization") != "" {
		return true
	}
	for name := range a.header {
		if _, ok := h[name]; ok {
			return true
		}
	}
	return false
}

// originOf is "scheme://host:port" with the default port made explicit and
// the host in lower case.
func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}
