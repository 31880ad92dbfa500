package integration

// One verdict per model: the mount (status.pickle or not, error.txt,
// models.tsv), `modelstorefs ls`, `modelstorefs check` and `modelstorefs
// import` give every model the same answer on whether DIGITS can import it,
// because they all follow digits.Judge.

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// verdictCase is one model of the verdict store.
type verdictCase struct {
	model      string
	change     func(t *testing.T, dir string) // applied to a copy of lenet
	importable bool
	auxUnknown bool // aux.json answers 502 (a proxy whose origin is down)
}

var verdictCases = []verdictCase{
	{model: "good", importable: true},
	{model: "emptyweights", importable: false, change: func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "snapshot_iter_28140.caffemodel"), "")
	}},
	{model: "emptymodeldef", importable: false, change: func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "original.prototxt"), "")
	}},
	{model: "noweights", importable: false, change: func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, "snapshot_iter_28140.caffemodel")); err != nil {
			t.Fatal(err)
		}
	}},
	{model: "badaux", importable: true, change: func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "aux.json"), `{"license": "BSD",`)
	}},
	{model: "flakyaux", importable: true, auxUnknown: true},
}

// TestOneVerdict runs every case through a real mount and the built ls,
// check and import binaries, and asserts the same answer everywhere.
func TestOneVerdict(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	var auxBack atomic.Bool
	base := serveVerdictStore(t, &auxBack)
	store := itest.StoreName(base)
	env := []string{"DIGITS_MODEL_STORE_URL=" + base}

	// The mount.
	m := itest.StartMount(t, []string{base}, "--retry-window", "2s")
	root := filepath.Join(m.Dir, store)
	checkVerdictMount(t, m, root)

	// The binaries, against the same store.
	bins := runVerdictBinaries(t, env, base)
	jobs := t.TempDir()
	for _, c := range verdictCases {
		checkVerdictLsAndCheck(t, c, bins, root)
		// import
		out, err := runBinary(t, env, "import", "--cache-dir", bins.cacheDir, "--jobs-dir", jobs, store+"/"+c.model)
		if got := err == nil; got != c.importable {
			t.Errorf("import %s: %v, want importable %v\n%s", c.model, err, c.importable, out)
		}
		if !c.importable && !strings.Contains(out, "cannot be imported") {
			t.Errorf("import %s refused without saying why:\n%s", c.model, out)
		}
	}
	if !strings.Contains(bins.checkOut, "model badaux: aux.json is not valid JSON") || !strings.Contains(bins.checkOut, "DIGITS' own store page fails") {
		t.Errorf("check does not report badaux's aux.json as a store-level problem")
	}
	// Every imported job is one DIGITS loads (no empty weights among them).
	for _, py := range pythons(t) {
		if out := runLoader(t, py, jobs); strings.Count(out, "OK ") != 3 {
			t.Errorf("%s: imported jobs:\n%s", py, out)
		}
	}

	// aux.json comes back: the mount asks for it again on its own (it was
	// never remembered as absent) and the dataset shows.
	auxBack.Store(true)
	waitFlakyAuxBack(t, root)
}

// serveVerdictStore writes one copy of lenet per verdict case (changed as
// the case says) and a master.json naming them, and serves them over HTTP;
// flakyaux/aux.json answers 502 until auxBack is set. It returns the
// store's base URL.
func serveVerdictStore(t *testing.T, auxBack *atomic.Bool) string {
	t.Helper()
	src := t.TempDir()
	var names []string
	for _, c := range verdictCases {
		dir := filepath.Join(src, c.model)
		if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "store", "lenet"))); err != nil {
			t.Fatal(err)
		}
		if c.change != nil {
			c.change(t, dir)
		}
		names = append(names, c.model)
	}
	master, _ := json.Marshal(map[string]any{"msg": "verdicts", "children": names})
	writeFile(t, filepath.Join(src, "master.json"), string(master))

	files := http.FileServer(http.Dir(src))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flakyaux/aux.json" && !auxBack.Load() {
			http.Error(w, "origin down", http.StatusBadGateway)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// checkVerdictMount checks every case's verdict as the mount shows it:
