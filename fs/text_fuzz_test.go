package fs

import (
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// FuzzStoreText: whatever master.json and info.json hold, welcome.txt
// keeps only its line breaks and tabs, and a models.tsv line is exactly one
// line of len(TableHeader) columns: no NUL (grep would call the table
// binary), no ESC (a terminal would obey it), no stray tab or line break.
func FuzzStoreText(f *testing.F) {
	f.Add([]byte(`{"msg": "Welcome\u0000\u001b]0;pwned\u0007\n\u001b[2J line 2\r\n", "children": ["lenet"]}`),
		[]byte(`{"name": "Le\u001bNet", "framework": "caffe", "snapshot file": "w", "model file": "m", "note": "a\tb\nc\u0085d"}`))
	f.Add([]byte(`{"msg": 5, "children": []}`), []byte(`{"note": "\u009b31m"}`))
	f.Add([]byte("{\"msg\": \"\xff\", \"children\": []}"), []byte(`[]`))
	f.Fuzz(func(t *testing.T, master, info []byte) {
		if l, err := remote.ParseMaster(master); err == nil {
			w := string(welcomeText(l.Msg))
			if digits.HasControl(w, "\n\t") || !strings.HasSuffix(w, "\n") {
				t.Fatalf("welcome.txt %q for msg %q", w, l.Msg)
			}
		}
		parsed, _ := digits.ParseInfo(info)
		m := &cache.Model{Store: &cache.Store{Name: "s"}, Name: "m", Info: parsed}
		var b strings.Builder
		writeRow(&b, m.Store, m)
		row := b.String()
		if strings.Count(row, "\n") != 1 || !strings.HasSuffix(row, "\n") ||
			strings.Count(row, "\t") != len(cache.TableHeader)-1 || digits.HasControl(row, "\n\t") {
			t.Fatalf("models.tsv line %q", row)
		}
	})
}
