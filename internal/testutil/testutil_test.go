package testutil

import (
	"fmt"
	"strings"
	"testing"
)

// outcome records what SkipOrFail asked of its test instead of ending it.
type outcome struct {
	testing.TB
	fatal, skip string
}

func (o *outcome) Helper()                        {}
func (o *outcome) Fatalf(format string, a ...any) { o.fatal = fmt.Sprintf(format, a...) }
func (o *outcome) Skipf(format string, a ...any)  { o.skip = fmt.Sprintf(format, a...) }

func TestSkipOrFail(t *testing.T) {
	cases := []struct {
		ci        string
		wantFatal string
		wantSkip  string
	}{
		{"", "", "nginx not installed"},
		{"true", "required under CI (CI is set): nginx not installed", ""},
		{"1", "required under CI (CI is set): nginx not installed", ""},
	}
	for _, c := range cases {
		t.Run("CI="+c.ci, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			o := &outcome{TB: t}
			SkipOrFail(o, "%s not installed", "nginx")
			if o.fatal != c.wantFatal || o.skip != c.wantSkip {
				t.Errorf("fatal %q, skip %q; want fatal %q, skip %q", o.fatal, o.skip, c.wantFatal, c.wantSkip)
			}
		})
	}
}

// TestPython finds real interpreters of the asked versions: what it
// returns must run and say that version. Python 3 is needed by the suite
// everywhere, Python 2.7 (DIGITS' own) under CI.
func TestPython(t *testing.T) {
	for _, version := range []string{"2.7", "3"} {
		t.Run(version, func(t *testing.T) {
			p, err := Python(version)
			if err != nil {
				if version == "3" {
					t.Fatal(err)
				}
				SkipOrFail(t, "%v", err)
			}
			got, err := pythonVersion(p)
			if err != nil {
				t.Fatal(err)
			}
			if got != version && !strings.HasPrefix(got, version+".") {
				t.Errorf("Python(%q) = %s, which is Python %s", version, p, got)
			}
			t.Logf("Python %s: %s (%s)", version, p, got)
		})
	}
	if p, err := Python("1.5"); err == nil {
		t.Errorf("Python(1.5) = %s, want an error", p)
	}
}

func TestHarmless(t *testing.T) {
	cases := []struct {
		text, allowed string
		want          rune
		ok            bool
	}{
		{"plain text, ünïcode 日本", "", 0, true},
		{"a\tb\nc", "\t\n", 0, true},
		{"a\tb", "\n", '\t', false},
		{"title\x1b]0;x\x07", "\t\n", 0x1b, false},
		{"nul\x00", "", 0, false},
		{"del\x7f", "", 0x7f, false},
		{"csi\u009b31m", "", 0x9b, false},
		{"nbsp\u00a0 is printable", "", 0, true},
	}
	for _, c := range cases {
		r, ok := Harmless(c.text, c.allowed)
		if r != c.want || ok != c.ok {
			t.Errorf("Harmless(%q, %q) = %U, %v; want %U, %v", c.text, c.allowed, r, ok, c.want, c.ok)
		}
	}
}
