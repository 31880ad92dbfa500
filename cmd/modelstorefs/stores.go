package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/fs"
	"github.com/modelstorefs/modelstorefs/remote"
)

// storeSpec is one configured store: its directory name and base URL.
type storeSpec struct {
	Name string
	URL  string
}

// errNoStore: no store configured. The fstab helper and check say it in
// their own terms.
var errNoStore = errors.New("no model store given: set DIGITS_MODEL_STORE_URL or pass --store URL")

// parseStores turns --store values or DIGITS_MODEL_STORE_URL entries into
// named stores. Each value may hold several comma-separated entries; spaces
// are trimmed and empty entries ignored. An entry is URL or name=URL.
// Derived names never collide: duplicates get _2, _3, ...
func parseStores(values []string) ([]storeSpec, error) {
	var specs []storeSpec
	taken := map[string]bool{}
	for _, r := range fs.ReservedStoreNames {
		taken[r] = true
	}
	for _, v := range values {
		for _, entry := range strings.Split(v, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			name, rawURL := "", entry
			if eq := strings.Index(entry, "="); eq > 0 && eq < strings.Index(entry, "://") {
				name, rawURL = strings.TrimSpace(entry[:eq]), strings.TrimSpace(entry[eq+1:])
				if err := digits.ValidName(name); err != nil {
					return nil, fmt.Errorf("store %q: bad name %q: %w", entry, name, err)
				}
				if taken[name] {
					return nil, fmt.Errorf("store %q: the name %q is already used", entry, name)
				}
				taken[name] = true
			}
			if !strings.Contains(rawURL, "://") {
				return nil, fmt.Errorf("store %q: a store URL needs http:// or https://, e.g. http://%s", entry, rawURL)
			}
			u, err := remote.ParseBaseURL(rawURL)
			if err != nil {
				return nil, err
			}
			specs = append(specs, storeSpec{Name: name, URL: u.String()})
		}
	}
	if len(specs) == 0 {
		return nil, errNoStore
	}
	// Derived names come second, so an explicit name always wins.
	for i := range specs {
		if specs[i].Name != "" {
			continue
		}
		u, _ := url.Parse(specs[i].URL)
		base := storeDirName(u)
		name := base
		for n := 2; taken[name]; n++ {
			suffix := fmt.Sprintf("_%d", n)
			name = truncateName(base, digits.MaxNameLen-len(suffix)) + suffix
		}
		taken[name] = true
		specs[i].Name = name
	}
	return specs, nil
}

// storeValues returns the --store values (or DIGITS_MODEL_STORE_URL's) and
// the lines of --store-file, which replaces the environment variable unless
// --store was given too.
func storeValues(c *cli.Context) ([]string, error) {
	values := c.StringSlice("store")
	file := c.String("store-file")
	if file == "" {
		return values, nil
	}
	if !storeFlagGiven(c) {
		values = nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--store-file: %w", err)
	}
	n := len(values)
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			values = append(values, line)
		}
	}
	if len(values) == n {
		return nil, fmt.Errorf("--store-file %s names no store", file)
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o044 != 0 && hasPassword(strings.Join(values[n:], ",")) {
		fmt.Fprintf(c.App.ErrWriter, "modelstorefs: warning: --store-file %s holds a password and other users may read it (mode %v): chmod 600 it\n",
			file, fi.Mode().Perm())
	}
	return values, nil
}

// storeFlagGiven reports whether --store is on the command line (not only
// in the environment).
func storeFlagGiven(c *cli.Context) bool { return flagOnCommandLine(c, "store", storeEnv) }

// flagOnCommandLine reports whether --name is on the command line, not
// only in its environment variable env.
func flagOnCommandLine(c *cli.Context, name, env string) bool {
	args, ok := c.App.Metadata[argsKey].([]string)
	if !ok {
		return c.IsSet(name) && os.Getenv(env) == ""
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--"+name {
			return true
		}
	}
	return false
}

// storeDirName derives a directory name from a store URL: host, "_port"
// when not the scheme's default, then the path with "/" as "_".
// http://127.0.0.1:8001/team/ -> 127.0.0.1_8001_team.
func storeDirName(u *url.URL) string {
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, ""
	}
	host = strings.Trim(host, "[]") // IPv6 literal
	parts := []string{host}
	if port != "" && !(u.Scheme == "http" && port == "80") && !(u.Scheme == "https" && port == "443") {
		parts = append(parts, port)
	}
	for _, seg := range strings.Split(strings.Trim(u.Path, "/"), "/") {
		if seg != "" {
			parts = append(parts, seg)
		}
	}
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, strings.Join(parts, "_"))
	name = truncateName(name, digits.MaxNameLen)
	if digits.ValidName(name) != nil {
		name = "store"
	}
	return name
}

// truncateName cuts s to at most n bytes without splitting a character.
func truncateName(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
