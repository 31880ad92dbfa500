package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
)

// FuzzLsTable: whatever info.json and aux.json hold, `modelstorefs ls`
// prints one line per model plus the header, and neither the table nor
// --json sends a control character to the terminal (no ESC sequences that
// move the cursor or set the title, no NUL).
func FuzzLsTable(f *testing.F) {
	f.Add([]byte(`{"name": "Le\u001b[2JNet", "framework": "caffe", "snapshot file": "w", "model file": "m", "note": "\u001b]0;pwned\u0007", "username": "a\nb"}`),
		[]byte(`{"dataset": "\u0000MNIST\u009b", "license": "x\ty"}`), true)
	f.Add([]byte(`{}`), []byte(`{`), false)
	f.Fuzz(func(t *testing.T, info, aux []byte, unknown bool) {
		v := digits.Judge(digits.Input{
			Info: digits.Answer{Found: true, Data: info, Size: int64(len(info))},
			Aux:  digits.Answer{Found: true, Data: aux, Size: int64(len(aux))},
		})
		m := &cache.Model{Store: &cache.Store{Name: "s"}, Name: "m", Info: v.Info, Aux: v.Aux, Importable: v.Importable, AuxUnknown: unknown}
		rows := []cache.Summary{m.Summary(), m.Summary()}
		var b bytes.Buffer
		writeTable(&b, rows)
		out := b.String()
		if strings.Count(out, "\n") != len(rows)+1 || digits.HasControl(out, "\n") {
			t.Fatalf("ls table %q", out)
		}
		js, err := json.Marshal(rows)
		if err != nil || digits.HasControl(string(js), "") {
			t.Fatalf("ls --json %s (%v)", js, err)
		}
		// A cached list read back (older versions kept raw text) is cleaned too.
		raw := cache.Summary{Name: string(info), Note: string(aux)}
		if c := raw.Clean(); digits.HasControl(c.Name+c.Note, "") {
			t.Fatalf("Clean left control characters: %q %q", c.Name, c.Note)
		}
	})
}
