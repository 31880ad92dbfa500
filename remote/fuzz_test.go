package remote

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseMaster: any master.json either parses into valid, distinct
// names or is refused; it never panics.
func FuzzParseMaster(f *testing.F) {
	for _, seed := range []string{
		`{"msg": "hi", "children": ["lenet", "alexnet"]}`,
		`{"children": "x"}`,
		`{"children": [1, {"a": 2}, null, "ok", "ok", "../x", ".."]}`,
		`{"msg": 5, "children": ["a/"]}`,
		`[]`, `null`, ``, `{"children": ["` + strings.Repeat("a", 300) + `"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := parseMaster(body)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, n := range l.Models {
			if err := ValidName(n); err != nil {
				t.Fatalf("invalid name %q kept: %v", n, err)
			}
			if seen[n] {
				t.Fatalf("duplicate %q", n)
			}
			seen[n] = true
		}
	})
}

// FuzzValidName: whatever ValidName accepts is one safe path segment.
func FuzzValidName(f *testing.F) {
	for _, seed := range []string{"lenet", "..", ".", "a/b", "a\x00b", "%2e%2e", "caffé", "\xff", "a\nb"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00\n") ||
			len(name) > MaxNameLen || !utf8.ValidString(name) {
			t.Fatalf("ValidName accepted %q", name)
		}
	})
}
