package digits

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"lenet", true},
		{"a model with spaces", true},
		{"100%pure", true},
		{"caffé", true},
		{"模型", true},
		{".hidden", true},
		{"..a", true},
		{"a..", true},
		{"...", true},
		{"a:b", true},
		{"master.json", true},
		{strings.Repeat("x", 255), true},
		{strings.Repeat("é", 127), true}, // 254 bytes
		{"", false},
		{".", false},
		{"..", false},
		{"/", false},
		{"a/b", false},
		{"lenet/", false},
		{"../etc", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\tb", false},
		{"a\x1bb", false},
		{"a\x7fb", false},
		{"\xff\xfe", false},
		{"caf\xe9", false},
		{strings.Repeat("x", 256), false},
		{strings.Repeat("x", 300), false},
		{strings.Repeat("é", 128), false}, // 256 bytes
	}
	for _, tc := range tests {
		err := ValidName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidName(%.40q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
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
