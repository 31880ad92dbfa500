package digits

import (
	"errors"
	"fmt"
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"time"
)

// store is a fake store model for Judge: file name -> body; a nil body
// with an entry in fail means the request failed.
type fakeModel struct {
	files map[string]string
	fail  map[string]error
}

func (f fakeModel) answer(name string) Answer {
	if err, ok := f.fail[name]; ok {
		return Answer{Err: err}
	}
	data, ok := f.files[name]
	if !ok {
		return Answer{}
	}
	return Answer{Found: true, Data: []byte(data), Size: int64(len(data))}
}

func (f fakeModel) judge() *Verdict {
	in := Input{Info: f.answer(InfoFile), Aux: f.answer(AuxFile), Files: map[string]Answer{}}
	for _, rn := range Wanted(in.Info, in.Aux) {
		in.Files[rn] = f.answer(rn)
	}
	return Judge(in)
}

const verdictInfo = `{"name": "LeNet", "framework": "caffe", "snapshot file": "w.caffemodel",
	"model file": "net.prototxt", "labels file": "labels.txt", "deploy file": "deploy.prototxt"}`

func verdictModel(change func(map[string]string)) fakeModel {
	files := map[string]string{
		"info.json": verdictInfo, "w.caffemodel": "weights", "net.prototxt": "net",
		"labels.txt": "a\nb\n", "deploy.prototxt": "deploy",
		"aux.json": `{"license": "BSD", "logo": "logo.png", "dataset": "MNIST"}`, "license.txt": "BSD", "logo.png": "png",
	}
	if change != nil {
		change(files)
	}
	return fakeModel{files: files}
}

// judgeCase is a row of TestJudge: a model and the verdict judge must give:
// importable or not, aux.json unknown, the problems' codes in order and,
// when set, the entries the folder shows.
type judgeCase struct {
	name       string
	model      fakeModel
	importable bool
	auxUnknown bool
	codes      []Code // every problem's code, in order
	shown      []string
}

func TestJudge(t *testing.T) {
	tests := judgeCases()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.model.judge()
			if v.Importable != tt.importable || v.AuxUnknown != tt.auxUnknown {
				t.Errorf("importable %v aux unknown %v, want %v %v; problems %v", v.Importable, v.AuxUnknown, tt.importable, tt.auxUnknown, v.Problems)
			}
			var codes []Code
			for _, p := range v.Problems {
				codes = append(codes, p.Code)
			}
			if fmt.Sprint(codes) != fmt.Sprint(tt.codes) {
				t.Errorf("problem codes %v, want %v: %v", codes, tt.codes, v.Problems)
			}
			// A verdict is importable exactly when no problem is a Blocker,
			// and a blocker wraps ErrNotImportable.
			blocked := false
			for _, p := range v.Problems {
				if p.Severity == Blocker {
					blocked = true
					if !errors.Is(p, ErrNotImportable) {
						t.Errorf("blocker %v does not wrap ErrNotImportable", p)
					}
				}
				// Never "left out" for a file the folder shows.
				if p.LeftOut && v.Shows(p.File) {
					t.Errorf("problem %q says %s is left out, but the folder shows it", p.Msg, p.File)
				}
			}
			if blocked == v.Importable {
				t.Errorf("importable %v with blockers %v", v.Importable, v.Blockers())
			}
			if tt.shown != nil {
				for _, name := range tt.shown {
					if !v.Shows(name) {
						t.Errorf("folder lacks %s: %v", name, v.Entries)
					}
				}
				if len(v.Entries) != len(tt.shown) {
					t.Errorf("folder %v, want %v", v.Entries, tt.shown)
				}
			}
			if v.Importable && len(v.Layout) < 2 {
				t.Errorf("importable with layout %v", v.Layout)
			}
		})
	}
}

