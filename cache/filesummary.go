package cache

import (
	"sort"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// FileSummary is one store file of a model as `modelstorefs ls --json`
// shows it: its size and the digest the store states for it (its
// answers' headers, or its SHA256SUMS), and, filled in by the caller that
// looks into the content cache, the SHA-256 of the cached copy.
type FileSummary struct {
	Name       string `json:"name"` // as the store names it
	Size       int64  `json:"size"` // -1: not known yet
	Digest     string `json:"digest,omitempty"`
	DigestFrom string `json:"digest_from,omitempty"` // "answer" or "SHA256SUMS"
	SHA256     string `json:"sha256,omitempty"`      // of the cached copy
	Verified   string `json:"verified,omitempty"`    // "store" or "computed"
	Ref        Ref    `json:"-"`                     // the version, to find its cached copy
}

// FileSummaries lists the model's store files, sorted by name, with the
// digests known now (the store's SHA256SUMS as last read).
func (m *Model) FileSummaries() []FileSummary {
	if m.res == nil {
		return nil
	}
	return m.res.fileSummaries(m.Store, m.Name, m.Store.sums.known())
}

// WithSums gives the files of s that have no digest the one sums names.
func (s *Summary) WithSums(sums *remote.Sums) {
	for i := range s.Files {
		f := &s.Files[i]
		if f.Digest != "" {
			continue
		}
		if d, ok := sums.Lookup(s.Model + "/" + f.Name); ok {
			f.Digest, f.DigestFrom = d.String(), remote.SumsFile
		}
	}
}

func (a *answers) fileSummaries(st *Store, model string, sums *remote.Sums) []FileSummary {
	var out []FileSummary
	add := func(name string, meta remote.Meta) {
		if meta.Digest.IsZero() {
			if d, ok := sums.Lookup(model + "/" + name); ok {
				meta.Digest, meta.DigestFrom = d, remote.SumsFile
			}
		}
		fs := FileSummary{Name: name, Size: meta.Size, Ref: Ref{Store: st, Model: model, Name: name, Meta: meta}}
		if !meta.Digest.IsZero() {
			fs.Digest, fs.DigestFrom = meta.Digest.String(), meta.DigestFrom
			if fs.DigestFrom == "" {
				fs.DigestFrom = "answer"
			}
		}
		out = append(out, fs)
	}
	if a.info.Found {
		add(digits.InfoFile, a.infoMeta)
	}
	if a.aux.Found {
		add(digits.AuxFile, a.auxMeta)
	}
	for _, f := range a.files {
		if f.found {
			add(f.name, f.meta)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
