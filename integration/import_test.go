package integration

// Import tests: cp -r of model folders from a live mount into a jobs
// directory is the DIGITS import. The copies are checked byte by byte
// against the store, and loaded by testdata/load_jobs.py (Python 3, and
// Python 2.7 when installed) with the stand-in DIGITS modules of
// ../digits/testdata/digitsstub, the way DIGITS's load_past_jobs loads
// them at start-up.

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// importModel is one model of the sample store as a DIGITS job folder.
type importModel struct {
	dir  string
	line string // load_jobs.py's verdict
	// files is the folder as the mount shows it and cp -r copies it.
	files []string
	// same maps a job-folder file to the store file it must equal byte
	// for byte.
	same map[string]string
	// links maps the remote names kept as symlinks to their targets.
	links map[string]string
}

var importModels = []importModel{
	{
		dir:   "alexnet-torch",
		line:  "OK alexnet-torch torch AlexNet (torch) TorchUploadTask",
		files: []string{"_Model.t7", "aux.json", "info.json", "labels.txt", "model.lua", "original.lua", "snapshot_30_Model.t7", "status.pickle"},
		same: map[string]string{
			"_Model.t7":    "snapshot_30_Model.t7",
			"original.lua": "model.lua",
			"labels.txt":   "labels.txt",
			"info.json":    "info.json",
			"aux.json":     "aux.json",
		},
		links: map[string]string{
			"snapshot_30_Model.t7": "_Model.t7",
			"model.lua":            "original.lua",
		},
	},
	{
		dir:  "inception-tf",
		line: "OK inception-tf tensorflow Inception v3 (tensorflow) TensorflowUploadTask",
		files: []string{"aux.json", "info.json", "labels.txt", "license.txt", "network.py",
			"snapshot.ckpt.data-00000-of-00001", "snapshot.ckpt.index", "snapshot.ckpt.meta",
			"snapshot_5.ckpt.data-00000-of-00001", "snapshot_5.ckpt.index", "snapshot_5.ckpt.meta",
			"status.pickle"},
		same: map[string]string{
			"snapshot.ckpt.data-00000-of-00001": "snapshot_5.ckpt.data-00000-of-00001",
			"snapshot.ckpt.index":               "snapshot_5.ckpt.index",
			"snapshot.ckpt.meta":                "snapshot_5.ckpt.meta",
			"network.py":                        "network.py",
			"labels.txt":                        "labels.txt",
			"info.json":                         "info.json",
			"aux.json":                          "aux.json",
			"license.txt":                       "license.txt",
		},
		links: map[string]string{
			"snapshot_5.ckpt.data-00000-of-00001": "snapshot.ckpt.data-00000-of-00001",
			"snapshot_5.ckpt.index":               "snapshot.ckpt.index",
			"snapshot_5.ckpt.meta":                "snapshot.ckpt.meta",
		},
	},
	{
		dir:   "lenet",
		line:  "OK lenet caffe LeNet (MNIST) CaffeUploadTask",
		files: wantLenet,
		same: map[string]string{
			"model.caffemodel":  "snapshot_iter_28140.caffemodel",
			"original.prototxt": "original.prototxt",
			"labels.txt":        "labels.txt",
			"deploy.prototxt":   "deploy.prototxt",
			"mean.binaryproto":  "mean.binaryproto",
			"info.json":         "info.json",
			"aux.json":          "aux.json",
			"license.txt":       "license.txt",
			"logo.png":          "logo.png",
		},
		links: map[string]string{
			"snapshot_iter_28140.caffemodel": "model.caffemodel",
		},
	},
}

// TestImportAllFrameworks: cp -r of a caffe, a torch and a tensorflow model
// from a mount gives job folders with the store's bytes under DIGITS's
// names, the remote names as symlinks, and a status.pickle that Python 2.7
// and Python 3 load as Done Pretrained Model jobs.
func TestImportAllFrameworks(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base})
	root := filepath.Join(m.Dir, itest.StoreName(s.Base))
	jobs := writableTempDir(t)

	args := []string{"-r"}
	for _, im := range importModels {
		args = append(args, filepath.Join(root, im.dir))
	}
	args = append(args, jobs)
	if out, err := itest.RunCmd(t, "cp", args...); err != nil {
		t.Fatalf("cp %s: %v %s", strings.Join(args, " "), err, out)
	}
	if got, want := itest.ListDir(t, jobs), []string{"alexnet-torch", "inception-tf", "lenet"}; !slices.Equal(got, want) {
		t.Fatalf("jobs dir = %q, want %q", got, want)
	}
	for _, im := range importModels {
		checkJobFolder(t, im, filepath.Join(jobs, im.dir), filepath.Join(src, im.dir), filepath.Join(root, im.dir))
	}
	logListing(t, jobs)

	want := make([]string, 0, len(importModels))
	for _, im := range importModels {
		want = append(want, im.line)
	}
	for _, py := range pythons(t) {
		out := runLoader(t, py, jobs)
		if got := outputLines(out); !slices.Equal(got, want) {
			t.Errorf("%s load_jobs.py:\n%s\nwant lines %q", py, out, want)
		}
	}
}

