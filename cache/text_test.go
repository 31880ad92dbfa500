package cache

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/digits"
)

func TestCleanText(t *testing.T) {
	tests := []struct{ in, line, text string }{
		{"plain ü 日本", "plain ü 日本", "plain ü 日本"},
		{"a\tb\nc", "a b c", "a\tb\nc"},
		{"a\r\nb", "a  b", "a\nb"},
		{"a\rb", "a b", "a\nb"},
		{"nul\x00esc\x1b[2J\x1b]0;title\x07", `nul\x00esc\x1b[2J\x1b]0;title\x07`, `nul\x00esc\x1b[2J\x1b]0;title\x07`},
		{"del\x7f c1\u009b31m", `del\x7f c1\u009b31m`, `del\x7f c1\u009b31m`},
		{"bad\xffutf8", `bad\xffutf8`, `bad\xffutf8`},
		{"ls\u2028ps\u2029", "ls ps ", "ls\nps\n"},
	}
	for _, tt := range tests {
		if got := CleanLine(tt.in); got != tt.line {
			t.Errorf("CleanLine(%q) = %q, want %q", tt.in, got, tt.line)
		}
		got := CleanText(tt.in)
		if got != tt.text {
			t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.text)
		}
		if HasControl(CleanLine(tt.in), "") || HasControl(got, "\n\t") {
			t.Errorf("%q: cleaned text still has control characters", tt.in)
		}
	}
}

// FuzzSummary: whatever info.json and aux.json hold, a model's table line
// (models.tsv, ls, ls --json) and its error.txt carry no control
// characters: no NUL for grep, no ESC for the terminal, no stray tabs or
// line breaks to shift columns.
func FuzzSummary(f *testing.F) {
	f.Add([]byte(`{"name": "LeNet\u0000\u001b[2J", "framework": "caffe", "snapshot file": "w", "model file": "m", "note": "a\tb\nc\u009b", "username": "\u001b]0;pwned\u0007"}`),
		[]byte(`{"dataset": "MN\u001bIST", "license": "BSD\r\n"}`))
	f.Add([]byte(`{"name": 5}`), []byte(`{`))
	f.Add([]byte("{\"name\": \"\xff\xfe\"}"), []byte(`{"logo": "../\u0000"}`))
	f.Fuzz(func(t *testing.T, infoJSON, auxJSON []byte) {
		in := digits.Input{
			Info: digits.Answer{Found: true, Data: infoJSON, Size: int64(len(infoJSON))},
			Aux:  digits.Answer{Found: true, Data: auxJSON, Size: int64(len(auxJSON))},
		}
		v := digits.Judge(in)
		m := &Model{Store: &Store{Name: "s"}, Name: "m", Info: v.Info, Aux: v.Aux, Importable: v.Importable}
		s := m.Summary()
		fields := s.Fields()
		if len(fields) != len(TableHeader) {
			t.Fatalf("%d fields, %d columns", len(fields), len(TableHeader))
		}
		for i, f := range fields {
			if HasControl(f, "") {
				t.Fatalf("column %s = %q holds a control character", TableHeader[i], f)
			}
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if HasControl(string(js), "") {
			t.Fatalf("ls --json row %s holds a control character", js)
		}
		text := string(errorText("m", v.Problems))
		if HasControl(text, "\n") {
			t.Fatalf("error.txt %q holds a control character", text)
		}
		if len(v.Problems) > 0 && strings.Count(text, "\n") < len(v.Problems)+1 {
			t.Fatalf("error.txt has %d lines for %d problems: %q", strings.Count(text, "\n"), len(v.Problems), text)
		}
	})
}
