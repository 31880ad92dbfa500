package remote

import (
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/digits"
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
			if err := digits.ValidName(n); err != nil {
				t.Fatalf("invalid name %q kept: %v", n, err)
			}
			if seen[n] {
				t.Fatalf("duplicate %q", n)
			}
			seen[n] = true
		}
	})
}
