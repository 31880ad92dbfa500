package digits

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The store format around the models: file names, bounds, the rule for
// names, and the two ways a store lists its models (master.json and a
// python http.server directory listing). `modelstorefs serve`, the test
// store, the client and `check` all take them from here.

// Names with a meaning in a store or in a model folder.
const (
	// MasterFile lists a store's models: {"msg": ..., "children": [...]}.
	MasterFile = "master.json"
	// InfoFile describes a model; AuxFile adds optional metadata.
	InfoFile = "info.json"
	AuxFile  = "aux.json"
	// ErrorFile is what modelstorefs shows in a folder it cannot import.
	ErrorFile = "error.txt"
)

// Bounds on what is read whole into memory.
const (
	// MaxSmallFile bounds info.json and aux.json; anything larger is refused.
	MaxSmallFile = 4 << 20
	// MaxMasterJSON bounds master.json and directory listings.
	MaxMasterJSON = 16 << 20
)

// MaxNameLen is the longest name of a folder or file, in bytes (NAME_MAX
// on Linux).
const MaxNameLen = 255

// ValidName reports why name cannot be one path segment of the mounted tree
// (a model folder or a store directory), or nil when it can. It is looser
// than SafeRelName, which also refuses names that look like URLs: a folder
// name is always escaped into a URL, never taken as one.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return errors.New("refers to a directory itself")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name is %d bytes, over %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	case strings.ContainsAny(name, "/\\"):
		return errors.New("contains a path separator")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("contains a control character")
		}
	}
	return nil
}

// MasterJSON renders a master.json: {"msg": msg, "children": children},
// "msg" first as in the DIGITS documentation, with a final newline.
func MasterJSON(msg string, children []string) []byte {
	if children == nil {
		children = []string{}
	}
	b, err := json.Marshal(struct {
		Msg      string   `json:"msg"`
		Children []string `json:"children"`
	}{msg, children})
	if err != nil {
		panic(err) // strings always marshal
	}
	return append(b, '\n')
}

// MasterFolders is the key under which a master.json of modelstorefs serve
// says what each model folder holds, so that a client learns every file's
// presence, size and validators from master.json alone: {"model": {"file":
// [size, mtime, "etag"]}}, mtime in Unix seconds (the file's
// Last-Modified), etag the file's ETag. A small info.json or aux.json
// that is UTF-8 text comes whole too, as a fourth element: [size, mtime,
// "etag", "content"]. DIGITS reads only "msg" and "children" and ignores
// it.
const MasterFolders = "folders"

// MaxInline bounds the info.json and aux.json MasterFolders carries whole.
const MaxInline = 4 << 10

// MasterEntry is one file of a folder in MasterFolders.
type MasterEntry struct {
	Name  string
	Size  int64
	MTime int64 // Unix seconds
	ETag  string
	// Data, when not nil, is the whole file (info.json, aux.json of at
	// most MaxInline bytes of UTF-8 text).
	Data []byte
}

// MasterFolderPages is the key under which a master.json of modelstorefs
// serve names the folders it had no room to describe itself: a list of
// [first, last] pairs, each a range of "children" (in byte order, both
// ends included) described by one folder page. A page is fetched at
// FolderPageFile?from=first&to=last and is {"folders": {...}}, as in
// MasterFolders; a folder it leaves out is asked about as if nothing had
// been said of it.
const MasterFolderPages = "folder_pages"

// FolderPageFile is where modelstorefs serve answers folder pages: a
// hidden name, which no file of a store it serves can have.
const FolderPageFile = ".folders.json"

// MaxFolderPages bounds the pages a master.json names; a client ignores
// more.
const MaxFolderPages = 1000

// MasterJSONFolders renders a master.json with MasterFolders: folders[i]
// is what children[i] holds (nil: not described); the children past
// len(folders) are not described. Folders are described in order while
// the document stays within max bytes. With per > 0 the children past the
// last described are named in MasterFolderPages, per
// children a page (more when that would make over MaxFolderPages); room
// for that list is kept within max.
func MasterJSONFolders(msg string, children []string, folders [][]MasterEntry, max, per int) []byte {
	b := MasterJSON(msg, children)
	b = bytes.TrimSuffix(b, []byte("}\n"))
	if per > 0 {
		per = pageSize(len(children), per)
		max -= pagesRoom(children, per)
	}
	b = append(b, `,"`+MasterFolders+`":`...)
	b, n := appendFolders(b, children, folders, max-len("}\n"))
	if per > 0 && n < len(children) {
		b = appendPages(b, children[n:], per)
	}
	return append(b, "}\n"...)
}

