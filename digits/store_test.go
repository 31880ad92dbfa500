package digits

import (
	"encoding/json"
	"fmt"
	"slices"
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

// TestMasterJSONFolders: folders are described in order while the
// document stays within its bound; the document is always valid JSON with
// every child.
func TestMasterJSONFolders(t *testing.T) {
	children := []string{"a", "b<&>", "c", "d"}
	entry := []MasterEntry{{Name: "info.json", Size: 12, MTime: 1, ETag: `"x"`}}
	folders := [][]MasterEntry{entry, entry, nil, entry}
	full := MasterJSONFolders("m", children, folders, 1<<20, 0)
	one := len(`"a":{"info.json":[12,1,"\"x\""]},`)
	tests := []struct {
		max  int
		want []string
	}{
		{1 << 20, []string{"a", "b<&>", "d"}},
		{len(full), []string{"a", "b<&>", "d"}},
		{len(full) - 1, []string{"a", "b<&>"}},
		{len(full) - one - 20, []string{"a"}},
		{10, nil},
	}
	for _, tc := range tests {
		b := MasterJSONFolders("m", children, folders, tc.max, 0)
		var got struct {
			Msg      string
			Children []string
			Folders  map[string]map[string][]any
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("max %d: %q: %v", tc.max, b, err)
		}
		if got.Msg != "m" || !slices.Equal(got.Children, children) {
			t.Errorf("max %d: msg %q children %q", tc.max, got.Msg, got.Children)
		}
		var described []string
		for _, c := range children {
			if f, ok := got.Folders[c]; ok {
				described = append(described, c)
				if fmt.Sprint(f) != "map[info.json:[12 1 \"x\"]]" {
					t.Errorf("max %d: folder %s = %v", tc.max, c, f)
				}
			}
		}
		if !slices.Equal(described, tc.want) {
			t.Errorf("max %d (document %d bytes): described %q, want %q", tc.max, len(b), described, tc.want)
		}
		if len(b) > max(tc.max, len(MasterJSON("m", children))+len(`,"folders":{}}`)) {
			t.Errorf("max %d: document of %d bytes", tc.max, len(b))
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "info.json", `"5a-1f"`, `a\b"c`, "caffé", "tab\there", "<b>&", "\x7f", "line\nbreak"} {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("appendJSONString(%q) = %s, want x%s", s, got, want)
		}
	}
}

// TestMasterJSONFolderPages: the children master.json has no room to
// describe are named in pages of per children (fewer pages than
// MaxFolderPages), the list fits within max, and a page describes its
// folders within its own bound.
func TestMasterJSONFolderPages(t *testing.T) {
	entry := []MasterEntry{{Name: "info.json", Size: 12, MTime: 1, ETag: `"x"`}}
	children := make([]string, 50)
	folders := make([][]MasterEntry, len(children))
	for i := range children {
		children[i] = fmt.Sprintf("m%03d", i)
		folders[i] = entry
	}
	tests := []struct {
		name      string
		described int // folders given described
		max, per  int
		pages     int // at least this many
	}{
		{"all fit: no pages", 50, 1 << 20, 10, 0},
		{"half described", 25, 1 << 20, 10, 3},
		{"room for some", 50, 1500, 10, 2},
		{"a page each", 10, 1 << 20, 1, 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := MasterJSONFolders("m", children, folders[:tc.described], tc.max, tc.per)
			if len(b) > tc.max {
				t.Errorf("%d bytes, over %d", len(b), tc.max)
			}
			var got struct {
				Children []string
				Folders  map[string]any
				Pages    [][]string `json:"folder_pages"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			// Every child is described or in exactly one page, in order.
			next := 0
			for next < len(children) && got.Folders[children[next]] != nil {
				next++
			}
			if len(got.Pages) < tc.pages || len(got.Pages) > MaxFolderPages {
				t.Errorf("%d pages, want at least %d", len(got.Pages), tc.pages)
			}
			for _, p := range got.Pages {
				if len(p) != 2 || next >= len(children) || p[0] != children[next] {
					t.Fatalf("page %q, want one from %q (pages %q)", p, children[min(next, len(children)-1)], got.Pages)
				}
				next = slices.Index(children, p[1]) + 1
			}
			if next != len(children) {
				t.Errorf("described and paged up to %d of %d children", next, len(children))
			}
		})
	}
	if got := pageSize(100_000, 1); got != 100_000/MaxFolderPages {
		t.Errorf("pageSize(100000, 1) = %d, want pages capped at %d", got, MaxFolderPages)
	}
	page := FolderPage(children[:3], folders[:3], 90)
	var got struct{ Folders map[string]any }
	if err := json.Unmarshal(page, &got); err != nil || len(page) > 90 || len(got.Folders) != 2 {
		t.Errorf("page of 90 bytes: %s (%d bytes, %d folders) %v, want two folders", page, len(page), len(got.Folders), err)
	}
}
