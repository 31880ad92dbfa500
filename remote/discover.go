package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/modelstorefs/modelstorefs/digits"
)

// Listing is a store's model list as discovered.
type Listing struct {
	Msg      string   // master.json "msg", or a default greeting
	Models   []string // model folder names, validated, in store order, no duplicates
	Rejected []string // "name: reason" for every name that was refused (names quoted, cut at 80 characters)
	Source   string   // digits.MasterFile or "listing"
	// Fallback says why master.json was not used, when it was there.
	Fallback string
	// Folders are what master.json says each model folder holds
	// (modelstorefs serve's "folders"); nil when it says nothing.
	Folders *Folders
}

// Folders is what master.json says of the model folders, read when first
// asked: a store's listing is shown before the folders of ten thousand
// models are read. What master.json had no room for is in folder pages
// (digits.MasterFolderPages), each fetched when a folder of it is first
// asked about, or just before (ReadAhead).
type Folders struct {
	raw   []byte
	once  sync.Once
	mu    sync.Mutex // protects m, pages' state and asked
	m     masterFolders
	pages []*folderPage // sorted by first, not overlapping
	store *Store        // where the pages are
	// asked is closed, and made anew, when a page is first asked about,
	// or the first folder of master.json itself (askedMaster).
	asked       chan struct{}
	askedMaster bool
}

// folderPage is one range of folders described by a page, and whether it
// was read.
type folderPage struct {
	first, last string
	asked       bool          // a folder of it was asked about
	read        bool          // its folders are in m (or it failed)
	reading     chan struct{} // closed when the running read ends
	err         error         // why it failed, until a caller is told
}

// Folder returns what master.json (or its page) says the folder of model
// holds; ok is false when it says nothing of it. err is a page that could
// not be read, told to one caller that asks for a folder of it (the others
// are told nothing of the page's folders).
func (f *Folders) Folder(ctx context.Context, model string) (folder Folder, ok bool, err error) {
	return f.find(ctx, model, false)
}

// Take is Folder, forgetting what it returns: a catalog that keeps what
// it learned holds no second copy (asking again later, it asks the store).
func (f *Folders) Take(ctx context.Context, model string) (folder Folder, ok bool, err error) {
	return f.find(ctx, model, true)
}

func (f *Folders) find(ctx context.Context, model string, take bool) (folder Folder, ok bool, err error) {
	if f == nil {
		return nil, false, nil
	}
	f.parse()
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pageOf(model)
	if p == nil {
		f.noteAsked(&f.askedMaster)
	} else {
		f.noteAsked(&p.asked)
		if _, ok := f.m[model]; !ok {
			f.readLocked(ctx, p)
		}
		err, p.err = p.err, nil
	}
	folder, ok = f.m[model]
	if take {
		delete(f.m, model)
	}
	return folder, ok, err
}

// noteAsked sets asked, telling ReadAhead when it was not set.
func (f *Folders) noteAsked(asked *bool) {
	if !*asked {
		*asked = true
		close(f.asked)
		f.asked = make(chan struct{})
	}
}

// pageOf is the page whose range holds model; nil when none does, or
// when there is no store to read it from.
func (f *Folders) pageOf(model string) *folderPage {
	i := sort.Search(len(f.pages), func(i int) bool { return f.pages[i].last >= model })
	if i == len(f.pages) || f.pages[i].first > model || f.store == nil {
		return nil
	}
	return f.pages[i]
}

// ReadAhead reads the folder pages in order, each once a folder of the
// page before it was asked about (the first once any folder was), so that
// callers asking for the folders in order find the next page read while
// they work on one. It returns when every page is read, or when ctx ends.
func (f *Folders) ReadAhead(ctx context.Context) {
	if f == nil || f.store == nil {
		return
	}
	f.parse()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.pages {
		for !f.wantedLocked(i) {
			if !f.waitLocked(ctx, f.asked) {
				return
			}
		}
		f.readLocked(ctx, p)
		if ctx.Err() != nil {
			return
		}
	}
}

