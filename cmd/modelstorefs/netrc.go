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
		fields := strings.Fields(line)
		for i := 0; i < len(fields); i++ {
			switch tok := fields[i]; {
			case strings.HasPrefix(tok, "#"):
				i = len(fields)
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