// judgeCases are the sample Caffe model (verdictModel) whole and with one
// thing wrong: empty, missing, unreadable, misnamed or refused files.
func judgeCases() []judgeCase {
	transient := errors.New("HTTP 502 Bad Gateway")
	return []judgeCase{
		{name: "complete", model: verdictModel(nil), importable: true,
			shown: []string{"aux.json", "deploy.prototxt", "info.json", "labels.txt", "license.txt", "logo.png", "model.caffemodel", "original.prototxt", "w.caffemodel", "net.prototxt"}},
		{name: "empty weights", model: verdictModel(func(f map[string]string) { f["w.caffemodel"] = "" }),
			importable: false, codes: []Code{CodeEmpty}},
		{name: "empty model definition", model: verdictModel(func(f map[string]string) { f["net.prototxt"] = "" }),
			importable: false, codes: []Code{CodeEmpty}},
		{name: "empty labels", model: verdictModel(func(f map[string]string) { f["labels.txt"] = "" }),
			importable: true, codes: []Code{CodeEmpty}},
		{name: "no weights", model: verdictModel(func(f map[string]string) { delete(f, "w.caffemodel") }),
			importable: false, codes: []Code{CodeMissing}},
		{name: "no info.json", model: verdictModel(func(f map[string]string) { delete(f, "info.json") }),
			importable: false, codes: []Code{CodeMissing}},
		{name: "info.json not JSON", model: verdictModel(func(f map[string]string) { f["info.json"] = "{" }),
			importable: false, codes: []Code{CodeInfoNotJSON}},
		{name: "aux.json not JSON", model: verdictModel(func(f map[string]string) { f["aux.json"] = `{"license": "BSD",` }),
			importable: true, codes: []Code{CodeAuxNotJSON},
			shown: []string{"aux.json", "deploy.prototxt", "info.json", "labels.txt", "model.caffemodel", "original.prototxt", "w.caffemodel", "net.prototxt"}},
		{name: "aux.json mistyped", model: verdictModel(func(f map[string]string) { f["aux.json"] = `{"license": 5}` }),
			importable: true, codes: []Code{CodeOther}},
		{name: "aux.json fails", model: func() fakeModel {
			m := verdictModel(nil)
			m.fail = map[string]error{"aux.json": transient}
			return m
		}(), importable: true, auxUnknown: true, codes: []Code{CodeAuxUnknown},
			shown: []string{"deploy.prototxt", "info.json", "labels.txt", "model.caffemodel", "original.prototxt", "w.caffemodel", "net.prototxt"}},
		{name: "logo missing", model: verdictModel(func(f map[string]string) { delete(f, "logo.png") }),
			importable: true, codes: []Code{CodeMissing}},
		{name: "logo takes a reserved name", model: verdictModel(func(f map[string]string) {
			f["aux.json"] = `{"logo": "info.json"}`
		}), importable: true, codes: []Code{CodeNameTaken}},
		{name: "extra names a job file", model: verdictModel(func(f map[string]string) {
			f["info.json"] = strings.Replace(verdictInfo, `"deploy.prototxt"`, `"model.caffemodel"`, 1)
		}), importable: true, codes: []Code{CodeNameTaken}},
		{name: "Caffe in capitals", model: verdictModel(func(f map[string]string) {
			f["info.json"] = strings.Replace(verdictInfo, `"caffe"`, `"Caffe"`, 1)
		}), importable: true, codes: []Code{CodeFramework}},
		{name: "weights refused (403)", model: func() fakeModel {
			m := verdictModel(nil)
			m.fail = map[string]error{"w.caffemodel": errors.New("the store answered HTTP 403 Forbidden")}
			return m
		}(), importable: false, codes: []Code{CodeOther}},
	}
}

// TestProblemsAs: the errors of ParseInfo and Layout are matched with
// errors.As, each problem naming its file and key.
func TestProblemsAs(t *testing.T) {
	_, err := ParseInfo([]byte(`{"framework": "caffe", "snapshot file": 5, "model file": "m"}`))
	var p *Problem
	if !errors.As(err, &p) || p.File != "info.json" || p.Severity != Blocker || !errors.Is(err, ErrNotImportable) {
		t.Fatalf("errors.As(%v) = %+v", err, p)
	}
	keys := map[string]bool{}
	for _, p := range ProblemsOf(err) {
		keys[p.Key] = true
	}
	if !keys[KeyName] || !keys[KeySnapshotFile] || len(keys) != 2 {
		t.Errorf("problem keys %v, want name and snapshot file", keys)
	}
	// A "; " inside a quoted value is one problem, not two.
	_, err = ParseInfo([]byte(`{"name": "a", "framework": "x; y", "snapshot file": "s", "model file": "m"}`))
	if ps := ProblemsOf(err); len(ps) != 1 || ps[0].Key != KeyFramework {
		t.Errorf("problems %v", ps)
	}
}