// waitLocked waits, without f.mu, until ch is closed or ctx ends; false
// when ctx ended.
func (f *Folders) waitLocked(ctx context.Context, ch <-chan struct{}) bool {
	f.mu.Unlock()
	defer f.mu.Lock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// wantedLocked says whether page i will be asked for soon: a folder of
// the page before it (of master.json itself, for the first) was.
func (f *Folders) wantedLocked(i int) bool {
	if i == 0 {
		return f.askedMaster
	}
	return f.pages[i-1].asked
}

// readLocked reads page p, unless it was read; one read at a time per
// page, the others waiting for it. A read ended by ctx is tried again by
// the next caller; a failure is kept for the next caller to be told.
func (f *Folders) readLocked(ctx context.Context, p *folderPage) {
	for !p.read {
		if p.reading != nil {
			if !f.waitLocked(ctx, p.reading) {
				return
			}
			continue
		}
		p.reading = make(chan struct{})
		f.mu.Unlock()
		m, err := f.store.folderPage(ctx, p.first, p.last)
		f.mu.Lock()
		close(p.reading)
		p.reading = nil
		if err != nil && ctx.Err() != nil {
			return
		}
		p.read, p.err = true, err
		for name, folder := range m {
			// A page tells only of its own range.
			if _, ok := f.m[name]; !ok && p.first <= name && name <= p.last {
				f.m[name] = folder
			}
		}
	}
}

// folderPage GETs the page of the folders named first to last.
func (s *Store) folderPage(ctx context.Context, first, last string) (masterFolders, error) {
	q := url.Values{"from": {first}, "to": {last}}
	body, _, err := s.fetchURL(ctx, s.URL(digits.FolderPageFile)+"?"+q.Encode(), nil, MaxMasterJSON)
	if err != nil {
		return nil, fmt.Errorf("folder page %q to %q: %w", first, last, err)
	}
	var page struct {
		Folders masterFolders `json:"folders"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("folder page %q to %q: %w", first, last, err)
	}
	return page.Folders, nil
}

func (f *Folders) parse() {
	f.once.Do(func() {
		var m masterFolders
		_ = m.UnmarshalJSON(f.raw) // a malformed "folders" says nothing
		if m == nil {
			m = masterFolders{}
		}
		f.mu.Lock()
		f.m, f.raw, f.asked = m, nil, make(chan struct{})
		f.mu.Unlock()
	})
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
			if l.Folders != nil {
				l.Folders.store = s
			}
			return l, nil
		}
		if errors.Is(perr, ErrTooLarge) { // as a body over the byte limit
			return nil, fmt.Errorf("list models: %w", perr)
		}
		// Invalid master.json: fall through to the listing, like a 404.
		fallback = perr.Error()
	case errors.Is(err, ErrNotFound), isClientError(err):
	default:
		return nil, fmt.Errorf("list models: %w", err)
	}
	u := s.base.String()
	names, err := s.listRoot(ctx, u)
	if err != nil {
		if fallback != "" {
			return nil, fmt.Errorf("list models: %s, and the listing failed: %w", fallback, err)
		}
		return nil, fmt.Errorf("list models: no master.json, and the listing failed: %w", err)
	}
	l := &Listing{Msg: "Thanks for visiting " + u, Source: "listing", Fallback: fallback}
	l.add(names)
	return l, nil
}

// listRoot GETs the store's own listing and returns the folders it names,
// from HTML (python, Apache, nginx) or JSON (nginx autoindex_format json).
func (s *Store) listRoot(ctx context.Context, u string) ([]string, error) {
	body, ctype, err := s.getListing(ctx, u)
	if err != nil {
		return nil, err
	}
	if isJSONListing(body, ctype) {
		entries, err := parseJSONListing(body)
		if err != nil {
			return nil, fmt.Errorf("parse listing of %s: %w", u, err)
		}
		var names []string
		for _, e := range entries {
			if e.dir {
				names = append(names, e.name)
			}
		}
		return names, nil
	}
	names, err := ParseListing(bytes.NewReader(body), s.base)
	if err != nil {
		return nil, fmt.Errorf("parse listing of %s: %w", u, err)
	}
	return names, nil
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
// "msg" is tolerated; "children" must be a list of at most maxListingNames
// entries (as an HTML listing; more is an error wrapping ErrTooLarge).
// Entries that are not valid names are rejected one by one, not the whole
// file.
func parseMaster(body []byte) (*Listing, error) {
	var raw struct {
		Msg      json.RawMessage `json:"msg"`
		Children masterChildren  `json:"children"`
		Folders  json.RawMessage `json:"folders"`
		Pages    masterPages     `json:"folder_pages"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("master.json: %w", err)
	}
	if !raw.Children.list {
		return nil, errors.New(`master.json: no "children" list`)
	}
	l := &Listing{Source: digits.MasterFile, Rejected: raw.Children.rejected}
	if len(raw.Msg) > 0 {
		if err := json.Unmarshal(raw.Msg, &l.Msg); err != nil {
			l.Msg = ""
		}
	}
	l.add(raw.Children.names)
	if len(raw.Folders) > 0 || len(raw.Pages) > 0 {
		l.Folders = &Folders{raw: raw.Folders, pages: raw.Pages}
	}
	return l, nil
}

// masterPages is master.json's "folder_pages" (digits.MasterFolderPages):
// [["first", "last"], ...]. Pages out of order, overlapping, or more than
// digits.MaxFolderPages are not ours: they are ignored whole, and so is a
// malformed list.
type masterPages []*folderPage

func (p *masterPages) UnmarshalJSON(data []byte) error {
	*p = nil
	var ranges [][2]string
	if json.Unmarshal(data, &ranges) != nil || len(ranges) > digits.MaxFolderPages {
		return nil
	}
	pages := make(masterPages, 0, len(ranges))
	for i, r := range ranges {
		if r[0] > r[1] || (i > 0 && r[0] <= ranges[i-1][1]) {
			return nil
		}
		pages = append(pages, &folderPage{first: r[0], last: r[1]})
	}
	*p = pages
	return nil
}

// masterFolders is master.json's "folders", as modelstorefs serve writes
// it (digits.MasterFolder): {"model": {"file": [size, mtime, "etag"]}},
// mtime in Unix seconds. A folder with a malformed entry is left out (it
// is then asked about as if master.json said nothing); "folders" that is
// not an object is ignored whole: it is not ours.
type masterFolders map[string]Folder

func (m *masterFolders) UnmarshalJSON(data []byte) error {
	*m = nil
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	out := masterFolders{}
	dates := map[int64]string{} // files share dates: one string each
	// Decoded one folder at a time, and no more folders than a listing
	// may name: the bound on children holds here too.
	for n := 0; dec.More() && n < maxListingNames; n++ {
		tok, err := dec.Token()
		model, ok := tok.(string)
		var files map[string]masterFile
		if err != nil || !ok || dec.Decode(&files) != nil {
			return nil
		}
		if f := masterFolder(files, dates); f != nil {
			out[model] = f
		}
	}
	*m = out
	return nil
}

// masterFolder is one folder of "folders", sorted; nil when an entry is
// malformed.
func masterFolder(files map[string]masterFile, dates map[int64]string) Folder {
	f := make(Folder, 0, len(files))
	for name, e := range files {
		if !e.ok || name == "" || strings.ContainsAny(name, "/\x00") {
			return nil
		}
		lm, ok := dates[e.mtime]
		if !ok {
			lm = time.Unix(e.mtime, 0).UTC().Format(http.TimeFormat)
			dates[e.mtime] = lm
		}
		f = append(f, FolderFile{Name: name, Meta: Meta{Size: e.size, ETag: e.etag, LastModified: lm}, Data: e.data})
	}
	sort.Slice(f, func(i, j int) bool { return f[i].Name < f[j].Name })
	return f
}

// masterFile is one [size, mtime, "etag"(, "content")] of "folders"; ok
// is false when it is not that. Read by hand: a store of ten thousand
// models has fifty thousand of them, and encoding/json takes microseconds
// for each.
type masterFile struct {
	size, mtime int64
	etag        string
	data        []byte // the whole file, when given
	ok          bool
}

func (f *masterFile) UnmarshalJSON(b []byte) error {
	*f = masterFile{}
	// b is one valid JSON value: the decoder checked it.
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '[' {
		return nil
	}
	fields := bytes.SplitN(b[1:len(b)-1], []byte(","), 3)
	if len(fields) < 2 {
		return nil
	}
	var err1, err2 error
	f.size, err1 = strconv.ParseInt(string(bytes.TrimSpace(fields[0])), 10, 64)
	f.mtime, err2 = strconv.ParseInt(string(bytes.TrimSpace(fields[1])), 10, 64)
	if err1 != nil || err2 != nil || f.size < 0 {
		return nil
	}
	if len(fields) == 3 {
		// The ETag, the content, then whatever a later version adds.
		etag, rest, ok := leadingString(bytes.TrimSpace(fields[2]))
		if !ok {
			return nil
		}
		f.etag = etag
		if rest, ok := bytes.CutPrefix(bytes.TrimSpace(rest), []byte(",")); ok {
			if data, _, ok := leadingString(bytes.TrimSpace(rest)); ok && int64(len(data)) == f.size {
				f.data = []byte(data)
			}
		}
	}
	f.ok = true
	return nil
}

// leadingString decodes the JSON string b starts with, and returns what
// follows it.
func leadingString(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	escaped := false
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			if !escaped {
				return string(b[1:i]), b[i+1:], true
			}
			var s string
			if json.Unmarshal(b[:i+1], &s) != nil {
				return "", nil, false
			}
			return s, b[i+1:], true
		}
	}
	return "", nil, false
}