// status.pickle, models.tsv, error.txt and the url xattrs; and that
// flakyaux hides aux.json while it fails, and the failure is logged.
func checkVerdictMount(t *testing.T, m *itest.Mount, root string) {
	t.Helper()
	// The store's folder listings (Go's file server) name files without
	// sizes: a verdict an empty file decides is settled when its folder
	// is opened (until then models.tsv shows it on presence alone).
	for _, c := range verdictCases {
		itest.ListDir(t, filepath.Join(root, c.model))
	}
	table := tableRows(t, itest.ReadFile(t, filepath.Join(root, "models.tsv")))
	for _, c := range verdictCases {
		dir := filepath.Join(root, c.model)
		entries := itest.ListDir(t, dir)
		if got := slices.Contains(entries, "status.pickle"); got != c.importable {
			t.Errorf("mount: %s has status.pickle %v, want %v (%q)", c.model, got, c.importable, entries)
		}
		row := table[c.model]
		if got := row["importable"] == "yes"; got != c.importable || row["importable"] == "" {
			t.Errorf("models.tsv: %s importable %q, want %v", c.model, row["importable"], c.importable)
		}
		if c.auxUnknown && (row["dataset"] != "?" || row["license"] != "?") {
			t.Errorf("models.tsv: %s dataset %q license %q, want ? (unknown for now)", c.model, row["dataset"], row["license"])
		}
		if !c.auxUnknown && c.model != "badaux" && row["dataset"] != "MNIST" {
			t.Errorf("models.tsv: %s dataset %q, want MNIST", c.model, row["dataset"])
		}
		checkErrorTxt(t, dir, entries, c.importable)
		checkURLXattrs(t, c.model, dir, entries)
	}
	if entries := itest.ListDir(t, filepath.Join(root, "flakyaux")); slices.Contains(entries, "aux.json") || slices.Contains(entries, "license.txt") {
		t.Errorf("flakyaux shows %q while aux.json fails", entries)
	}
	if !strings.Contains(m.Logs.String(), "aux.json failed") {
		t.Errorf("the aux.json failure was not logged")
	}
}

// checkURLXattrs checks that info.json and aux.json, where listed, carry
// the user.modelstore.url xattr of every fetched file.
func checkURLXattrs(t *testing.T, model, dir string, entries []string) {
	t.Helper()
	for _, f := range []string{"info.json", "aux.json"} {
		if !slices.Contains(entries, f) {
			continue
		}
		buf := make([]byte, 1024)
		n, err := syscall.Getxattr(filepath.Join(dir, f), "user.modelstore.url", buf)
		if err != nil || !strings.HasSuffix(string(buf[:max(n, 0)]), "/"+model+"/"+f) {
			t.Errorf("%s/%s: user.modelstore.url = %q, %v", model, f, buf[:max(n, 0)], err)
		}
	}
}

// verdictBinaries is what `ls --json`, `ls` and `check` said about the
// verdict store.
type verdictBinaries struct {
	cacheDir string
	jsonOut  string  // ls --json
	rows     []lsRow // jsonOut, parsed
	lsTable  string  // ls
	checkOut string  // check
}

// runVerdictBinaries runs `ls --json`, `ls` and `check` against the store,
// and checks that check exits 1 (some models cannot be imported).
func runVerdictBinaries(t *testing.T, env []string, base string) verdictBinaries {
	t.Helper()
	b := verdictBinaries{cacheDir: t.TempDir()}
	out, err := runBinary(t, env, "ls", "--cache-dir", b.cacheDir, "--json")
	if err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	b.jsonOut = out
	if err := json.Unmarshal([]byte(out), &b.rows); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	b.lsTable, err = runBinary(t, env, "ls", "--cache-dir", b.cacheDir)
	if err != nil {
		t.Fatalf("ls: %v\n%s", err, b.lsTable)
	}
	var checkErr error
	b.checkOut, checkErr = runBinary(t, nil, "check", base)
	t.Logf("check %s:\n%s", base, b.checkOut)
	var ee *exec.ExitError
	if !errors.As(checkErr, &ee) || ee.ExitCode() != 1 {
		t.Errorf("check exit: %v, want 1 (models that cannot be imported)", checkErr)
	}
	return b
}

