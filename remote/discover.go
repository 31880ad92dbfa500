package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/modelstorefs/modelstorefs/digits"
)

// Listing is a store's model list as discovered.
type Listing struct {
	Msg      string   // master.json "msg", or a default greeting
	Models   []string // model folder names, validated, in store order, no duplicates
	Rejected []string // "name: reason" for every name that was refused
	Source   string   // digits.MasterFile or "listing"
	// Fallback says why master.json was not used, when it was there.
	Fallback string
}

// Limits on what discovery will read; larger bodies are refused.
const (
	MaxMasterJSON = 16 << 20
	MaxListing    = 16 << 20
)

// ListModels discovers the store's models: GET master.json; when that is not
// a 200 with a valid JSON object, GET the base and parse the HTML directory
// listing. A store that cannot be reached is an error; a store whose listing
// names no models is an empty Listing.
func (s *Store) ListModels(ctx context.Context) (*Listing, error) {
	body, _, err := s.Fetch(ctx, nil, MaxMasterJSON, digits.MasterFile)
	var fallback string
	switch {
	case err == nil:
		l, perr := parseMaster(body)
		if perr == nil {
			return l, nil
		}
		// Invalid master.json: fall through to the listing, like a 404.
		fallback = perr.Error()
	case errors.Is(err, ErrNotFound), isClientError(err):
	default:
		return nil, fmt.Errorf("list models: %w", err)
	}
	u := s.base.String()
	body, _, err = s.fetchURL(ctx, u, nil, MaxListing)
	if err != nil {
		if fallback != "" {
			return nil, fmt.Errorf("list models: %s, and the listing failed: %w", fallback, err)
		}
		return nil, fmt.Errorf("list models: no master.json, and the listing failed: %w", err)
	}
	names, err := ParseListing(bytes.NewReader(body), s.base)
	if err != nil {
		return nil, fmt.Errorf("list models: parse listing of %s: %w", u, err)
	}
	l := &Listing{Msg: "Thanks for visiting " + u, Source: "listing", Fallback: fallback}
	l.add(names)
	return l, nil
}

// isClientError reports a 4xx answer that means "no master.json here"
// (not 408 or 429, which mean "ask again later").
func isClientError(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code >= 400 && se.Code < 500 && !se.temporary()
}

// ParseMaster is parseMaster, for the renderers' fuzz tests of other
// packages (welcome.txt, models.tsv).
func ParseMaster(body []byte) (*Listing, error) { return parseMaster(body) }

// parseMaster decodes {"msg": "...", "children": ["a", "b"]}. A missing
// "msg" is tolerated; "children" must be a list. Entries that are not valid
// names are rejected one by one, not the whole file.
func parseMaster(body []byte) (*Listing, error) {
	var raw struct {
		Msg      json.RawMessage   `json:"msg"`
		Children []json.RawMessage `json:"children"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("master.json: %w", err)
	}
	if raw.Children == nil {
		return nil, errors.New(`master.json: no "children" list`)
	}
	l := &Listing{Source: digits.MasterFile}
	if len(raw.Msg) > 0 {
		if err := json.Unmarshal(raw.Msg, &l.Msg); err != nil {
			l.Msg = ""
		}
	}
	names := make([]string, 0, len(raw.Children))
	for _, c := range raw.Children {
		var name string
		if !utf8.Valid(c) {
			// encoding/json would turn the bad bytes into U+FFFD, a name
			// the store does not have.
			l.Rejected = append(l.Rejected, fmt.Sprintf("%q: not valid UTF-8", c))
			continue
		}
		if err := json.Unmarshal(c, &name); err != nil {
			l.Rejected = append(l.Rejected, fmt.Sprintf("%.40s: not a string", c))
			continue
		}
		// DIGITS joins "children" entries as paths; "lenet/" means lenet.
		names = append(names, strings.TrimSuffix(name, "/"))
	}
	l.add(names)
	return l, nil
}

func (l *Listing) add(names []string) {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := digits.ValidName(n); err != nil {
			l.Rejected = append(l.Rejected, fmt.Sprintf("%q: %v", n, err))
			continue
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		l.Models = append(l.Models, n)
	}
}
