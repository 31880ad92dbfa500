package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
)

// TestLsWhy: a model DIGITS cannot import shows its first blocker in the
// WHY column and as "why" in --json; an importable one shows "-" and no
// "why".
func TestLsWhy(t *testing.T) {
	info := func(extra string) []byte {
		return []byte(`{"name": "LeNet", "framework": "caffe", "snapshot file": "w.caffemodel", "model file": "m.prototxt"` + extra + `}`)
	}
	found := digits.Answer{Found: true, Size: 10}
	tests := []struct {
		name    string
		in      digits.Input
		wantWhy string // "" for importable
	}{
		{"importable", digits.Input{Info: digits.Answer{Found: true, Data: info("")},
			Files: map[string]digits.Answer{"w.caffemodel": found, "m.prototxt": found}}, ""},
		{"no weights", digits.Input{Info: digits.Answer{Found: true, Data: info("")},
			Files: map[string]digits.Answer{"m.prototxt": found}}, "w.caffemodel"},
		{"info.json not JSON", digits.Input{Info: digits.Answer{Found: true, Data: []byte("{")}}, "info.json"},
		{"no info.json", digits.Input{}, "no info.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := digits.Judge(tt.in)
			m := &cache.Model{Store: &cache.Store{Name: "s"}, Name: "m", Info: v.Info, Importable: v.Importable}
			for _, p := range v.Problems {
				m.Problems = append(m.Problems, p.Msg)
			}
			if v.Importable != (tt.wantWhy == "") {
				t.Fatalf("importable %v, problems %q", v.Importable, m.Problems)
			}
			row := m.Summary()
			var b bytes.Buffer
			writeTable(&b, []cache.Summary{row})
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			at := strings.Index(lines[0], "WHY")
			if !strings.HasSuffix(lines[0], "IMPORTABLE  WHY") || len(lines) != 2 || len(lines[1]) < at {
				t.Fatalf("table %q", lines)
			}
			before := strings.Fields(lines[1][:at])
			importable, why := before[len(before)-1], lines[1][at:]
			js, _ := json.Marshal(row)
			switch {
			case tt.wantWhy == "" && (importable != "yes" || why != "-" || strings.Contains(string(js), `"why"`)):
				t.Errorf("importable: line %q, json %s", lines[1], js)
			case tt.wantWhy != "" && (row.Why != v.Blockers()[0].Msg || importable != "no" || why != row.Why ||
				!strings.Contains(row.Why, tt.wantWhy)):
				t.Errorf("why %q, line %q, want the first blocker %q (naming %q)", row.Why, lines[1], v.Blockers()[0].Msg, tt.wantWhy)
			}
			if got := filterRows([]cache.Summary{row}, tt.wantWhy); tt.wantWhy != "" && len(got) != 1 {
				t.Errorf("--filter %q does not find the model by its reason", tt.wantWhy)
			}
		})
	}
}