// masterChildren is master.json's "children", decoded one entry at a time
// and refused at the cap: eight million entries ("1,") fit in the 16 MiB
// body, and decoding them all, each kept or refused, allocated 4 GB.
type masterChildren struct {
	list     bool     // a list was given (null is none)
	names    []string // the string entries, "/" trimmed, unvalidated
	rejected []string // "entry: reason" for the others
}

func (c *masterChildren) UnmarshalJSON(data []byte) error {
	*c = masterChildren{} // as encoding/json does, the last "children" wins
	if string(data) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return errors.New(`"children" is not a list`)
	}
	c.list = true
	for n := 0; dec.More(); n++ {
		if n == maxListingNames {
			return fmt.Errorf(`"children" has over %d entries: %w`, maxListingNames, ErrTooLarge)
		}
		var entry json.RawMessage
		if err := dec.Decode(&entry); err != nil {
			return fmt.Errorf(`"children" entry %d: %w`, n, err)
		}
		name, reason := childName(entry)
		if reason != "" {
			c.rejected = append(c.rejected, quoteShort(string(entry))+": "+reason)
			continue
		}
		// DIGITS joins "children" entries as paths; "lenet/" means lenet.
		c.names = append(c.names, strings.TrimSuffix(name, "/"))
	}
	return nil
}

