package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FolderFile is one file of a model folder as a listing or master.json
// tells it. Meta.Size is -1 where the listing gives no size or only an
// approximate one ("1.2K"); LastModified is set only where it is the
// server's own Last-Modified (nginx's JSON listing, modelstorefs serve),
// ETag only from modelstorefs serve. A size without either is a Hint.
type FolderFile struct {
	Name string
	Meta Meta
	// Data is the whole file when master.json carries it (a small
	// info.json or aux.json).
	Data []byte
}

// Folder is what a store says a model folder holds: its files (not its
// subdirectories), sorted by name. A file it does not name is not there.
type Folder []FolderFile

// File returns what the folder says about the file called name.
func (f Folder) File(name string) (Meta, bool) {
	ff, ok := f.Find(name)
	return ff.Meta, ok
}

// Find returns the entry of the file called name.
func (f Folder) Find(name string) (FolderFile, bool) {
	i := sort.Search(len(f), func(i int) bool { return f[i].Name >= name })
	if i < len(f) && f[i].Name == name {
		return f[i], true
	}
	return FolderFile{}, false
}

// ErrNoListing: the store gives no listing of a model folder (the server
// lists no directories, or answered something that is not one).
var ErrNoListing = errors.New("no folder listing")

// acceptListing asks for a JSON listing first: nginx with
// autoindex_format json, Caddy and modelstorefs serve answer one, with
// exact sizes; the others send their HTML listing.
const acceptListing = "application/json, text/html;q=0.9, */*;q=0.8"

// ListFolder GETs the listing of a model folder and says what it holds. A
// store that answers 404, 403 or 405 for it, or something that is not a
// listing, gives an error wrapping ErrNoListing.
func (s *Store) ListFolder(ctx context.Context, model string) (Folder, error) {
	u := s.URL(model) + "/"
	body, ctype, err := s.getListing(ctx, u)
	var se *StatusError
	switch {
	case errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusForbidden ||
		se.Code == http.StatusMethodNotAllowed || se.Code == http.StatusUnauthorized):
		return nil, fmt.Errorf("GET %s: %w: %w", u, ErrNoListing, err)
	case err != nil:
		return nil, err
	}
	base, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	f, err := ParseFolder(body, ctype, base)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w: %w", u, ErrNoListing, err)
	}
	return f, nil
}

// getListing GETs a listing (JSON preferred) and returns its body and
// media type; a body cut short is fetched again, a bounded number of
// times.
func (s *Store) getListing(ctx context.Context, u string) ([]byte, string, error) {
	for attempt := 0; ; attempt++ {
		body, ctype, err := s.getListingOnce(ctx, u)
		if !errors.Is(err, errBody) || attempt >= s.opt.Retries || ctx.Err() != nil {
			return body, ctype, err
		}
	}
}

func (s *Store) getListingOnce(ctx context.Context, u string) ([]byte, string, error) {
	resp, err := s.do(ctx, request{method: http.MethodGet, url: u, header: http.Header{"Accept": {acceptListing}}})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", &StatusError{Method: http.MethodGet, URL: u, Code: resp.StatusCode}
	}
	if resp.ContentLength > MaxListing {
		return nil, "", fmt.Errorf("GET %s: %d bytes: %w (limit %d)", u, resp.ContentLength, ErrTooLarge, MaxListing)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxListing+1))
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w: %w", u, errBody, err)
	}
	if len(body) > MaxListing {
		return nil, "", fmt.Errorf("GET %s: %w (limit %d bytes)", u, ErrTooLarge, MaxListing)
	}
	ctype, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return body, ctype, nil
}

// isJSONListing tells a JSON listing from an HTML one.
func isJSONListing(body []byte, ctype string) bool {
	if ctype == "application/json" {
		return true
	}
	b := bytes.TrimLeft(body, " \t\r\n")
	return ctype == "" && len(b) > 0 && b[0] == '['
}

