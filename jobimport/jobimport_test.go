package jobimport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/engine"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/digits"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// fixedNow is the clock of the tests: job ids start with 20240102-030405.
var fixedNow = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

var jobIDPattern = regexp.MustCompile(`^\d{8}-\d{6}-[0-9a-f]{4}$`)

// env is the sample store behind a catalog with a disk content cache.
type env struct {
	srv   *remotetest.Server
	st    *cache.Store
	cat   *cache.Catalog
	files map[string][]byte
}

func newEnv(t *testing.T) *env {
	t.Helper()
	files := storetest.SampleFiles(t)
	srv := storetest.NewServer(t, files, remotetest.Options{})
	content, err := engine.NewStreamContent(engine.StreamConfig{Dir: t.TempDir(), MinFree: new(int64(0))})
	if err != nil {
		t.Fatal(err)
	}
	st := &cache.Store{Name: "sample", Remote: storetest.Remote(t, srv.URL)}
	cat := cache.NewCatalog([]*cache.Store{st}, content, cache.Config{JobsDir: "/var/lib/digits/jobs"})
	e := &env{srv: srv, st: st, cat: cat, files: files}
	t.Cleanup(func() {
		cat.Close()
		content.Close()
	})
	return e
}

// dirNames lists a directory's entry names, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(des))
	for i, de := range des {
		names[i] = de.Name()
	}
	return names
}

// pickleStr is s as status.pickle writes an ASCII str (SHORT_BINSTRING).
func pickleStr(s string) []byte {
	return append([]byte{'U', byte(len(s))}, s...)
}

// pickleUnicode is s as status.pickle writes a unicode (BINUNICODE).
func pickleUnicode(s string) []byte {
	b := []byte{'X', 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(len(s)))
	return append(b, s...)
}

// importCase is a row of TestImport: a sample model imported under a name
// (Options.Name), and the _name its status.pickle must hold.
type importCase struct {
	model    string
	name     string // Options.Name
	wantName string // _name in status.pickle
}

func TestImport(t *testing.T) {
	tests := []importCase{
		{"lenet", "", "LeNet (MNIST)"},
		{"lenet", "my lenet", "my lenet"},
		{"alexnet-torch", "", "AlexNet (torch)"},
		{"alexnet-torch", "renamed torch", "renamed torch"},
		{"inception-tf", "", "Inception v3 (tensorflow)"},
		{"inception-tf", "tf job", "tf job"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.model+"/"+tt.name, func(t *testing.T) {
			jobs := t.TempDir()
			m, err := e.cat.Model(testutil.Ctx(t), e.st, tt.model)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Importable {
				t.Fatalf("sample %s is not importable: %q", tt.model, m.Problems)
			}
			res, progress := importWithProgress(t, e, tt, jobs)
			checkJobDir(t, jobs, res)
			remoteBytes := checkJobFiles(t, e.files, tt.model, m, res)
			if res.Bytes != remoteBytes {
				t.Errorf("Bytes %d, remote files have %d", res.Bytes, remoteBytes)
			}
			checkProgress(t, progress, remoteBytes)
			checkJobPickle(t, tt, m, res)
		})
	}
}