// checkJobFolder asserts one copied job folder against the store and the
// mount.
func checkJobFolder(t *testing.T, im importModel, job, src, mounted string) {
	t.Helper()
	if got := itest.ListDir(t, job); !slices.Equal(got, im.files) {
		t.Errorf("%s = %q, want %q", im.dir, got, im.files)
	}
	if got := itest.ListDir(t, mounted); !slices.Equal(got, im.files) {
		t.Errorf("mounted %s = %q, want %q", im.dir, got, im.files)
	}
	// DIGITS writes status.pickle.tmp and renames it over status.pickle
	// when it loads the job, and deletes the folder on request.
	if fi, err := os.Stat(job); err != nil || fi.Mode().Perm()&0o300 != 0o300 {
		t.Errorf("%s: the copied job folder must be writable by its owner: %v", im.dir, err)
	}
	for name, remote := range im.same {
		p := filepath.Join(job, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", im.dir, err)
			continue
		}
		if !fi.Mode().IsRegular() {
			t.Errorf("%s/%s is %v, want a regular file (copied once, under the job name)", im.dir, name, fi.Mode())
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(src, remote))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s (%d bytes) differs from the store's %s (%d bytes)", im.dir, name, len(got), remote, len(want))
		}
	}
	for link, target := range im.links {
		p := filepath.Join(job, link)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", im.dir, err)
			continue
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s/%s is %v, want a symlink to %s", im.dir, link, fi.Mode(), target)
			continue
		}
		if got, err := os.Readlink(p); err != nil || got != target {
			t.Errorf("%s/%s -> %q (%v), want -> %q", im.dir, link, got, err, target)
		}
		// The relative link resolves inside the copy, to the store's bytes.
		got, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s/%s does not resolve in the copy: %v", im.dir, link, err)
			continue
		}
		want, _ := os.ReadFile(filepath.Join(src, im.same[target]))
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s: content through the symlink differs from the store", im.dir, link)
		}
	}
	pickle, err := os.ReadFile(filepath.Join(job, "status.pickle"))
	if err != nil {
		t.Errorf("%s: no status.pickle: %v", im.dir, err)
		return
	}
	if !bytes.HasPrefix(pickle, []byte{0x80, 0x02}) || !bytes.HasSuffix(pickle, []byte(".")) ||
		!bytes.Contains(pickle, []byte("digits.pretrained_model.job\nPretrainedModelJob\n")) {
		t.Errorf("%s/status.pickle is not a protocol 2 PretrainedModelJob pickle: %q", im.dir, pickle[:min(len(pickle), 64)])
	}
	if fromMount := itest.ReadFile(t, filepath.Join(mounted, "status.pickle")); !bytes.Equal(pickle, fromMount) {
		t.Errorf("%s/status.pickle: the copy (%d bytes) differs from the mount (%d bytes)", im.dir, len(pickle), len(fromMount))
	}
}

// TestCopyWholeStore: cp -r of the store directory as a whole succeeds,
// the broken model comes along with its error.txt and without a pickle,
// and the copied store loads as a jobs directory (broken skipped).
func TestCopyWholeStore(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	m := itest.StartMount(t, []string{s.Base})
	root := filepath.Join(m.Dir, itest.StoreName(s.Base))
	dst := filepath.Join(writableTempDir(t), "store")
	if out, err := itest.RunCmd(t, "cp", "-r", root, dst); err != nil {
		t.Fatalf("cp -r %s: %v %s", root, err, out)
	}
	for _, dir := range []string{"alexnet-torch", "broken", "inception-tf", "lenet"} {
		if got, want := itest.ListDir(t, filepath.Join(dst, dir)), itest.ListDir(t, filepath.Join(root, dir)); !slices.Equal(got, want) {
			t.Errorf("copied %s = %q, mounted %q", dir, got, want)
		}
	}
	broken := filepath.Join(dst, "broken")
	if got, want := itest.ListDir(t, broken), []string{"error.txt", "info.json"}; !slices.Equal(got, want) {
		t.Errorf("copied broken = %q, want %q (no status.pickle)", got, want)
	}
	msg, err := os.ReadFile(filepath.Join(broken, "error.txt"))
	if err != nil || !bytes.Contains(msg, []byte("not valid JSON")) {
		t.Errorf("copied broken/error.txt = %q, %v", msg, err)
	}
	if mounted := itest.ReadFile(t, filepath.Join(root, "broken", "error.txt")); !bytes.Equal(msg, mounted) {
		t.Errorf("copied error.txt %q differs from the mount's %q", msg, mounted)
	}
	if info, _ := os.ReadFile(filepath.Join(broken, "info.json")); !bytes.Equal(info, itest.ReadFile(t, filepath.Join(src, "broken", "info.json"))) {
		t.Errorf("copied broken/info.json differs from the store: %q", info)
	}
	for _, im := range importModels {
		if _, err := os.Stat(filepath.Join(dst, im.dir, "status.pickle")); err != nil {
			t.Errorf("copied %s has no status.pickle: %v", im.dir, err)
		}
	}

	want := []string{importModels[0].line, "SKIP broken: skipped (no status.pickle)", importModels[1].line, importModels[2].line}
	for _, py := range pythons(t) {
		out := runLoader(t, py, dst)
		if got := outputLines(out); !slices.Equal(got, want) {
			t.Errorf("%s load_jobs.py:\n%s\nwant lines %q", py, out, want)
		}
	}
}

