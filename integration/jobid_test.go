package integration

// Job identity: DIGITS keys jobs by the id pickled in status.pickle (not by
// folder name), takes a job's directory from the folder it loads it from,
// and calls str() on the id to delete a job. These tests copy folders from
// a mount under any name and start the stand-in DIGITS scheduler
// (testdata/digits_start.py) on them, twice, as DIGITS restarts on the
// pickles it rewrote.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/digits"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// mountedID matches the id of a mounted folder's status.pickle: DIGITS'
// own shape, ASCII.
var mountedID = regexp.MustCompile(`^\d{8}-\d{6}-[0-9a-f]{4}$`)

// pickleID returns the _id of a status.pickle written by modelstorefs
// (SHORT_BINSTRING "_id", then the id as SHORT_BINSTRING or BINUNICODE).
func pickleID(t *testing.T, data []byte) string {
	t.Helper()
	i := bytes.Index(data, []byte("U\x03_id"))
	if i < 0 || i+7 > len(data) {
		t.Fatalf("no _id in status.pickle %q", data[:min(len(data), 80)])
	}
	i += 5
	switch data[i] {
	case 'U':
		n := int(data[i+1])
		return string(data[i+2 : i+2+n])
	case 'X':
		n := int(data[i+1]) | int(data[i+2])<<8 | int(data[i+3])<<16 | int(data[i+4])<<24
		return string(data[i+5 : i+5+n])
	}
	t.Fatalf("_id has opcode %q", data[i])
	return ""
}

// runStart runs testdata/digits_start.py on a jobs directory (deleting the
// given ids after loading) and returns its lines.
func runStart(t *testing.T, python, jobs string, deleteIDs ...string) []string {
	t.Helper()
	stubs, err := filepath.Abs(filepath.Join("..", "digits", "testdata", "digitsstub"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{filepath.Join("testdata", "digits_start.py"), jobs}, deleteIDs...)
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+stubs, "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("%s digits_start.py %s %s:\n%s%s", python, jobs, strings.Join(deleteIDs, " "), stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("%s digits_start.py: %v", python, err)
	}
	return outputLines(stdout.String())
}

// TestJobIdentity: every mounted folder has an ASCII id of DIGITS' shape,
// unique across stores; folders copied under any name (lenet from two
// stores as lenet and lenet-2, a renamed copy, a non-ASCII model) are all
// listed by DIGITS, again after a restart on the pickles DIGITS rewrote,
// and the non-ASCII one can be deleted. The same model copied twice is one
// job to DIGITS (same id): `modelstorefs import` is the way to get two.
func TestJobIdentity(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	const uni = "réseau-ü"
	srcA := itest.CopyStore(t)
	if err := os.CopyFS(filepath.Join(srcA, uni), os.DirFS(filepath.Join(srcA, "lenet"))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(srcA, "master.json"), `{"msg": "A", "children": ["lenet", "alexnet-torch", "`+uni+`"]}`)
	srcB := itest.CopyStore(t)
	a := itest.StartGoStore(t, srcA, "/")
	b := itest.StartGoStore(t, srcB, "/")
	m := itest.StartMount(t, []string{a.Base, b.Base})
	rootA, rootB := filepath.Join(m.Dir, itest.StoreName(a.Base)), filepath.Join(m.Dir, itest.StoreName(b.Base))

	// Which folder is copied where, and the id its mounted pickle carries.
	copies := []jobCopy{
		{filepath.Join(rootA, "lenet"), "lenet"},
		{filepath.Join(rootB, "lenet"), "lenet-2"},
		{filepath.Join(rootA, "alexnet-torch"), "my-alexnet"},
		{filepath.Join(rootA, uni), uni},
	}
	ids := mountedCopyIDs(t, copies)
	// The id is stable: every model of store A, read again, and the
	// folder's name never appears as the id.
	if again := pickleID(t, itest.ReadFile(t, filepath.Join(rootA, "lenet", "status.pickle"))); again != ids["lenet"] {
		t.Errorf("lenet's id changed between reads: %s, %s", ids["lenet"], again)
	}

	for _, py := range pythons(t) {
		t.Run(filepath.Base(py), func(t *testing.T) {
			checkJobIdentityInDigits(t, py, copies, ids, filepath.Join(rootA, "lenet"), uni)
		})
	}
}

