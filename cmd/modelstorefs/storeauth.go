package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Credentials beyond the URL's userinfo and ~/.netrc: request headers
// (a bearer token, an API key) and a TLS client certificate, for stores
// behind an authenticating proxy.
//
// A header is "Name: value" for every store, or "STORE=Name: value" for
// the store whose directory name is STORE (as in NAME=URL): "=" cannot be
// in a header name, so the first "=" before the first ":" names a store.
// Headers come from --header (repeatable), --header-file (one a line, #
// comments) and $MODELSTOREFS_HEADERS (one a line). The remote client
// sends them only to the store's exact origin (remote.Options.Header);
// they are never logged, and mount --daemon hands its --header values to
// the daemon in its environment, which other users cannot read, not in its
// argv, which they can (ps).

// headersEnv holds headers, one a line, as --header takes them.
const headersEnv = "MODELSTOREFS_HEADERS"

// storeAuth is what the stores are sent besides their URLs' userinfo.
type storeAuth struct {
	// headers by store name; "" holds those for every store.
	headers map[string]http.Header
	cert    *tls.Certificate // nil: none
}

// headerList is a repeatable flag whose values are kept whole: a header
// value may hold commas, which urfave/cli's string slices split on.
type headerList []string

func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }
func (h *headerList) String() string     { return "" } // never show a value (help, errors)

func authFlags() []cli.Flag {
	return []cli.Flag{
		&cli.GenericFlag{Name: "header", Category: catStores, Value: &headerList{}, Usage: "send `'[STORE=]NAME: VALUE'` with every request to the store's own origin (repeatable; STORE=: that store only); other users can read it in ps: prefer --header-file or $" + headersEnv},
		&cli.StringFlag{Name: "header-file", Category: catStores, Usage: "read headers from `FILE`, one '[STORE=]NAME: VALUE' a line (# comments)"},
		&cli.StringFlag{Name: "client-cert", Category: catStores, Usage: "PEM `FILE` of a TLS client certificate, for stores (or their proxy) that ask for one"},
		&cli.StringFlag{Name: "client-key", Category: catStores, Usage: "PEM `FILE` of the client certificate's private key (default: in --client-cert)"},
	}
}

// authFrom reads the headers and the client certificate for stores.
func authFrom(c *cli.Context, stores []storeSpec) (storeAuth, error) {
	a := storeAuth{headers: map[string]http.Header{}}
	var entries []string
	if env := os.Getenv(headersEnv); env != "" {
		entries = append(entries, strings.Split(env, "\n")...)
	}
	if file := c.String("header-file"); file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return a, fmt.Errorf("--header-file: %w", err)
		}
		if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o044 != 0 {
			fmt.Fprintf(c.App.ErrWriter, "modelstorefs: warning: --header-file %s may be read by other users (mode %v): chmod 600 it\n", file, fi.Mode().Perm())
		}
		entries = append(entries, strings.Split(string(data), "\n")...)
	}
	if h, ok := c.Generic("header").(*headerList); ok {
		entries = append(entries, *h...)
	}
	names := make([]string, len(stores))
	for i, s := range stores {
		names[i] = s.Name
	}
	for _, e := range entries {
		if e = strings.TrimSpace(e); e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		store, name, value, err := parseHeader(e)
		if err != nil {
			return a, err
		}
		if store != "" && !slices.Contains(names, store) {
			return a, fmt.Errorf("--header for %q: no store of that name (stores: %s)", store, strings.Join(names, ", "))
		}
		if a.headers[store] == nil {
			a.headers[store] = http.Header{}
		}
		a.headers[store].Add(name, value)
	}
	cert, key := c.String("client-cert"), c.String("client-key")
	switch {
	case cert == "" && key != "":
		return a, fmt.Errorf("--client-key needs --client-cert")
	case cert != "":
		if key == "" {
			key = cert
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return a, fmt.Errorf("--client-cert %s, --client-key %s: %w", cert, key, err)
		}
		a.cert = &pair
	}
	return a, nil
}

// headerFor returns the headers of the store called name: those for every
// store, then its own (which replace them, name by name); nil for none.
func (a storeAuth) headerFor(name string) http.Header {
	all, own := a.headers[""], a.headers[name]
	if len(all) == 0 && len(own) == 0 {
		return nil
	}
	h := all.Clone()
	if h == nil {
		h = http.Header{}
	}
	for k, v := range own {
		h[k] = slices.Clone(v)
	}
	return h
}

// certificates is the client certificate as remote.Options takes it.
func (a storeAuth) certificates() []tls.Certificate {
	if a.cert == nil {
		return nil
	}
	return []tls.Certificate{*a.cert}
}

// reservedHeaders are set by the client itself: replacing them would break
// ranged reads, validation or byte-exact bodies (a gzipped answer).
var reservedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Range", "If-Range",
	"If-None-Match", "If-Modified-Since", "Accept-Encoding", "Te", "Trailer", "Upgrade", "Keep-Alive"}

// parseHeader reads "[STORE=]Name: value". Errors never quote the value.
func parseHeader(entry string) (store, name, value string, err error) {
	colon := strings.Index(entry, ":")
	if eq := strings.Index(entry, "="); eq >= 0 && (colon < 0 || eq < colon) {
		store, entry, colon = strings.TrimSpace(entry[:eq]), entry[eq+1:], colon-eq-1
		if store == "" {
			return "", "", "", fmt.Errorf("--header: no store name before \"=\" (give 'STORE=NAME: VALUE')")
		}
	}
	if colon < 0 {
		return "", "", "", fmt.Errorf("--header: an entry has no \":\"; give 'NAME: VALUE'")
	}
	name, value = strings.TrimSpace(entry[:colon]), strings.TrimSpace(entry[colon+1:])
	switch {
	case !validHeaderName(name):
		return "", "", "", fmt.Errorf("--header: the text before \":\" is not an HTTP header name (letters, digits, -)")
	case slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name)):
		return "", "", "", fmt.Errorf("--header: %s is set by modelstorefs itself and cannot be given", name)
	case value == "":
		return "", "", "", fmt.Errorf("--header %s: no value", name)
	case !validHeaderValue(value):
		return "", "", "", fmt.Errorf("--header %s: the value holds a line break or a control character", name)
	}
	return store, http.CanonicalHeaderKey(name), value, nil
}

// headerWarnings warns of --header values that stay readable in ps for as
// long as a foreground mount runs (a daemon gets them in its environment).
func headerWarnings(command string, flags []string) []string {
	if command != "mount" || !slices.Contains(flags, "--header") || slices.Contains(flags, "--daemon") || slices.Contains(flags, "--daemon=true") {
		return nil
	}
	return []string{"warning: --header values can be read by other users in ps for as long as the mount runs; " +
		"give them in --header-file or $" + headersEnv + ", or mount with --daemon"}
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether value holds no control character but
// tab: a line break would start another header.
func validHeaderValue(value string) bool {
	for _, r := range value {
		if r < ' ' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}