var idShape = regexp.MustCompile(`^\d{8}-\d{6}-[0-9a-f]{4}$`)

func TestJobIDs(t *testing.T) {
	created := time.Date(2017, 1, 24, 10, 10, 10, 123456000, time.UTC)
	refs := []ModelRef{{"http://a:8000", "lenet"}, {"http://b:8000", "lenet"}, {"http://a:8000", "réseau-ü"}}
	s, redrawn := JobIDSuffixes(refs)
	if len(redrawn) != 0 {
		t.Errorf("redrawn %v", redrawn)
	}
	seen := map[string]bool{}
	for _, r := range refs {
		id := JobID(created, s[r])
		if !idShape.MatchString(id) || !strings.HasPrefix(id, "20170124-101010-") {
			t.Errorf("%v: id %q", r, id)
		}
		if seen[id] {
			t.Errorf("%v: id %q taken twice", r, id)
		}
		seen[id] = true
	}
	// Stable: the same on another "machine" (a fresh call), whatever the
	// order, and a model's suffix does not depend on unrelated models.
	rev := []ModelRef{refs[2], refs[1], refs[0], {"http://c", "x"}}
	s2, _ := JobIDSuffixes(rev)
	for _, r := range refs {
		if s2[r] != s[r] {
			t.Errorf("%v: suffix %s, then %s", r, s[r], s2[r])
		}
	}
	if got := JobID(time.Date(2017, 1, 24, 11, 10, 10, 0, time.FixedZone("CET", 3600)), "ab12"); got != "20170124-101010-ab12" {
		t.Errorf("JobID in CET = %s, want UTC", got)
	}
}

// TestJobIDCollisions: among many models, first choices collide (4 hex
// digits); every model still gets its own suffix, the first in sorted
// order keeps its first choice, and the answer does not depend on order.
func TestJobIDCollisions(t *testing.T) {
	var refs []ModelRef
	for i := range 3000 {
		refs = append(refs, ModelRef{fmt.Sprintf("http://store%d:8000", i%3), fmt.Sprintf("m%04d", i)})
	}
	s, redrawn := JobIDSuffixes(refs)
	if len(redrawn) == 0 {
		t.Fatal("no collision among 3000 models: the test does not test collisions")
	}
	t.Logf("%d models, %d first choices redrawn", len(refs), len(redrawn))
	used := map[string]ModelRef{}
	for _, r := range refs {
		if len(s[r]) != 4 {
			t.Fatalf("%v: suffix %q", r, s[r])
		}
		if other, dup := used[s[r]]; dup {
			t.Fatalf("%v and %v share %s", r, other, s[r])
		}
		used[s[r]] = r
	}
	for _, r := range redrawn {
		first := idHash(r, 0)[:4]
		owner := used[first]
		if owner.StoreURL > r.StoreURL || (owner.StoreURL == r.StoreURL && owner.Model > r.Model) {
			t.Errorf("%v was redrawn, but %v, which sorts after it, kept %s", r, owner, first)
		}
	}
	shuffled := append([]ModelRef(nil), refs...)
	rand.New(rand.NewSource(1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	s2, _ := JobIDSuffixes(shuffled)
	for _, r := range refs {
		if s2[r] != s[r] {
			t.Fatalf("%v: %s, shuffled %s", r, s[r], s2[r])
		}
	}
}

// BenchmarkJobIDSuffixes10k: the table of a mount with 10,000 models,
// computed again whenever a listing changes.
func BenchmarkJobIDSuffixes10k(b *testing.B) {
	var refs []ModelRef
	for i := range 10000 {
		refs = append(refs, ModelRef{fmt.Sprintf("http://store%d:8000", i%4), fmt.Sprintf("model-%05d", i)})
	}
	b.ResetTimer()
	for range b.N {
		JobIDSuffixes(refs)
	}
}