// jobCopy is a mounted model folder and the name it is copied to in a
// DIGITS jobs folder.
type jobCopy struct{ from, to string }

// mountedCopyIDs reads the id of every copy's mounted status.pickle and
// checks each is an ASCII YYYYMMDD-HHMMSS-xxxx and no two are alike. It
// returns copy name -> id.
func mountedCopyIDs(t *testing.T, copies []jobCopy) map[string]string {
	t.Helper()
	ids := map[string]string{} // copy name -> id
	seen := map[string]string{}
	for _, c := range copies {
		id := pickleID(t, itest.ReadFile(t, filepath.Join(c.from, "status.pickle")))
		if !mountedID.MatchString(id) {
			t.Errorf("%s: _id %q is not ASCII YYYYMMDD-HHMMSS-xxxx", c.from, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s share the id %s", c.from, other, id)
		}
		seen[id], ids[c.to] = c.from, id
	}
	return ids
}

// digitsJobLines returns the "JOB id name" part of the JOB lines of a
// DIGITS start, failing the test on any FAILED line.
func digitsJobLines(t *testing.T, lines []string) []string {
	t.Helper()
	var got []string
	for _, l := range lines {
		if strings.HasPrefix(l, "FAILED") {
			t.Errorf("DIGITS failed to load a job: %s", l)
		}
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "JOB" {
			got = append(got, strings.Join(f[:3], " "))
		}
	}
	return got
}

// checkJobIdentityInDigits copies the folders into a jobs folder and
// checks, with DIGITS under python py, that each loads as a job keyed by
// its mounted id, across restarts, a delete of the non-ASCII model uni,
// and a second copy of lenet (mounted at lenetDir).
func checkJobIdentityInDigits(t *testing.T, py string, copies []jobCopy, ids map[string]string, lenetDir, uni string) {
	t.Helper()
	jobs := writableTempDir(t)
	for _, c := range copies {
		if out, err := itest.RunCmd(t, "cp", "-r", c.from, filepath.Join(jobs, c.to)); err != nil {
			t.Fatalf("cp -r %s %s: %v %s", c.from, c.to, err, out)
		}
	}
	// load_jobs.py: every folder loads as a Done job, no two ids alike.
	out := runLoader(t, py, jobs)
	if n := strings.Count(out, "OK "); n != len(copies) {
		t.Errorf("load_jobs.py: %d jobs OK, want %d", n, len(copies))
	}
	var want []string
	for _, c := range copies {
		want = append(want, "JOB "+ids[c.to]+" "+c.to)
	}
	slices.Sort(want)
	// First start: all four listed, keyed by id, each from its folder.
	if got := digitsJobLines(t, runStart(t, py, jobs)); !slices.Equal(got, want) {
		t.Errorf("first start lists %q, want %q", got, want)
	}
	for _, c := range copies {
		if bytes.Equal(itest.ReadFile(t, filepath.Join(jobs, c.to, "status.pickle")), itest.ReadFile(t, filepath.Join(c.from, "status.pickle"))) {
			t.Errorf("%s: DIGITS did not rewrite status.pickle on load", c.to)
		}
	}
	// Second start, on the pickles DIGITS rewrote.
	if got := digitsJobLines(t, runStart(t, py, jobs)); !slices.Equal(got, want) {
		t.Errorf("second start lists %q, want %q", got, want)
	}
	// Delete the non-ASCII model, as the web UI's Delete does.
	lines := runStart(t, py, jobs, ids[uni])
	if !slices.Contains(lines, "DELETED "+ids[uni]) {
		t.Errorf("deleting %s (%s): %q", uni, ids[uni], lines)
	}
	if _, err := os.Stat(filepath.Join(jobs, uni)); !os.IsNotExist(err) {
		t.Errorf("%s still exists after the delete: %v", uni, err)
	}
	if got := digitsJobLines(t, runStart(t, py, jobs)); len(got) != len(copies)-1 {
		t.Errorf("after the delete DIGITS lists %q", got)
	}

	// The same model copied twice is one job to DIGITS: same id.
	if out, err := itest.RunCmd(t, "cp", "-r", lenetDir, filepath.Join(jobs, "lenet-again")); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	n := 0
	for _, l := range digitsJobLines(t, runStart(t, py, jobs)) {
		if strings.HasPrefix(l, "JOB "+ids["lenet"]+" ") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("lenet copied twice: DIGITS lists it %d times, want once (jobs are keyed by id)", n)
	}
}

// TestDigitsStandInDelete: the stand-in scheduler fails to delete a job
// whose id is not ASCII, as DIGITS does (str() of the id), so the test
// above would catch such an id.
func TestDigitsStandInDelete(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base})
	py := pythons(t)[len(pythons(t))-1] // Python 2.7 when installed
	jobs := writableTempDir(t)
	if out, err := itest.RunCmd(t, "cp", "-r", filepath.Join(m.Dir, itest.StoreName(s.Base), "lenet"), filepath.Join(jobs, "lenet")); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	// Give the copied job a non-ASCII id, with the stand-in modules.
	stubs, _ := filepath.Abs(filepath.Join("..", "digits", "testdata", "digitsstub"))
	script := `import sys
from digits.job import Job
import digits.pretrained_model.tasks
job = Job.load(sys.argv[1], 'lenet')
job._id = u'r\u00e9seau'
for task in job.tasks:
    task.job_id = job._id
job.save()
`
	cmd := exec.Command(py, "-c", script, jobs)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+stubs, "PYTHONDONTWRITEBYTECODE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", py, err, out)
	}
	lines := runStart(t, py, jobs, "réseau")
	if !slices.Contains(lines, "DELETE-ERROR réseau: UnicodeEncodeError") {
		t.Errorf("deleting a job with a non-ASCII id: %q, want a UnicodeEncodeError as in DIGITS", lines)
	}
}