// FolderPage renders a folder page (MasterFolderPages) of at most max
// bytes: folders[i] is what names[i] holds, described in order while they
// fit.
func FolderPage(names []string, folders [][]MasterEntry, max int) []byte {
	b := []byte(`{"` + MasterFolders + `":`)
	b, _ = appendFolders(b, names, folders, max-len("}\n"))
	return append(b, "}\n"...)
}

// appendFolders appends {"name":{...},...}: the folders that fit while b
// stays within max bytes, in order. n is the index of the first name
// left out for room (len(folders) when none is).
func appendFolders(b []byte, names []string, folders [][]MasterEntry, max int) (_ []byte, n int) {
	b = append(b, '{')
	first := true
	var one []byte
	for i, files := range folders {
		if files == nil {
			continue
		}
		one = appendMasterFolder(one[:0], names[i], files)
		if len(b)+len(one)+len("}")+1 > max {
			return append(b, '}'), i
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, one...)
	}
	return append(b, '}'), len(folders)
}

// pageSize is how many children a folder page covers: per, or more when
// per would make over MaxFolderPages pages of n children.
func pageSize(n, per int) int {
	return max(per, (n+MaxFolderPages-1)/MaxFolderPages)
}

// pagesRoom is the most bytes MasterFolderPages can take for any tail of
// children, per a page.
func pagesRoom(children []string, per int) int {
	longest := 0
	for _, c := range children {
		longest = max(longest, len(c))
	}
	pages := (len(children) + per - 1) / per
	// A name escaped by encoding/json takes at most 6 bytes a byte.
	return len(`,"`+MasterFolderPages+`":[]`) + pages*(2*(6*longest+2)+len(`[,],`))
}

// appendPages appends ,"folder_pages":[["first","last"],...] for children,
// at most per a page, the pages made even.
func appendPages(b []byte, children []string, per int) []byte {
	pages := (len(children) + per - 1) / per
	per = (len(children) + pages - 1) / pages
	b = append(b, `,"`+MasterFolderPages+`":[`...)
	for i := 0; i < len(children); i += per {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendJSONString(b, children[i])
		b = append(b, ',')
		b = appendJSONString(b, children[min(i+per, len(children))-1])
		b = append(b, ']')
	}
	return append(b, ']')
}

// appendMasterFolder appends "name":{"file":[size,mtime,"etag"],...}.
func appendMasterFolder(b []byte, name string, files []MasterEntry) []byte {
	b = appendJSONString(b, name)
	b = append(b, ':', '{')
	for j, f := range files {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f.Name)
		b = append(b, ':', '[')
		b = strconv.AppendInt(b, f.Size, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, f.MTime, 10)
		b = append(b, ',')
		b = appendJSONString(b, f.ETag)
		if f.Data != nil && len(f.Data) <= MaxInline && int64(len(f.Data)) == f.Size && utf8.Valid(f.Data) {
			b = append(b, ',')
			b = appendJSONString(b, string(f.Data))
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string: by hand for printable
// ASCII (names, ETags), as encoding/json does otherwise.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				panic(err) // strings always marshal
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// Listing renders a directory listing in python http.server's format for
// the URL path title. names are entry names, directories with a trailing
// "/". The link text is the HTML-escaped name (DIGITS reads the text); the
// href is the name percent-escaped as python's urllib.parse.quote does
// (modelstorefs reads the href).
func Listing(title string, names []string) []byte {
	var b bytes.Buffer
	t := html.EscapeString(title)
	b.WriteString("<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	fmt.Fprintf(&b, "<title>Directory listing for %s</title>\n</head>\n<body>\n", t)
	fmt.Fprintf(&b, "<h1>Directory listing for %s</h1>\n<hr>\n<ul>\n", t)
	for _, n := range names {
		fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a></li>\n", Quote(n), html.EscapeString(n))
	}
	b.WriteString("</ul>\n<hr>\n</body>\n</html>\n")
	return b.Bytes()
}

// Quote percent-escapes every byte except unreserved characters and "/",
// like python's urllib.parse.quote. Unlike url.PathEscape it escapes ":",
// so that "a:b/" is never read as a URL with scheme "a".
func Quote(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
		}
	}
	return b.String()
}