// importWithProgress imports tt's model into jobs at fixedNow, and returns
// the result and the progress reported, in order.
func importWithProgress(t *testing.T, e *env, tt importCase, jobs string) (*Result, [][2]int64) {
	t.Helper()
	var mu sync.Mutex
	var progress [][2]int64
	res, err := Import(testutil.Ctx(t), e.cat, e.st, tt.model, Options{
		JobsDir: jobs, Name: tt.name, Now: func() time.Time { return fixedNow },
		Progress: func(done, total int64) {
			mu.Lock()
			progress = append(progress, [2]int64{done, total})
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return res, slices.Clone(progress)
}

// checkJobDir checks the new job's id and directory, alone in jobs.
func checkJobDir(t *testing.T, jobs string, res *Result) {
	t.Helper()
	if !jobIDPattern.MatchString(res.ID) || !strings.HasPrefix(res.ID, "20240102-030405-") {
		t.Errorf("job id %q, want 20240102-030405-xxxx", res.ID)
	}
	if res.Dir != filepath.Join(jobs, res.ID) {
		t.Errorf("Dir %q, want %q", res.Dir, filepath.Join(jobs, res.ID))
	}
	// Only the new job is in the jobs directory: no temporary left.
	if got := dirNames(t, jobs); !slices.Equal(got, []string{res.ID}) {
		t.Errorf("jobs dir holds %q, want only %q", got, res.ID)
	}
	if fi, err := os.Stat(res.Dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("job dir: %v, mode %v; want 0755", err, fi.Mode())
	}
}

// checkJobFiles checks that the job holds every file of m's folder,
// byte-exact (files is the store's content; symlinks kept), and returns
// the bytes of the files that came from the store.
func checkJobFiles(t *testing.T, files map[string][]byte, model string, m *cache.Model, res *Result) int64 {
	t.Helper()
	// Every file of the folder, byte-exact; symlinks kept.
	var want []string
	var remoteBytes int64
	for _, f := range m.Files() {
		want = append(want, f.Name)
		path := filepath.Join(res.Dir, f.Name)
		fi, err := os.Lstat(path)
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		switch {
		case f.Name == digits.StatusFile:
		case f.Kind == cache.KindSymlink:
			target, err := os.Readlink(path)
			if fi.Mode()&os.ModeSymlink == 0 || err != nil || target != f.Target {
				t.Errorf("%s: mode %v, target %q (%v); want a symlink to %q", f.Name, fi.Mode(), target, err, f.Target)
			}
			if data, err := os.ReadFile(path); err != nil || !bytes.Equal(data, files[model+"/"+f.Target]) && !bytes.Equal(data, files[model+"/"+f.Name]) {
				t.Errorf("%s: following the symlink: %v", f.Name, err)
			}
		case f.Kind == cache.KindData:
			if data, err := os.ReadFile(path); err != nil || !bytes.Equal(data, f.Bytes()) {
				t.Errorf("%s: %d bytes (%v), want the catalog's %d", f.Name, len(data), err, len(f.Bytes()))
			}
		default:
			remoteBytes += f.Size()
			src, ok := files[model+"/"+f.Remote]
			if !ok {
				t.Fatalf("%s: the store has no %s", f.Name, f.Remote)
			}
			if data, err := os.ReadFile(path); err != nil || !bytes.Equal(data, src) {
				t.Errorf("%s: %d bytes (%v), differ from the store's %s (%d bytes)", f.Name, len(data), err, f.Remote, len(src))
			}
			if fi.Mode().Perm() != 0o644 || !fi.Mode().IsRegular() {
				t.Errorf("%s: mode %v, want a regular 0644 file", f.Name, fi.Mode())
			}
		}
	}
	if got := dirNames(t, res.Dir); !slices.Equal(got, want) {
		t.Errorf("job files %q\nwant %q", got, want)
	}
	return remoteBytes
}

// checkProgress checks that progress only grows, against the total of
// remoteBytes, and ends there.
func checkProgress(t *testing.T, progress [][2]int64, remoteBytes int64) {
	t.Helper()
	if len(progress) == 0 || progress[len(progress)-1] != [2]int64{remoteBytes, remoteBytes} {
		t.Errorf("last progress %v, want [%d %d]", progress, remoteBytes, remoteBytes)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i][0] < progress[i-1][0] || progress[i][1] != remoteBytes {
			t.Errorf("progress goes %v then %v", progress[i-1], progress[i])
		}
	}
}

// checkJobPickle checks the job's status.pickle: it names the new job (id,
// directory, tt's name), while the catalog's own pickle keeps the model's
// stable id.
func checkJobPickle(t *testing.T, tt importCase, m *cache.Model, res *Result) {
	t.Helper()
	// status.pickle names the new job, not the store's folder.
	pickle, err := os.ReadFile(filepath.Join(res.Dir, digits.StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pickle, []byte{0x80, 0x02}) || !bytes.HasSuffix(pickle, []byte(".")) {
		t.Errorf("status.pickle is not a protocol-2 pickle: % x...", pickle[:min(8, len(pickle))])
	}
	if !bytes.Contains(pickle, pickleStr(res.ID)) {
		t.Errorf("status.pickle does not hold the id %q", res.ID)
	}
	if bytes.Contains(pickle, pickleStr(tt.model)) {
		t.Errorf("status.pickle holds the model folder name %q as an id", tt.model)
	}
	if !bytes.Contains(pickle, pickleUnicode(res.Dir)) {
		t.Errorf("status.pickle does not hold the job dir %q", res.Dir)
	}
	if !bytes.Contains(pickle, pickleUnicode(tt.wantName)) {
		t.Errorf("status.pickle does not hold the name %q", tt.wantName)
	}
	if tt.name != "" && bytes.Contains(pickle, pickleUnicode(m.Info.Name)) {
		t.Errorf("status.pickle still holds info.json's name %q", m.Info.Name)
	}
	// The catalog's own pickle (for the mount) has the model's
	// stable id, never the new job's: each import is a new job.
	mountID := regexp.MustCompile(`^\d{8}-\d{6}-[0-9a-f]{4}$`)
	f, _ := m.File(digits.StatusFile)
	pk := f.Bytes()
	if i := bytes.Index(pk, []byte("_id")); i < 0 || i+6 > len(pk) || pk[i+3] != 'U' ||
		!mountID.Match(pk[i+5:i+5+int(pk[i+4])]) {
		t.Errorf("the catalog's status.pickle has no DIGITS-shaped _id: the test's pickle encoding is off")
	} else if id := pk[i+5 : i+5+int(pk[i+4])]; string(id) == res.ID {
		t.Errorf("the import reused the mounted folder's id %s", id)
	}
}

// TestImportTwiceSameSecond: two imports at the same clock get two jobs.
func TestImportTwiceSameSecond(t *testing.T) {
	e := newEnv(t)
	jobs := t.TempDir()
	opt := Options{JobsDir: jobs, Now: func() time.Time { return fixedNow }}
	a, err := Import(testutil.Ctx(t), e.cat, e.st, "alexnet-torch", opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Import(testutil.Ctx(t), e.cat, e.st, "alexnet-torch", opt)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID {
		t.Fatalf("both imports are job %s", a.ID)
	}
	if got, want := dirNames(t, jobs), []string{a.ID, b.ID}; !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("jobs dir %q, want %q", got, want)
	}
}

func TestImportRefused(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		model  string
		jobs   func(t *testing.T) string
		is     error  // errors.Is target, or nil
		substr string // in the message
	}{
		{"not importable", "broken", func(t *testing.T) string { return t.TempDir() }, ErrNotImportable, "broken"},
		{"not in the store", "nope", func(t *testing.T) string { return t.TempDir() }, cache.ErrNotFound, "nope"},
		{"jobs dir missing", "lenet", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }, nil, "missing"},
		{"jobs dir is a file", "lenet", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, nil, "not a directory"},
		{"no jobs dir", "lenet", func(*testing.T) string { return "" }, nil, "jobs directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs := tt.jobs(t)
			var before []string
			if fi, err := os.Stat(jobs); err == nil && fi.IsDir() {
				before = dirNames(t, jobs)
			}
			res, err := Import(testutil.Ctx(t), e.cat, e.st, tt.model, Options{JobsDir: jobs, Now: func() time.Time { return fixedNow }})
			if err == nil {
				t.Fatalf("Import succeeded: %+v", res)
			}
			if res != nil {
				t.Errorf("Import failed (%v) but returned %+v", err, res)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want one wrapping %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("error %q does not mention %q", err, tt.substr)
			}
			if fi, serr := os.Stat(jobs); serr == nil && fi.IsDir() {
				if got := dirNames(t, jobs); !slices.Equal(got, before) {
					t.Errorf("jobs dir holds %q after a refused import", got)
				}
			}
		})
	}
	// The problems of a non-importable model are in the error.
	_, err := Import(testutil.Ctx(t), e.cat, e.st, "broken", Options{JobsDir: t.TempDir()})
	m, merr := e.cat.Model(testutil.Ctx(t), e.st, "broken")
	if merr != nil {
		t.Fatal(merr)
	}
	for _, p := range m.Problems {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not list the problem %q", err, p)
		}
	}
}

