package digits

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// DIGITS' rules for one store model live here, and only here: given what
// the store answered about the model's files, Judge returns the folder
// (which files, under which names), the typed problems and one verdict on
// whether DIGITS can import it. The mount (status.pickle or not, error.txt,
// models.tsv), `ls`, `check` and `import` all use that one verdict.

// Answer is what the store said about one file of a model.
type Answer struct {
	// Found: the store has the file. Neither Found nor Err: it has not.
	Found bool
	// Err: the request failed (neither found nor absent, e.g. HTTP 502 or
	// a timeout for aux.json, 403 for a model file).
	Err error
	// Data is the body of info.json and aux.json when Found.
	Data []byte
	// Size is the length when Found; -1 when unknown.
	Size int64
}

// Input is everything Judge needs: the answers for info.json and aux.json,
// and for every remote name Wanted returns.
type Input struct {
	Info, Aux Answer
	Files     map[string]Answer // by remote name
}

// Entry is one name of the model folder that comes from the store: a file
// (Remote is its remote name, Name the name it is shown under) or a
// symlink from a remote name to the job-named file (Target set).
type Entry struct {
	Name, Remote, Target string
}

// Verdict is the one judgement on a store model.
type Verdict struct {
	Info *Info // nil when info.json is absent or not a JSON object
	Aux  *Aux  // nil when absent, invalid or unknown
	// AuxUnknown: aux.json could not be read for now; the license, logo
	// and dataset are unknown (not absent) until it is asked for again.
	AuxUnknown bool
	// Entries are the folder's names from the store, sorted by Name
	// (status.pickle and error.txt are added by the caller).
	Entries []Entry
	// Layout lists the job files the folder shows, for NewJob.
	Layout []JobFile
	// Problems, blockers first, in a stable order.
	Problems []*Problem
	// Importable: DIGITS can import the folder (no Blocker).
	Importable bool
}

// Blockers returns the problems that stop the import.
func (v *Verdict) Blockers() []*Problem { return v.bySeverity(Blocker) }

// Warnings returns the other problems.
func (v *Verdict) Warnings() []*Problem { return v.bySeverity(Warning) }