// TestJobIDCollision: two models of the same creation time whose first
// choice of id suffix is the same (found by trying names) get two ids in
// the mount; the one whose name sorts first keeps its first choice; DIGITS
// lists both copies.
func TestJobIDCollision(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := t.TempDir()
	s := itest.StartGoStore(t, src, "/")
	storeURL := strings.TrimSuffix(s.Base, "/")
	var refs []digits.ModelRef
	for i := range 2000 {
		refs = append(refs, digits.ModelRef{StoreURL: storeURL, Model: fmt.Sprintf("net%04d", i)})
	}
	first, redrawn := digits.JobIDSuffixes(refs)
	if len(redrawn) == 0 {
		t.Fatal("no colliding names among 2000")
	}
	loser := redrawn[0]
	var winner digits.ModelRef
	for _, r := range refs {
		alone, _ := digits.JobIDSuffixes([]digits.ModelRef{r})
		lone, _ := digits.JobIDSuffixes([]digits.ModelRef{loser})
		if r != loser && alone[r] == lone[loser] {
			winner = r
			break
		}
	}
	if winner.Model == "" || winner.Model > loser.Model {
		t.Fatalf("collision of %v with %v (suffixes %v)", loser, winner, first[loser])
	}
	for _, name := range []string{winner.Model, loser.Model} {
		if err := os.CopyFS(filepath.Join(src, name), os.DirFS(filepath.Join("testdata", "store", "lenet"))); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(src, "master.json"), `{"msg": "c", "children": ["`+winner.Model+`", "`+loser.Model+`"]}`)
	m := itest.StartMount(t, []string{s.Base})
	root := filepath.Join(m.Dir, itest.StoreName(s.Base))
	idW := pickleID(t, itest.ReadFile(t, filepath.Join(root, winner.Model, "status.pickle")))
	idL := pickleID(t, itest.ReadFile(t, filepath.Join(root, loser.Model, "status.pickle")))
	lone, _ := digits.JobIDSuffixes([]digits.ModelRef{winner})
	if idW == idL || !strings.HasSuffix(idW, "-"+lone[winner]) || !mountedID.MatchString(idL) {
		t.Errorf("%s: %s, %s: %s; want distinct ids, %s keeping -%s", winner.Model, idW, loser.Model, idL, winner.Model, lone[winner])
	}
	if !strings.Contains(m.Logs.String(), "job id collision") {
		t.Error("the collision was not logged")
	}
	jobs := writableTempDir(t)
	for _, name := range []string{winner.Model, loser.Model} {
		if out, err := itest.RunCmd(t, "cp", "-r", filepath.Join(root, name), filepath.Join(jobs, name)); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	lines := runStart(t, pythons(t)[0], jobs)
	if n := len(slices.DeleteFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "JOB ") })); n != 2 {
		t.Errorf("DIGITS lists %d of the 2 colliding models: %q", n, lines)
	}
}