// ParseFolder reads a folder listing (HTML or JSON, by its media type) of
// the folder at base: the files it names, with their sizes where the
// listing gives exact ones.
func ParseFolder(body []byte, ctype string, base *url.URL) (Folder, error) {
	var f Folder
	if isJSONListing(body, ctype) {
		entries, err := parseJSONListing(body)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.dir {
				f = append(f, FolderFile{Name: e.name, Meta: e.meta})
			}
		}
	} else {
		seen := map[string]bool{}
		err := scanListing(bytes.NewReader(body), base, func(name string, dir bool, tail string) error {
			if dir || seen[name] {
				return nil
			}
			if len(seen) == maxListingNames {
				return fmt.Errorf("listing has over %d names: %w", maxListingNames, ErrTooLarge)
			}
			seen[name] = true
			size := tailSize(tail)
			f = append(f, FolderFile{Name: name, Meta: Meta{Size: size, Hint: size >= 0}})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(f, func(i, j int) bool { return f[i].Name < f[j].Name })
	return f, nil
}

var (
	// clockField is the time of day a listing shows before the size
	// (nginx "05-Dec-2026 23:09", Apache "2026-12-05 23:09").
	clockField = regexp.MustCompile(`^\d{1,2}:\d{2}(:\d{2})?$`)
	// exactSize is a size in bytes; "1.2K", "3M" or "-" are not.
	exactSize = regexp.MustCompile(`^\d{1,19}$`)
)

// tailSize reads the exact size from the text after a link: the field
// after the time of day, when it is a plain number of bytes; -1 otherwise.
func tailSize(tail string) int64 {
	fields := strings.Fields(tail)
	for i := 0; i+1 < len(fields); i++ {
		if !clockField.MatchString(fields[i]) {
			continue
		}
		if !exactSize.MatchString(fields[i+1]) {
			return -1
		}
		n, err := strconv.ParseInt(fields[i+1], 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}

// jsonEntry is one entry of a JSON listing.
type jsonEntry struct {
	name string
	dir  bool
	meta Meta
}

// parseJSONListing reads a JSON listing: a list of objects with "name" and
// "type" ("file", "directory") and "size" (nginx autoindex_format json),
// or "is_dir" (Caddy); "mtime" counts as Last-Modified only when it is an
// HTTP date (nginx writes the very string of its Last-Modified), "etag"
// is taken as the server's (modelstorefs serve). Names that are not one
// path segment are skipped.
func parseJSONListing(body []byte) ([]jsonEntry, error) {
	var raw []struct {
		Name  *string `json:"name"`
		Type  string  `json:"type"`
		IsDir bool    `json:"is_dir"`
		Size  *int64  `json:"size"`
		MTime string  `json:"mtime"`
		ETag  string  `json:"etag"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("JSON listing: %w", err)
	}
	if len(raw) > maxListingNames {
		return nil, fmt.Errorf("listing has over %d names: %w", maxListingNames, ErrTooLarge)
	}
	out := make([]jsonEntry, 0, len(raw))
	seen := map[string]bool{}
	for _, r := range raw {
		if r.Name == nil {
			return nil, errors.New(`JSON listing: an entry has no "name"`)
		}
		name := strings.TrimSuffix(*r.Name, "/")
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || seen[name] {
			continue
		}
		seen[name] = true
		e := jsonEntry{name: name, dir: r.Type == "directory" || r.IsDir || strings.HasSuffix(*r.Name, "/"),
			meta: Meta{Size: -1, ETag: r.ETag}}
		if r.Size != nil && *r.Size >= 0 {
			e.meta.Size = *r.Size
		}
		if t, err := time.Parse(http.TimeFormat, r.MTime); err == nil && t.Format(http.TimeFormat) == r.MTime {
			e.meta.LastModified = r.MTime
		}
		e.meta.Hint = e.meta.Size >= 0 && e.meta.ETag == "" && e.meta.LastModified == ""
		out = append(out, e)
	}
	return out, nil
}
