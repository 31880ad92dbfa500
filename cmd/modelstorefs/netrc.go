package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// netrcEntry is one machine's credentials from a .netrc file.
type netrcEntry struct{ login, password string }

// parseNetrc reads the machine/default entries of a .netrc file (macdef
// bodies are skipped). Keys are host names; "" holds the default entry.
// The first entry for a host wins, as in curl and ftp(1). Tokens may be
// double-quoted with \" \\ \n \r \t escapes (curl 7.84+), so passwords can
// hold spaces and '#'.
//
// This stays ours: no maintained Go library parses .netrc (Go's own parser
// is internal to cmd/go; github.com/jdx/go-netrc, the one published fork,
// has one release, no quoting, and shells out to gpg for *.gpg paths).
func parseNetrc(data string) map[string]netrcEntry {
	entries := map[string]netrcEntry{}
	var (
		host    string
		current *netrcEntry
	)
	flush := func() {
		if current != nil {
			if _, seen := entries[host]; !seen {
				entries[host] = *current
			}
		}
		current = nil
	}
	sc := bufio.NewScanner(strings.NewReader(data))
	inMacro := false
	for sc.Scan() {
		line := sc.Text()
		if inMacro {
			inMacro = strings.TrimSpace(line) != ""
			continue
		}
		fields := netrcFields(line)
		for i := 0; i < len(fields); i++ {
			switch tok := fields[i]; {
			case tok == "machine" && i+1 < len(fields):
				flush()
				host, current = fields[i+1], &netrcEntry{}
				i++
			case tok == "default":
				flush()
				host, current = "", &netrcEntry{}
			case tok == "login" && i+1 < len(fields) && current != nil:
				current.login = fields[i+1]
				i++
			case tok == "password" && i+1 < len(fields) && current != nil:
				current.password = fields[i+1]
				i++
			case tok == "account" && i+1 < len(fields):
				i++
			case tok == "macdef":
				flush()
				inMacro = true
				i = len(fields)
			}
		}
	}
	flush()
	return entries
}

// withNetrc adds credentials from $NETRC or ~/.netrc to store URLs that
// carry none. The remote package sends them only to the URL's own host.
func withNetrc(specs []storeSpec) ([]storeSpec, error) {
	path := os.Getenv("NETRC")
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return specs, nil
		}
		path = filepath.Join(home, ".netrc")
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return specs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	entries := parseNetrc(string(data))
	out := make([]storeSpec, len(specs))
	for i, s := range specs {
		out[i] = s
		u, err := url.Parse(s.URL)
		if err != nil || u.User != nil {
			continue
		}
		e, ok := entries[u.Hostname()]
		if !ok {
			e, ok = entries[""]
		}
		if ok && e.login != "" {
			u.User = url.UserPassword(e.login, e.password)
			out[i].URL = u.String()
		}
	}
	return out, nil
}

// netrcFields splits a line into tokens: blank-separated, or double-quoted
// with backslash escapes. An unquoted '#' starting a token starts a
// comment.
func netrcFields(line string) []string {
	var (
		fields []string
		cur    strings.Builder
		in     bool // inside a token
		quoted bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			switch e := line[i]; e {
			case 'n':
				cur.WriteByte('\n')
			case 'r':
				cur.WriteByte('\r')
			case 't':
				cur.WriteByte('\t')
			default:
				cur.WriteByte(e)
			}
		case quoted && c == '"':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if in {
				fields = append(fields, cur.String())
				cur.Reset()
				in = false
			}
		case c == '"' && !in:
			in, quoted = true, true
		case c == '#' && !in: // a comment runs to the end of the line
			return fields
		default:
			in = true
			cur.WriteByte(c)
		}
	}
	if in {
		fields = append(fields, cur.String())
	}
	return fields
}
