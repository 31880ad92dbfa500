package remote

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// ErrTooLarge is returned, wrapped, when a response is bigger than modelstorefs
// is willing to read: a listing body over 16 MiB or with over 100000 names.
var ErrTooLarge = errors.New("response body too large")

const (
	// maxListingBytes bounds how much of a listing body is read.
	maxListingBytes = 16 << 20
	// maxListingNames bounds how many distinct names a listing may hold.
	maxListingNames = 100000
)

// ParseListing extracts the model directory names from an HTML directory
// listing of base (the store's base URL, ending in "/").
//
// Only the href attribute of <a> tags counts, never the link text, so names
// that a server truncates or decorates in the text ("name..>", "name@") come
// out whole. A link is kept when it resolves against base to a direct child
// directory of base on the same scheme and host: one path segment ending in
// "/", without query or fragment. Parent, sort, file, nested and foreign
// links are skipped. The segment is URL-unescaped; a segment that unescapes
// to "", ".", ".." or to something containing "/" or NUL is skipped. Names
// are deduplicated and returned in document order; a listing without any
// gives an empty result and no error.
//
// At most 16 MiB of body and 100000 names are accepted; beyond that the
// error wraps ErrTooLarge. Malformed HTML is tokenized as a browser would and
// never fails on its own; only read errors from body are returned.
func ParseListing(body io.Reader, base *url.URL) ([]string, error) {
	dir := *base
	if !strings.HasSuffix(dir.Path, "/") {
		// As DIGITS does, treat "http://host/store" as "http://host/store/".
		dir.Path += "/"
		if dir.RawPath != "" {
			dir.RawPath += "/"
		}
	}
	dirSegs := strings.Split(dir.EscapedPath(), "/")

	lr := &io.LimitedReader{R: body, N: maxListingBytes + 1}
	z := html.NewTokenizer(lr)
	var names []string
	seen := make(map[string]struct{})
	for {
		switch z.Next() {
		case html.ErrorToken:
			err := z.Err()
			if lr.N <= 0 {
				return nil, fmt.Errorf("listing is over %d bytes: %w", maxListingBytes, ErrTooLarge)
			}
			if err != io.EOF {
				return nil, fmt.Errorf("read listing: %w", err)
			}
			return names, nil
		case html.StartTagToken, html.SelfClosingTagToken:
			href, ok := anchorHref(z)
			if !ok {
				continue
			}
			name, ok := childDir(&dir, dirSegs, href)
			if !ok {
				continue
			}
			if _, dup := seen[name]; dup {
				continue
			}
			if len(names) == maxListingNames {
				return nil, fmt.Errorf("listing has over %d names: %w", maxListingNames, ErrTooLarge)
			}
			seen[name] = struct{}{}
			names = append(names, name)
		}
	}
}

// anchorHref returns the href of the current token if it is an <a> tag with
// one. As in HTML, the first of duplicate attributes wins.
func anchorHref(z *html.Tokenizer) (string, bool) {
	tag, more := z.TagName()
	if string(tag) != "a" {
		return "", false
	}
	for more {
		var key, val []byte
		key, val, more = z.TagAttr()
		if string(key) == "href" {
			return string(val), true
		}
	}
	return "", false
}

// childDir returns the unescaped name of the directory href points to if it
// resolves to a direct child directory of dir. dirSegs is dir's escaped path
// split on "/".
func childDir(dir *url.URL, dirSegs []string, href string) (string, bool) {
	// Browsers strip leading and trailing whitespace and controls from URLs.
	href = strings.TrimFunc(href, func(r rune) bool { return r <= ' ' })
	if href == "" || strings.ContainsAny(href, "?#") {
		return "", false
	}
	ref, err := url.Parse(href)
	if err != nil {
		return "", false
	}
	u := dir.ResolveReference(ref)
	if u.Opaque != "" || !strings.EqualFold(u.Scheme, dir.Scheme) ||
		!strings.EqualFold(u.Host, dir.Host) || u.User.String() != dir.User.String() {
		return "", false
	}
	// Compare escaped segments so that "%2F" stays inside its segment.
	// dirSegs is ["", seg1, …, ""]; a child is ["", seg1, …, name, ""].
	segs := strings.Split(u.EscapedPath(), "/")
	if len(segs) != len(dirSegs)+1 || segs[len(segs)-1] != "" {
		return "", false
	}
	for i, s := range dirSegs[:len(dirSegs)-1] {
		if !sameSegment(s, segs[i]) {
			return "", false
		}
	}
	name, err := url.PathUnescape(segs[len(segs)-2])
	if err != nil || name == "" || name == "." || name == ".." ||
		strings.ContainsAny(name, "/\x00") {
		return "", false
	}
	return name, true
}

// sameSegment reports whether two escaped path segments name the same thing,
// whatever their percent-encoding ("caff%C3%A9", "caff%c3%a9", "caffé").
func sameSegment(a, b string) bool {
	if a == b {
		return true
	}
	ua, err := url.PathUnescape(a)
	if err != nil {
		return false
	}
	ub, err := url.PathUnescape(b)
	return err == nil && ua == ub
}
