package fs

import (
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// sampleRows are the sample store's models.tsv lines but broken's (whose
// info.json is not JSON).
var sampleRows = map[string]string{
	"alexnet-torch": "sample\talexnet-torch\tAlexNet (torch)\ttorch\tImageNet subset\t\tana\tsample torch model\tyes",
	"inception-tf":  "sample\tinception-tf\tInception v3 (tensorflow)\ttensorflow\tImageNet\tApache-2.0\tzoë\tsample tensorflow checkpoint\tyes",
	"lenet":         "sample\tlenet\tLeNet (MNIST)\tcaffe\tMNIST\t3-clause BSD license\tluke\tLeNet-5 trained 30 epochs on MNIST (tiny sample weights)\tyes",
}

// readTable opens a models.tsv node and returns its lines (without the
// final newline).
func readTable(t *testing.T, n *tableFile) []string {
	t.Helper()
	fh, fl := openFile(t, n, syscall.O_RDONLY)
	defer release(t, fh)
	if fl&fuse.FOPEN_DIRECT_IO == 0 {
		t.Errorf("models.tsv open flags %#x: built at open, served with direct I/O", fl)
	}
	data := string(readAllHandle(t, fh))
	if !strings.HasSuffix(data, "\n") {
		t.Fatalf("models.tsv does not end in a newline: %q", data)
	}
	if a := getattr(t, n); a.Size != uint64(len(data)) {
		t.Errorf("Getattr size after open %d, read %d bytes", a.Size, len(data))
	}
	return strings.Split(strings.TrimSuffix(data, "\n"), "\n")
}

func TestTableStore(t *testing.T) {
	e := newEnv(t)
	sd := e.storeNode(t, "sample")
	tf := lookupNode[*tableFile](t, sd, TableName)
	if a := getattr(t, tf); a.Size != 0 || a.Mode != syscall.S_IFREG|0o444 {
		t.Errorf("models.tsv before any open: size %d mode %o", a.Size, a.Mode)
	}
	lines := readTable(t, tf)
	if lines[0]+"\n" != tableHeader {
		t.Errorf("header %q", lines[0])
	}
	if got := strings.Split(lines[0], "\t"); len(got) != 9 || got[0] != "store" || got[1] != "model" || got[7] != "note" || got[8] != "importable" {
		t.Errorf("header columns %q", got)
	}
	rows := lines[1:]
	if len(rows) != len(sampleModels) {
		t.Fatalf("%d rows, want one per model (%d):\n%s", len(rows), len(sampleModels), strings.Join(rows, "\n"))
	}
	for i, m := range sampleModels {
		cols := strings.Split(rows[i], "\t")
		if len(cols) != 9 {
			t.Errorf("row %d has %d columns: %q", i, len(cols), rows[i])
			continue
		}
		if cols[0] != "sample" || cols[1] != m {
			t.Errorf("row %d is %s/%s, want sample/%s (sorted by model)", i, cols[0], cols[1], m)
		}
		if want, ok := sampleRows[m]; ok && rows[i] != want {
			t.Errorf("row for %s:\n got %q\nwant %q", m, rows[i], want)
		}
	}
}

func TestTableCleansFields(t *testing.T) {
	files := map[string][]byte{
		"master.json": remotetest.MasterJSON("tabs", "tabby"),
		"tabby/info.json": []byte(`{"framework": "torch", "model file": "model.lua", "snapshot file": "w.t7",` +
			` "name": "Tab\tName", "username": "a\r\nb", "note": "line1\nline2\n"}`),
		"tabby/aux.json":  []byte(`{"dataset": "D\tS", "license": "L\nL"}`),
		"tabby/model.lua": []byte("return nil"),
		"tabby/w.t7":      []byte("weights"),
	}
	e := newEnv(t, storeSpec{name: "s", files: files})
	lines := readTable(t, lookupNode[*tableFile](t, e.storeNode(t, "s"), TableName))
	want := []string{strings.TrimSuffix(tableHeader, "\n"), "s\ttabby\tTab Name\ttorch\tD S\tL L\ta  b\tline1 line2 \tyes"}
	if len(lines) != len(want) {
		t.Fatalf("models.tsv lines %q, want %q", lines, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], want[i])
		}
	}
}

func TestCleanField(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"a\tb", "a b"},
		{"a\nb", "a b"},
		{"a\r\nb", "a  b"},
		{"\t\n\r", "   "},
		{"zoë\tü", "zoë ü"},
	}
	for _, tt := range tests {
		if got := (cache.Summary{Note: tt.in}).Fields()[7]; got != tt.want {
			t.Errorf("Fields() of a note %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestTableRoot: the root table has every store's models; a store that
// is down is left out, not the whole table.
func TestTableRoot(t *testing.T) {
	e := newEnv(t, storeSpec{name: "a"}, storeSpec{name: "down"}, storeSpec{name: "c"})
	e.srvs[1].SetStatusAll(http.StatusServiceUnavailable)
	lines := readTable(t, lookupNode[*tableFile](t, e.root, TableName))
	if lines[0]+"\n" != tableHeader {
		t.Errorf("header %q", lines[0])
	}
	var want []string
	for _, st := range []string{"a", "c"} {
		for _, m := range sampleModels {
			want = append(want, st+"/"+m)
		}
	}
	var got []string
	for _, row := range lines[1:] {
		cols := strings.Split(row, "\t")
		if len(cols) != 9 {
			t.Errorf("row with %d columns: %q", len(cols), row)
			continue
		}
		got = append(got, cols[0]+"/"+cols[1])
		if row2, ok := sampleRows[cols[1]]; ok && strings.TrimPrefix(row, cols[0]) != strings.TrimPrefix(row2, "sample") {
			t.Errorf("row %q", row)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rows %q\nwant %q", got, want)
	}
}