// checkVerdictLsAndCheck checks one case's verdict in the output of
// `ls --json`, `ls` and `check`, and that ls's why is the first blocker
// the mount's error.txt lists.
func checkVerdictLsAndCheck(t *testing.T, c verdictCase, b verdictBinaries, root string) {
	t.Helper()
	rows := b.rows
	i := slices.IndexFunc(rows, func(r lsRow) bool { return r.Model == c.model })
	if i < 0 {
		t.Errorf("ls --json has no %s:\n%s", c.model, b.jsonOut)
	} else if rows[i].Importable != c.importable || rows[i].AuxUnknown != c.auxUnknown {
		t.Errorf("ls --json: %s importable %v aux_unknown %v, want %v %v", c.model, rows[i].Importable, rows[i].AuxUnknown, c.importable, c.auxUnknown)
	} else if (rows[i].Why != "") == c.importable {
		t.Errorf("ls --json: %s why %q, importable %v", c.model, rows[i].Why, c.importable)
	}
	if i >= 0 && !c.importable { // why is the first blocker error.txt lists
		errTxt := string(itest.ReadFile(t, filepath.Join(root, c.model, "error.txt")))
		if !strings.Contains(errTxt, "cannot be imported into DIGITS:\n- "+rows[i].Why+"\n") {
			t.Errorf("ls --json: %s why %q; error.txt:\n%s", c.model, rows[i].Why, errTxt)
		}
	}
	lsTable := b.lsTable
	line := lineWith(lsTable, " "+c.model+" ")
	want := map[bool]string{true: "yes", false: "no"}[c.importable]
	if got := tableColumn(t, lsTable, line, "IMPORTABLE"); got != want {
		t.Errorf("ls: %s importable column %q, want %q (line %q)", c.model, got, want, line)
	} else if c.auxUnknown && !strings.Contains(line, " ? ") {
		t.Errorf("ls: %s line %q does not show the dataset as unknown", c.model, line)
	}
	if why := tableColumn(t, lsTable, line, "WHY"); (why == "-") != c.importable || i >= 0 && !c.importable && why != rows[i].Why {
		t.Errorf("ls: %s why column %q, want %q", c.model, why, map[bool]string{true: "-", false: "the --json why"}[c.importable])
	}
	// check: a model is importable when it has no error line.
	checkOut := b.checkOut
	if got := !strings.Contains(checkOut, "\n"+c.model+": error: ") && !strings.HasPrefix(checkOut, c.model+": error: "); got != c.importable {
		t.Errorf("check: %s importable %v, want %v", c.model, got, c.importable)
	}
}

// waitFlakyAuxBack waits up to a minute for models.tsv to show flakyaux's
// dataset and its folder to list aux.json.
func waitFlakyAuxBack(t *testing.T, root string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		row := tableRows(t, itest.ReadFile(t, filepath.Join(root, "models.tsv")))["flakyaux"]
		if row["dataset"] == "MNIST" && slices.Contains(itest.ListDir(t, filepath.Join(root, "flakyaux")), "aux.json") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flakyaux's aux.json never asked for again: row %v", row)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// tableRows parses models.tsv into model -> column -> value.
func tableRows(t *testing.T, data []byte) map[string]map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	header := strings.Split(lines[0], "\t")
	out := map[string]map[string]string{}
	for _, l := range lines[1:] {
		cols := strings.Split(l, "\t")
		if len(cols) != len(header) {
			t.Errorf("models.tsv line %q has %d columns, header %d", l, len(cols), len(header))
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = cols[i]
		}
		out[row["model"]] = row
	}
	return out
}

// lsRow is a line of ls --json.
type lsRow struct {
	Model, Dataset, Why string
	Importable          bool
	AuxUnknown          bool `json:"aux_unknown"`
}

// tableColumn returns the value of the column named col (its header)
// in line of the aligned table out: from the header's offset to the next
// column's (the last column takes the rest).
func tableColumn(t *testing.T, out, line, col string) string {
	t.Helper()
	header := strings.SplitN(out, "\n", 2)[0]
	start := strings.Index(header, col)
	if start < 0 || len(line) < start {
		t.Fatalf("no column %s in %q for line %q", col, header, line)
	}
	end := len(line)
	if rest := strings.TrimLeft(header[start+len(col):], " "); rest != "" {
		end = min(end, len(header)-len(rest))
	}
	return strings.TrimSpace(line[start:end])
}

// lineWith returns the first line of out containing s.
func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l+" ", s) {
			return strings.TrimRight(l, " ")
		}
	}
	return ""
}