// TestImportCancelled cancels an import while it waits for the weights:
// the error is the cancellation and the jobs directory is left empty.
func TestImportCancelled(t *testing.T) {
	tests := []struct {
		model, weights string
		jobName        string // the weights' name in the job
	}{
		{"lenet", "snapshot_iter_28140.caffemodel", "model.caffemodel"},
		{"alexnet-torch", "snapshot_30_Model.t7", "_Model.t7"},
		{"inception-tf", "snapshot_5.ckpt.meta", "snapshot.ckpt.meta"},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			e := newEnv(t)
			// Resolve first: the gate must hold the copy, not the HEADs.
			if _, err := e.cat.Model(testutil.Ctx(t), e.st, tt.model); err != nil {
				t.Fatal(err)
			}
			gate := e.srv.Hold(tt.model + "/" + tt.weights)
			t.Cleanup(gate.Release) // before the content cache closes

			jobs := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			var done int64
			type result struct {
				res *Result
				err error
			}
			ch := make(chan result, 1)
			go func() {
				res, err := Import(ctx, e.cat, e.st, tt.model, Options{
					JobsDir: jobs, Now: func() time.Time { return fixedNow },
					Progress: func(d, _ int64) { mu.Lock(); done = d; mu.Unlock() },
				})
				ch <- result{res, err}
			}()
			select {
			case <-gate.Arrived():
			case <-time.After(3 * time.Second):
				t.Fatal("the import never asked for the weights")
			}
			// Mid-copy: the temporary job exists and holds earlier files.
			if got := dirNames(t, jobs); len(got) != 1 || !strings.HasPrefix(got[0], ".") {
				t.Errorf("jobs dir while copying: %q, want one hidden temporary", got)
			} else if files := dirNames(t, filepath.Join(jobs, got[0])); len(files) == 0 {
				t.Errorf("the temporary job is empty mid-copy")
			}
			cancel()
			var r result
			select {
			case r = <-ch:
			case <-time.After(3 * time.Second):
				t.Fatal("Import did not return after the cancellation")
			}
			if !errors.Is(r.err, context.Canceled) || r.res != nil {
				t.Errorf("Import = %+v, %v; want context.Canceled", r.res, r.err)
			}
			if r.err != nil && !strings.HasPrefix(r.err.Error(), tt.jobName+": ") {
				t.Errorf("error %q does not name the file", r.err)
			}
			if got := dirNames(t, jobs); len(got) != 0 {
				t.Errorf("jobs dir after a cancelled import: %q, want empty", got)
			}
			mu.Lock()
			if done == 0 && tt.model == "lenet" {
				t.Errorf("no progress before the weights: the test did not cancel mid-copy")
			}
			mu.Unlock()
		})
	}
}

