package cache

import (
	"bytes"
	"errors"
	"slices"
	"sort"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// answers is a resolution as a model keeps it, for as long as it is
// cached: to be kept on disk, and judged again once the sizes a listing
// did not give are known. It is compact (a sorted slice, not two maps):
// a store may have a hundred thousand models. info.json and aux.json are
// the model's own files (aux.json maybe the last good one).
type answers struct {
	info, aux         digits.Answer // Data shared with the model's files
	infoMeta, auxMeta remote.Meta   // of info.json and aux.json (aux.json: maybe the last good one)
	files             []fileAnswer  // sorted by name
}

// fileAnswer is what the store said of one file: found (with what was
// learned of it: Size -1 when only its presence), or refused (err).
type fileAnswer struct {
	name  string
	meta  remote.Meta
	found bool
	err   string
}

// keep makes the answers of a resolution.
func keep(r *resolution) *answers {
	a := &answers{info: r.in.Info, aux: r.in.Aux, files: make([]fileAnswer, 0, len(r.in.Files))}
	if r.infoFile != nil {
		a.infoMeta = r.infoFile.Meta
	}
	if r.auxFile != nil {
		a.auxMeta = r.auxFile.Meta
	}
	for rn, ans := range r.in.Files {
		fa := fileAnswer{name: rn, meta: r.metas[rn], found: ans.Found}
		if ans.Err != nil {
			fa.err, fa.found = ans.Err.Error(), false
		}
		a.files = append(a.files, fa)
	}
	sort.Slice(a.files, func(i, j int) bool { return a.files[i].name < a.files[j].name })
	return a
}

// resolution makes the answers a resolution again.
func (a *answers) resolution() *resolution {
	r := &resolution{metas: make(map[string]remote.Meta, len(a.files))}
	if a.info.Found {
		r.infoFile = keptFile(digits.InfoFile, &savedFile{Data: a.info.Data, Meta: a.infoMeta})
	}
	if a.aux.Found {
		r.auxFile = keptFile(digits.AuxFile, &savedFile{Data: a.aux.Data, Meta: a.auxMeta})
	}
	r.in = digits.Input{Info: a.info, Aux: a.aux, Files: make(map[string]digits.Answer, len(a.files))}
	for _, f := range a.files {
		switch {
		case f.err != "":
			r.in.Files[f.name] = digits.Answer{Err: errors.New(f.err)}
		case f.found:
			r.in.Files[f.name] = digits.Answer{Found: true, Size: f.meta.Size}
			r.metas[f.name] = f.meta
		}
	}
	return r
}

// unsized reports whether a file the store has is of unknown size.
func (a *answers) unsized() bool {
	for _, f := range a.files {
		if f.found && f.meta.Size < 0 {
			return true
		}
	}
	return false
}

// same reports whether two answers are the same.
func (a *answers) same(b *answers) bool {
	if a == nil || b == nil {
		return a == b
	}
	return sameAnswer(a.info, b.info) && sameAnswer(a.aux, b.aux) && a.infoMeta == b.infoMeta &&
		a.auxMeta == b.auxMeta && slices.Equal(a.files, b.files)
}

func sameAnswer(a, b digits.Answer) bool {
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	return a.Found == b.Found && a.Size == b.Size && errText(a.Err) == errText(b.Err) && bytes.Equal(a.Data, b.Data)
}