// checkErrorTxt: error.txt exists when the model cannot be imported, says
// so, and never names a file as left out that the folder shows.
func checkErrorTxt(t *testing.T, dir string, entries []string, importable bool) {
	t.Helper()
	if !slices.Contains(entries, "error.txt") {
		if !importable {
			t.Errorf("%s cannot be imported but has no error.txt", dir)
		}
		return
	}
	text := string(itest.ReadFile(t, filepath.Join(dir, "error.txt")))
	if got := strings.Contains(text, "cannot be imported into DIGITS"); got == importable {
		t.Errorf("%s/error.txt (importable %v):\n%s", dir, importable, text)
	}
	section := ""
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "- ") {
			section = l
			continue
		}
		if !strings.HasSuffix(section, "files left out of this folder:") {
			continue
		}
		for _, e := range entries {
			if strings.HasPrefix(l, "- "+e+" ") || strings.HasPrefix(l, "- "+e+":") {
				t.Errorf("%s/error.txt names %s as left out, but the folder shows it: %q", dir, e, l)
			}
		}
	}
}

// TestStoreTextHarmless: NUL, ESC and other control characters in
// master.json "msg" and info.json "name"/"note" never reach models.tsv (grep
// would call it binary), welcome.txt, error.txt or the output of `ls`
// (escape sequences that move the cursor or set the terminal title).
func TestStoreTextHarmless(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := t.TempDir()
	if err := os.CopyFS(filepath.Join(src, "evil"), os.DirFS(filepath.Join("testdata", "store", "lenet"))); err != nil {
		t.Fatal(err)
	}
	info := string(itest.ReadFile(t, filepath.Join(src, "evil", "info.json")))
	info = strings.Replace(info, `"name": "LeNet (MNIST)"`, `"name": "Le\u0000Net\u001b]0;pwned\u0007", "note": "\u001b[2J\u001b[H\u009b31mred\r\ncr"`, 1)
	if !strings.Contains(info, "pwned") {
		t.Fatalf("sample info.json changed: %s", info)
	}
	info = strings.Replace(info, `"note": "LeNet-5`, `"x-note": "LeNet-5`, 1)
	writeFile(t, filepath.Join(src, "evil", "info.json"), info)
	writeFile(t, filepath.Join(src, "evil", "aux.json"), `{"dataset": "MN\u001b[1mIST", "license": 5}`)
	writeFile(t, filepath.Join(src, "master.json"), `{"msg": "Hi\u0000\u001b]0;title\u0007\nline 2\u001b[2J", "children": ["evil"]}`)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base})
	root := filepath.Join(m.Dir, itest.StoreName(s.Base))

	harmless := func(what, text, allowed string) {
		t.Helper()
		if r, ok := testutil.Harmless(text, allowed); !ok {
			t.Errorf("%s holds control character %U: %q", what, r, text)
		}
	}
	tsv := string(itest.ReadFile(t, filepath.Join(root, "models.tsv")))
	harmless("models.tsv", tsv, "\t\n")
	if !strings.Contains(tsv, `Le\x00Net\x1b]0;pwned\x07`) {
		t.Errorf("models.tsv does not show the escaped name: %q", tsv)
	}
	if rows := tableRows(t, []byte(tsv)); rows["evil"]["importable"] != "yes" {
		t.Errorf("models.tsv: evil %v", rows["evil"])
	}
	welcome := string(itest.ReadFile(t, filepath.Join(root, "welcome.txt")))
	harmless("welcome.txt", welcome, "\n\t")
	if !strings.Contains(welcome, "\nline 2") {
		t.Errorf("welcome.txt lost its lines: %q", welcome)
	}
	harmless("error.txt", string(itest.ReadFile(t, filepath.Join(root, "evil", "error.txt"))), "\n\t")

	env := []string{"DIGITS_MODEL_STORE_URL=" + s.Base}
	for _, args := range [][]string{{"ls"}, {"ls", "--json"}, {"ls", "--filter", "net"}} {
		out, err := runBinary(t, env, append(args, "--cache-dir", t.TempDir())...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		harmless(strings.Join(args, " "), out, "\n")
		if !strings.Contains(out, "evil") {
			t.Errorf("%v lacks the model:\n%s", args, out)
		}
	}
	out, _ := runBinary(t, nil, "check", s.Base)
	harmless("check", out, "\n")
}
