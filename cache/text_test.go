package cache

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/digits"
)

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
			if digits.HasControl(f, "") {
				t.Fatalf("column %s = %q holds a control character", TableHeader[i], f)
			}
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if digits.HasControl(string(js), "") {
			t.Fatalf("ls --json row %s holds a control character", js)
		}
		text := string(errorText("m", v.Problems))
		if digits.HasControl(text, "\n") {
			t.Fatalf("error.txt %q holds a control character", text)
		}
		if len(v.Problems) > 0 && strings.Count(text, "\n") < len(v.Problems)+1 {
			t.Fatalf("error.txt has %d lines for %d problems: %q", strings.Count(text, "\n"), len(v.Problems), text)
		}
	})
}