// TestImportFails: a store that fails mid-copy leaves nothing behind.
func TestImportFails(t *testing.T) {
	e := newEnv(t)
	if _, err := e.cat.Model(testutil.Ctx(t), e.st, "lenet"); err != nil {
		t.Fatal(err)
	}
	// Every model resolved: the prefetch that followed the listing sends no
	// more requests.
	if _, err := e.cat.Models(testutil.Ctx(t), e.st); err != nil {
		t.Fatal(err)
	}
	// The store now lies: it answers the weights with a 404.
	e.srv.SetStatus("lenet/snapshot_iter_28140.caffemodel", 404)
	jobs := t.TempDir()
	res, err := Import(testutil.Ctx(t), e.cat, e.st, "lenet", Options{JobsDir: jobs})
	if err == nil {
		t.Fatalf("Import succeeded without the weights: %+v", res)
	}
	if !errors.Is(err, remote.ErrNotFound) || !strings.Contains(err.Error(), "model.caffemodel") {
		t.Errorf("error %v, want a not-found naming model.caffemodel", err)
	}
	if got := dirNames(t, jobs); len(got) != 0 {
		t.Errorf("jobs dir after a failed import: %q", got)
	}
}

// TestNewJobID: ids look like DIGITS' (local time of the clock, 4 hex
// digits) and never name an existing entry.
func TestNewJobID(t *testing.T) {
	dir := t.TempDir()
	local := time.Date(2017, 1, 24, 10, 10, 10, 0, time.FixedZone("X", 3600))
	seen := map[string]bool{}
	for range 200 {
		id, err := newJobID(dir, local)
		if err != nil {
			t.Fatal(err)
		}
		if !jobIDPattern.MatchString(id) || !strings.HasPrefix(id, "20170124-101010-") {
			t.Fatalf("id %q", id)
		}
		if seen[id] {
			t.Fatalf("newJobID returned %q, which exists", id)
		}
		seen[id] = true
		if err := os.Mkdir(filepath.Join(dir, id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportClearsKilledImports: what a killed import left (an unlocked
// temporary directory, maybe holding a status.pickle DIGITS would try to
// load) is removed by the next import; a running import's is not.
func TestImportClearsKilledImports(t *testing.T) {
	e := newEnv(t)
	jobs := t.TempDir()
	dead := filepath.Join(jobs, tmpPrefix+"dead")
	live := filepath.Join(jobs, tmpPrefix+"live")
	for _, d := range []string{dead, live} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "status.pickle"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := lockDir(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	res, err := Import(testutil.Ctx(t), e.cat, e.st, "alexnet-torch", Options{JobsDir: jobs, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dirNames(t, jobs), []string{tmpPrefix + "live", res.ID}; !slices.Equal(got, want) {
		t.Errorf("jobs dir %q, want %q", got, want)
	}
}