// childName decodes one "children" entry, or says why it is no name.
// Most are plain strings, taken as they are: a json.Unmarshal each would
// allocate its decoder state 100000 times.
func childName(entry []byte) (name, reason string) {
	if len(entry) < 2 || entry[0] != '"' {
		return "", "not a string"
	}
	if !utf8.Valid(entry) {
		// encoding/json would turn the bad bytes into U+FFFD, a name the
		// store does not have.
		return "", "not valid UTF-8"
	}
	if !bytes.ContainsRune(entry, '\\') {
		// The document is valid JSON: no escapes means no controls either.
		return string(entry[1 : len(entry)-1]), ""
	}
	if err := json.Unmarshal(entry, &name); err != nil {
		return "", "not a string"
	}
	return name, ""
}

// quoteShort quotes a refused name for Rejected: control characters and
// bytes that are not UTF-8 escaped, and at most 80 characters of it, as
// the name may be megabytes long.
func quoteShort(s string) string {
	const limit = 80
	if utf8.RuneCountInString(s) <= limit {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%.*q...", limit, s)
}

func (l *Listing) add(names []string) {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := digits.ValidName(n); err != nil {
			l.Rejected = append(l.Rejected, fmt.Sprintf("%s: %v", quoteShort(n), err))
			continue
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		l.Models = append(l.Models, n)
	}
}
