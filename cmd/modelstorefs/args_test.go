package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

func TestNormalizeArgs(t *testing.T) {
	app := newApp(func() {})
	cases := []struct {
		name string
		in   []string
		want []string
		warn bool
		err  string
	}{
		{"flags after the mountpoint", []string{"mount", "/m", "--store", "http://a/", "--ttl=1h"},
			[]string{"mount", "--store", "http://a/", "--ttl", "1h", "--", "/m"}, false, ""},
		{"alias and name mixed", []string{"mount", "--store", "http://a/", "-s", "http://b/", "/m"},
			[]string{"mount", "--store", "http://a/", "--store", "http://b/", "--", "/m"}, false, ""},
		{"bool flags take no value", []string{"ls", "--json", "--filter", "x", "--refresh"},
			[]string{"ls", "--json", "--filter", "x", "--refresh"}, false, ""},
		{"-o expands", []string{"mount", "/m", "-o", "allow_other,cache_size=1G,rw"},
			[]string{"mount", "--allow-other", "--cache-size", "1G", "--", "/m"}, false, ""},
		{"-o ro is --read-only", []string{"mount", "/m", "-o", "ro"},
			[]string{"mount", "--read-only", "--", "/m"}, false, ""},
		{"after --, everything is positional", []string{"check", "--", "-odd-dir"},
			[]string{"check", "--", "-odd-dir"}, false, ""},
		{"a password warns", []string{"mount", "-s", "http://u:secret@a/", "/m"},
			[]string{"mount", "--store", "http://u:secret@a/", "--", "/m"}, true, ""},
		{"a password in -o store= warns once", []string{"mount", "-o", "store=http://u:pw@a/", "-s", "http://v:pw@b/", "/m"},
			[]string{"mount", "--store", "http://u:pw@a/", "--store", "http://v:pw@b/", "--", "/m"}, true, ""},
		{"a user without password does not", []string{"ls", "-s", "n=http://u@a/"},
			[]string{"ls", "--store", "n=http://u@a/"}, false, ""},
		{"help COMMAND", []string{"help", "mount"}, []string{"mount", "--help"}, false, ""},
		{"help", []string{"help"}, []string{"--help"}, false, ""},
		{"unknown command", []string{"mnt", "/m"}, nil, false, `unknown command "mnt"; see 'modelstorefs --help'`},
		{"help on an unknown command", []string{"help", "mnt"}, nil, false, `unknown command "mnt"`},
		{"help anywhere", []string{"import", "x/y", "-h"}, []string{"import", "--help", "--", "x/y"}, false, ""},
		{"unknown command, a typo", []string{"imprt", "x/y"}, nil, false, `unknown command "imprt" (did you mean import?); see 'modelstorefs --help'`},
		{"unknown flag, a typo", []string{"mount", "/m", "--cache-sise", "1G"}, nil, false,
			"mount: unknown flag --cache-sise (did you mean --cache-size?); see 'modelstorefs mount --help'"},
		{"unknown flag, far from every flag", []string{"mount", "/m", "--verbose"}, nil, false, "mount: unknown flag --verbose; see"},
		{"a mount flag on ls", []string{"ls", "--buffer-size", "1G"}, nil, false, "ls: unknown flag --buffer-size (a flag of mount, prefetch); see"},
		{"a mount flag on import", []string{"import", "x/y", "--retry-window=2s"}, nil, false, "import: unknown flag --retry-window=2s (a flag of mount, prefetch)"},
		{"a cache flag on check", []string{"check", "--cache-dir", "/c"}, nil, false, "check: unknown flag --cache-dir (a flag of mount, import, ls, prefetch)"},
		{"unknown flag, command without flags", []string{"unmount", "-x", "/m"}, nil, false, "unmount: unknown flag -x"},
		{"unknown global flag", []string{"--verbose", "ls"}, nil, false, "unknown flag --verbose; see 'modelstorefs --help'"},
		{"missing value", []string{"ls", "--store"}, nil, false, "flag --store needs a value"},
		{"bad -o", []string{"mount", "-o", "cache_sise=1G", "/m"}, nil, false, `unknown mount option "cache_sise=1G"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := normalizeArgs(app, append([]string{"modelstorefs"}, c.in...))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(n.args[1:], c.want) {
				t.Errorf("args %q, want %q", n.args[1:], c.want)
			}
			if got := len(n.warnings) == 1 && strings.Contains(n.warnings[0], "~/.netrc"); got != c.warn {
				t.Errorf("warnings %q, want a password warning: %v", n.warnings, c.warn)
			}
		})
	}
}

// complete returns the candidates the shell scripts get for words.
func completions(t *testing.T, words ...string) []string {
	t.Helper()
	var out bytes.Buffer
	app := newApp(func() {})
	app.Writer = &out
	if err := run(t.Context(), app, append(append([]string{"modelstorefs"}, words...), "--"+completionFlag)); err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out.String())
}

func TestCompletion(t *testing.T) {
	noStoreEnv(t)
	cacheDir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cacheDir)
	// The model list kept by an ls of the sample store (lenet importable,
	// broken not), which is then stopped.
	srv := remotetest.New(storetest.SampleFiles(t), remotetest.Options{})
	store := "s1=" + srv.URL
	if _, stderr, err := runApp(t, "ls", "--store", store); err != nil {
		t.Fatalf("ls: %v\n%s", err, stderr)
	}
	srv.Close() // completion asks no store

	cases := []struct {
		words   []string
		want    []string
		without []string
	}{
		{[]string{""}, []string{"mount", "import", "ls", "version"}, []string{"help", "h"}},
		{[]string{"mount", ""}, nil, []string{"help", "h"}},
		{[]string{"ls", "--"}, []string{"--filter", "--json", "--refresh", "--store", "--cache-dir"}, []string{"--chunk-size", "--read-parallel"}},
		{[]string{"mount", "/mnt", "--d"}, []string{"--daemon", "--debug-fuse"}, []string{"--cache-dir"}},
		{[]string{"mount", "--log-level", ""}, []string{"debug", "info", "warn", "error"}, nil},
		{[]string{"mount", "--cache-dir", ""}, nil, []string{"--cache-dir"}},
		{[]string{"import", "--store", store, ""}, []string{"s1/lenet"}, []string{"s1/broken", "help"}},
		{[]string{"import", "--store", store, "s1/l"}, []string{"s1/lenet"}, nil},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}, nil},
	}
	for _, c := range cases {
		got := completions(t, c.words...)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("completing %q: %q missing from %q", c.words, w, got)
			}
		}
		for _, w := range c.without {
			if slices.Contains(got, w) {
				t.Errorf("completing %q offers %q: %q", c.words, w, got)
			}
		}
		if c.want == nil && len(got) > 0 && c.without != nil && c.words[0] == "mount" && c.words[len(c.words)-1] == "" {
			t.Errorf("completing %q offers %q, want nothing (file names)", c.words, got)
		}
	}
}