func (v *Verdict) bySeverity(s Severity) []*Problem {
	var out []*Problem
	for _, p := range v.Problems {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Shows reports whether the folder has an entry called name.
func (v *Verdict) Shows(name string) bool {
	for _, e := range v.Entries {
		if e.Name == name {
			return true
		}
	}
	return false
}

// candidate is a store file the folder shows if the store has it.
type candidate struct {
	jobName, remote string
	required        bool
	where           string // `info.json "snapshot file", needed as model.caffemodel`
	hint            string // appended to "not on the store"/"empty" of a required file
	aux             string // "license" or "logo" when named by aux.json
	key             string // the info.json or aux.json key naming it
}

// plan is what info.json and aux.json say before any file is asked about.
type plan struct {
	info     *Info
	aux      *Aux
	auxUnk   bool
	layout   []JobFile
	cands    []candidate
	problems []*Problem
}

func makePlan(infoA, auxA Answer) *plan {
	pl := &plan{}
	add := func(ps ...*Problem) { pl.problems = append(pl.problems, ps...) }
	switch {
	case infoA.Err != nil:
		add(&Problem{Severity: Blocker, File: InfoFile, Msg: fmt.Sprintf("info.json: %v", infoA.Err)})
	case !infoA.Found:
		add(&Problem{Severity: Blocker, Code: CodeMissing, File: InfoFile, LeftOut: true, Msg: "the store has no info.json for this model"})
	default:
		info, rawFw, err := parseInfo(infoA.Data)
		pl.info = info
		add(ProblemsOf(err)...)
		if p := frameworkCase(rawFw); p != nil {
			add(p)
		}
		if err == nil {
			files, dropped, lerr := Layout(info)
			add(ProblemsOf(lerr)...)
			add(dropped...)
			if lerr == nil {
				pl.layout = files
			}
			for _, f := range pl.layout {
				key := keyOf(info, f)
				c := candidate{jobName: f.JobName, remote: f.RemoteName, required: f.Required, key: key,
					where: fmt.Sprintf("info.json %q", key)}
				if f.JobName != f.RemoteName {
					c.where += ", needed as " + f.JobName
				}
				if info.Framework == Tensorflow && key == KeySnapshotFile {
					c.hint = "; a TensorFlow checkpoint has three parts: " + strings.Join(TensorflowSuffixes, ", ")
				}
				pl.cands = append(pl.cands, c)
			}
		}
	}

	switch {
	case auxA.Err != nil:
		pl.auxUnk = true
		add(&Problem{Severity: Warning, Code: CodeAuxUnknown, File: AuxFile, LeftOut: true,
			Msg: fmt.Sprintf("aux.json could not be read (%v): the license, logo and dataset are unknown for now; it is asked for again later", auxA.Err)})
	case auxA.Found:
		aux, err := ParseAux(auxA.Data)
		if err != nil {
			for _, p := range ProblemsOf(err) {
				p.Msg += ": modelstorefs ignores aux.json (license, logo, dataset)"
				add(p)
			}
			break
		}
		pl.aux = aux
		if aux.License != "" {
			pl.cands = append(pl.cands, candidate{jobName: "license.txt", remote: "license.txt", aux: "license", key: "license",
				where: fmt.Sprintf("aux.json names the license %q", aux.License)})
		}
		if aux.Logo != "" {
			if err := SafeRelName(aux.Logo); err != nil {
				add(&Problem{Severity: Warning, Code: CodeUnsafeName, File: aux.Logo, Key: "logo", LeftOut: true,
					Msg: fmt.Sprintf("aux.json logo refused: %v", err)})
			} else {
				pl.cands = append(pl.cands, candidate{jobName: aux.Logo, remote: aux.Logo, aux: "logo", key: "logo",
					where: "aux.json \"logo\""})
			}
		}
	}
	return pl
}

// frameworkCase warns about a framework DIGITS would keep verbatim: its
// Pretrained Networks tabs compare it with the lowercase id.
func frameworkCase(fw string) *Problem {
	if low := strings.ToLower(strings.TrimSpace(fw)); low != fw && KnownFramework(low) {
		return &Problem{Severity: Warning, Code: CodeFramework, File: InfoFile, Key: KeyFramework,
			Msg: fmt.Sprintf(`info.json "framework" is %q: DIGITS keeps it as written, so the model would not show under its framework in New Model; write %q`, fw, low)}
	}
	return nil
}

// keyOf names the info.json key a job file comes from.
func keyOf(info *Info, f JobFile) string {
	switch f.RemoteName {
	case info.LabelsFile:
		return KeyLabelsFile
	case info.PythonLayerFile:
		return KeyPythonLayerFile
	}
	switch f.JobName {
	case CaffeWeights, TorchWeights:
		return KeySnapshotFile
	case CaffeModelDef, TorchModelDef, TensorflowModelDef:
		return KeyModelFile
	}
	if strings.HasPrefix(f.JobName, TensorflowWeights+".") {
		return KeySnapshotFile
	}
	for _, k := range ExtraKeys {
		if info.Extra[k] == f.RemoteName {
			return k
		}
	}
	return "file"
}

// Plan is what info.json and aux.json say, read once: which files to ask
// the store about, and the verdict once it answered.
type Plan struct {
	pl        *plan
	info, aux Answer
}

// NewPlan reads the answers for info.json and aux.json.
func NewPlan(info, aux Answer) *Plan {
	return &Plan{pl: makePlan(info, aux), info: info, aux: aux}
}

// Wanted returns the remote names to ask the store about (size and
// presence) before calling Judge, each once, in a stable order.
func Wanted(info, aux Answer) []string { return NewPlan(info, aux).Wanted() }

// Wanted is Wanted of the plan's answers.
func (p *Plan) Wanted() []string {
	pl := p.pl
	seen := map[string]bool{}
	var out []string
	for _, c := range pl.cands {
		if !seen[c.remote] {
			seen[c.remote] = true
			out = append(out, c.remote)
		}
	}
	return out
}

// Judge returns the verdict on a model from the store's answers. Files
// missing from in.Files count as not on the store.
func Judge(in Input) *Verdict { return NewPlan(in.Info, in.Aux).Judge(in.Files) }

// Judge is Judge of the plan's answers and those about the files.
func (p *Plan) Judge(files map[string]Answer) *Verdict {
	pl, in := p.pl, Input{Info: p.info, Aux: p.aux, Files: files}
	v := &Verdict{Info: pl.info, Aux: pl.aux, AuxUnknown: pl.auxUnk}
	probs := slices.Clone(pl.problems)
	add := func(p *Problem) { probs = append(probs, p) }

	taken := map[string]bool{InfoFile: true, AuxFile: true, ErrorFile: true, StatusFile: true}
	if in.Info.Found && in.Info.Err == nil {
		v.Entries = append(v.Entries, Entry{Name: InfoFile, Remote: InfoFile})
	}
	if in.Aux.Found && in.Aux.Err == nil {
		v.Entries = append(v.Entries, Entry{Name: AuxFile, Remote: AuxFile})
	}
	found := map[string]bool{}
	for _, c := range pl.cands {
		a := in.Files[c.remote]
		sev := Warning
		if c.required {
			sev = Blocker
		}
		switch {
		case a.Err != nil:
			add(&Problem{Severity: sev, File: c.remote, LeftOut: true, Key: c.key,
				Msg: fmt.Sprintf("%s (%s): %v%s", c.remote, c.where, a.Err, leftOut(c.required))})
			continue
		case !a.Found:
			add(c.missing())
			continue
		case a.Size == 0:
			msg := fmt.Sprintf("%s is empty (%s%s)", c.remote, c.where, c.hint)
			if c.aux == "license" {
				msg = fmt.Sprintf("license.txt is empty (%s)", c.where)
			}
			add(&Problem{Severity: sev, Code: CodeEmpty, File: c.remote, Key: c.key, Msg: msg})
		}
		found[c.remote] = true
		if taken[c.jobName] {
			add(&Problem{Severity: Warning, Code: CodeNameTaken, File: c.remote, Key: c.key,
				Msg: fmt.Sprintf("%s (%s) is not shown: the name %q is already used in this folder", c.remote, c.where, c.jobName)})
			continue
		}
		taken[c.jobName] = true
		v.Entries = append(v.Entries, Entry{Name: c.jobName, Remote: c.remote})
		for _, f := range pl.layout {
			if f.JobName == c.jobName {
				v.Layout = append(v.Layout, f)
			}
		}
	}
	// Remote names kept as relative symlinks, so cp -r copies each byte once.
	for _, c := range pl.cands {
		if !found[c.remote] || c.remote == c.jobName || taken[c.remote] {
			continue
		}
		if e, ok := v.entry(c.jobName); !ok || e.Remote != c.remote {
			continue
		}
		taken[c.remote] = true
		v.Entries = append(v.Entries, Entry{Name: c.remote, Target: c.jobName})
	}
	sort.Slice(v.Entries, func(i, j int) bool { return v.Entries[i].Name < v.Entries[j].Name })

	// Blockers first; otherwise the order of discovery.
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Severity < probs[j].Severity })
	v.Problems = probs
	v.Importable = v.Info != nil && pl.layout != nil && len(v.Blockers()) == 0
	return v
}

func (v *Verdict) entry(name string) (Entry, bool) {
	for _, e := range v.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

func leftOut(required bool) string {
	if required {
		return ""
	}
	return ": left out of the folder"
}

// missing is the problem of a candidate the store does not have.
func (c candidate) missing() *Problem {
	p := &Problem{Severity: Warning, Code: CodeMissing, File: c.remote, Key: c.key, LeftOut: true}
	switch {
	case c.required:
		p.Severity = Blocker
		p.Msg = fmt.Sprintf("%s is not on the store (%s%s)", c.remote, c.where, c.hint)
	case c.aux == "license":
		p.Msg = fmt.Sprintf("%s but license.txt is not on the store", c.where)
	case c.aux == "logo":
		p.Msg = fmt.Sprintf("aux.json names the logo %q but it is not on the store", c.remote)
	default:
		p.Msg = fmt.Sprintf("%s is not on the store (%s): left out of the folder", c.remote, c.where)
	}
	return p
}