// TestPickleDeterministic: status.pickle is the same bytes when read twice,
// and across two separate mounts of the same store with separate caches.
func TestPickleDeterministic(t *testing.T) {
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	models := []string{"alexnet-torch", "inception-tf", "lenet"}

	read := func(m *itest.Mount) map[string][]byte {
		got := map[string][]byte{}
		for _, model := range models {
			p := filepath.Join(m.Dir, itest.StoreName(s.Base), model, "status.pickle")
			first := itest.ReadFile(t, p)
			if again := itest.ReadFile(t, p); !bytes.Equal(first, again) {
				t.Errorf("%s: two reads on one mount differ (%d, %d bytes)", model, len(first), len(again))
			}
			if fi, err := os.Stat(p); err != nil || fi.Size() != int64(len(first)) {
				t.Errorf("%s: stat size %v (%v), read %d bytes", model, fi, err, len(first))
			}
			if !bytes.HasPrefix(first, []byte{0x80, 0x02}) {
				t.Errorf("%s: not a protocol 2 pickle: %q", model, first[:min(len(first), 16)])
			}
			got[model] = first
		}
		return got
	}

	m1 := itest.StartMount(t, []string{s.Base})
	first := read(m1)
	m1.Stop(t)
	infoGets := s.Count("GET /lenet/info.json")

	m2 := itest.StartMount(t, []string{s.Base})
	second := read(m2)
	if n := s.Count("GET /lenet/info.json"); n <= infoGets {
		t.Errorf("the second mount did not fetch info.json itself (%d GETs, %d after the first mount): caches not separate", n, infoGets)
	}
	for _, model := range models {
		if !bytes.Equal(first[model], second[model]) {
			t.Errorf("%s/status.pickle differs between mounts (%d vs %d bytes):\n%q\n%q",
				model, len(first[model]), len(second[model]), first[model], second[model])
		}
	}
}

// writableTempDir is a t.TempDir whose tree is made writable again before
// it is removed: cp -r keeps the mount's read-only modes (files 0444, the
// store directory 0555), which would stop a non-root RemoveAll.
func writableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	return dir
}

// pythons are the interpreters to run load_jobs.py with: python3, then
// Python 2.7 (the one DIGITS runs on; testutil.Python finds it on PATH or
// in pyenv). Without 2.7 the tests load with python3 only, except under
// CI, where that fails.
func pythons(t *testing.T) []string {
	t.Helper()
	found := foundPythons()
	if found.err3 != nil {
		t.Fatal("python3 is needed for this test:", found.err3)
	}
	list := []string{found.py3}
	switch {
	case found.err2 == nil:
		list = append(list, found.py2)
	case testutil.UnderCI():
		t.Fatalf("Python 2.7 is required under CI: %v", found.err2)
	default:
		t.Logf("loading with python3 only: %v", found.err2)
	}
	return list
}

// foundPythons looks for the interpreters once per test binary: each look
// runs pyenv and the candidates (a pyenv shim is a bash script that runs
// pyenv again, seconds on a busy machine), and a test may ask several
// times. Each is named by its own executable (sys.executable), so that the
// tests' many python runs do not go through a shim either.
var foundPythons = sync.OnceValue(func() (f struct {
	py3, py2   string
	err3, err2 error
}) {
	f.py3, f.err3 = realPython(testutil.Python("3"))
	f.py2, f.err2 = realPython(testutil.Python("2.7"))
	return f
})

// realPython is the executable behind python (a pyenv shim, say), or
// python itself when it cannot say.
func realPython(python string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, xerr := exec.CommandContext(ctx, python, "-c", "import sys; print(sys.executable)").Output()
	if exe := strings.TrimSpace(string(out)); xerr == nil && filepath.IsAbs(exe) {
		return exe, nil
	}
	return python, nil
}

// runLoader runs testdata/load_jobs.py over a jobs directory with the
// stand-in DIGITS modules, logs its output, and fails the test unless it
// exits 0.
func runLoader(t *testing.T, python, jobs string) string {
	t.Helper()
	stubs, err := filepath.Abs(filepath.Join("..", "digits", "testdata", "digitsstub"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "load_jobs.py"), jobs)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+stubs, "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("%s testdata/load_jobs.py %s:\n%s%s", python, jobs, stdout.String(), stderr.String())
	if err != nil {
		t.Errorf("%s load_jobs.py: %v", python, err)
	}
	return stdout.String()
}

// outputLines splits the loader's output into its non-empty lines.
func outputLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// logListing logs ls -lR of a directory (the job folders as a user sees them).
func logListing(t *testing.T, dir string) {
	t.Helper()
	out, _ := itest.RunCmd(t, "ls", "-lR", dir)
	t.Logf("ls -lR %s:\n%s", dir, out)
}
