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
	var names []string
	seen := make(map[string]struct{})
	err := scanListing(body, base, func(name string, dir bool, _ string) error {
		if !dir {
			return nil
		}
		if _, dup := seen[name]; dup {
			return nil
		}
		if len(names) == maxListingNames {
			return fmt.Errorf("listing has over %d names: %w", maxListingNames, ErrTooLarge)
		}
		seen[name] = struct{}{}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// maxTail bounds the text kept after a link (its date and size).
const maxTail = 256

// scanListing calls fn, in document order, for every link of an HTML
// listing of base that names a direct child of base (see ParseListing):
// its unescaped name, whether it is a directory (the href ends in "/"),
// and the text that follows the link up to the next link, table row, list
// item or line end, where listings put a file's date and size. An error of
// fn stops the scan and is returned.
func scanListing(body io.Reader, base *url.URL, fn func(name string, dir bool, tail string) error) error {
	dir, dirSegs := listedDir(base)
	lr := &io.LimitedReader{R: body, N: maxListingBytes + 1}
	z := html.NewTokenizer(lr)
	var (
		pending  *listedLink // the last child link, until its tail ends
		inAnchor bool
	)
	flush := func() error {
		if pending == nil {
			return nil
		}
		p := pending
		pending = nil
		return fn(p.name, p.dir, p.tail.String())
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			err := z.Err()
			if lr.N <= 0 {
				return fmt.Errorf("listing is over %d bytes: %w", maxListingBytes, ErrTooLarge)
			}
			if err != io.EOF {
				return fmt.Errorf("read listing: %w", err)
			}
			return flush()
		case html.TextToken:
			if pending == nil || inAnchor {
				continue
			}
			text, more := string(z.Text()), true
			if i := strings.IndexByte(text, '\n'); i >= 0 {
				text, more = text[:i], false
			}
			if pending.tail.Len() < maxTail {
				pending.tail.WriteString(text)
				pending.tail.WriteByte(' ')
			}
			if !more {
				if err := flush(); err != nil {
					return err
				}
			}
		case html.EndTagToken:
			switch tag, _ := z.TagName(); string(tag) {
			case "a":
				inAnchor = false
			case "tr", "li":
				if err := flush(); err != nil {
					return err
				}
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			tag, _ := z.TagName()
			if t := string(tag); t == "tr" || t == "li" || t == "a" {
				if err := flush(); err != nil {
					return err
				}
			}
			href, ok := anchorHref(z, tag)
			if !ok {
				continue
			}
			inAnchor = tt == html.StartTagToken
			if name, isDir, ok := childEntry(&dir, dirSegs, href); ok {
				pending = &listedLink{name: name, dir: isDir}
			}
		}
	}
}

// listedDir is the directory a listing of base lists, and its escaped
// path split on "/".
func listedDir(base *url.URL) (url.URL, []string) {
	dir := *base
	if !strings.HasSuffix(dir.Path, "/") {
		// As DIGITS does, treat "http://host/store" as "http://host/store/".
		dir.Path += "/"
		if dir.RawPath != "" {
			dir.RawPath += "/"
		}
	}
	return dir, strings.Split(dir.EscapedPath(), "/")
}

// listedLink is a child link of a listing and the text after it.
type listedLink struct {
	name string
	dir  bool
	tail strings.Builder
}

// anchorHref returns the href of the current token if it is an <a> tag
// (tag, its name, was just read) with one. As in HTML, the first of
// duplicate attributes wins.
func anchorHref(z *html.Tokenizer, tag []byte) (string, bool) {
	if string(tag) != "a" {
		return "", false
	}
	for more := true; more; {
		var key, val []byte
		key, val, more = z.TagAttr()
		if string(key) == "href" {
			return string(val), true
		}
	}
	return "", false
}

// childEntry returns the unescaped name of the directory or file href
// points to if it resolves to a direct child of dir (one path segment
// below it; a directory's ends in "/"). dirSegs is dir's escaped path
// split on "/".
func childEntry(dir *url.URL, dirSegs []string, href string) (name string, isDir, ok bool) {
	// Browsers strip leading and trailing whitespace and controls from URLs.
	href = strings.TrimFunc(href, func(r rune) bool { return r <= ' ' })
	if href == "" || strings.ContainsAny(href, "?#") {
		return "", false, false
	}
	ref, err := url.Parse(href)
	if err != nil {
		return "", false, false
	}
	u := dir.ResolveReference(ref)
	if u.Opaque != "" || !strings.EqualFold(u.Scheme, dir.Scheme) ||
		!strings.EqualFold(u.Host, dir.Host) || u.User.String() != dir.User.String() {
		return "", false, false
	}
	// Compare escaped segments so that "%2F" stays inside its segment.
	// dirSegs is ["", seg1, …, ""]; a child directory is
	// ["", seg1, …, name, ""], a child file ["", seg1, …, name].
	segs := strings.Split(u.EscapedPath(), "/")
	switch {
	case len(segs) == len(dirSegs)+1 && segs[len(segs)-1] == "":
		isDir = true
	case len(segs) == len(dirSegs) && segs[len(segs)-1] != "":
	default:
		return "", false, false
	}
	for i, s := range dirSegs[:len(dirSegs)-1] {
		if !sameSegment(s, segs[i]) {
			return "", false, false
		}
	}
	last := segs[len(dirSegs)-1]
	name, err = url.PathUnescape(last)
	if err != nil || name == "" || name == "." || name == ".." ||
		strings.ContainsAny(name, "/\x00") {
		return "", false, false
	}
	return name, isDir, true
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
