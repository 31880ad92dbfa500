package cache

import (
	"sort"
	"time"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// Store is one configured model store.
type Store struct {
	Name string // directory name in the mounted tree
	// Remote is the store's HTTP client, for the byte engine and the
	// metrics; the filesystem uses the accessors below.
	Remote *remote.Store
	idx    int
}

// URL is the store's base URL, never with credentials.
func (s *Store) URL() string { return s.Remote.Base().String() }

// StoreCounters are what one store's client has done.
type StoreCounters struct {
	Requests      int64 // HTTP requests (attempts) sent
	BytesReceived int64 // body bytes received
}

// Counters returns the store's counters now.
func (s *Store) Counters() StoreCounters {
	return StoreCounters{Requests: s.Remote.Requests(), BytesReceived: s.Remote.BytesReceived()}
}

// StoreListing is a store's model list as last fetched.
type StoreListing struct {
	Msg     string
	Models  []string // sorted
	Fetched time.Time
	// Stale is set when this is the last good listing served because a
	// newer fetch failed.
	Stale error
}

// Has reports whether the listing names a model (binary search).
func (l *StoreListing) Has(name string) bool {
	i := sort.SearchStrings(l.Models, name)
	return i < len(l.Models) && l.Models[i] == name
}

// FileKind tells how a File's bytes are produced.
type FileKind int

const (
	// KindData files are held in memory (info.json, status.pickle, error.txt).
	KindData FileKind = iota
	// KindRemote files are fetched from the store on first read.
	KindRemote
	// KindSymlink entries point to another file of the same folder.
	KindSymlink
)

// File is one entry of a model folder.
type File struct {
	Name    string
	Kind    FileKind
	Data    []byte      // KindData
	Target  string      // KindSymlink: relative target
	Remote  string      // KindRemote: file name below the model folder on the store
	Meta    remote.Meta // KindRemote: size and validators; KindData: Size = len(Data)
	ModTime time.Time
}

// Size is the file's length in bytes.
func (f *File) Size() int64 {
	switch f.Kind {
	case KindData:
		return int64(len(f.Data))
	case KindSymlink:
		return int64(len(f.Target))
	}
	return f.Meta.Size
}

// Model is a resolved model folder: what the store has and how the mounted
// folder presents it.
type Model struct {
	Store *Store
	Name  string
	Info  *digits.Info // nil when info.json is missing or not JSON
	Aux   *digits.Aux  // nil when absent or invalid
	Files []File       // sorted by Name
	// Problems lists, one line each, why the model cannot be imported or
	// what was left out; they make up error.txt.
	Problems   []string
	Importable bool
	// AuxUnknown: aux.json failed for now (not absent): the license, logo
	// and dataset are unknown, and the model is resolved again after
	// NegativeTTL.
	AuxUnknown bool
	Fetched    time.Time
}

// File returns the entry called name.
func (m *Model) File(name string) (*File, bool) {
	i := sort.Search(len(m.Files), func(i int) bool { return m.Files[i].Name >= name })
	if i < len(m.Files) && m.Files[i].Name == name {
		return &m.Files[i], true
	}
	return nil, false
}

// file returns the entry with the given remote name, for revalidation.
func (m *Model) remoteFile(remoteName string) *File {
	if m == nil {
		return nil
	}
	for i := range m.Files {
		if m.Files[i].Kind == KindRemote && m.Files[i].Remote == remoteName {
			return &m.Files[i]
		}
	}
	return nil
}

// Summary is a model's line in the store table (models.tsv, modelstorefs
// ls): the columns of DIGITS' store page, and whether DIGITS can import it.
type Summary struct {
	Store       string `json:"store"`
	Model       string `json:"model"`
	Name        string `json:"name"`
	Framework   string `json:"framework"`
	Dataset     string `json:"dataset"`
	License     string `json:"license"`
	Contributor string `json:"contributor"`
	Note        string `json:"note"`
	Importable  bool   `json:"importable"`
	// AuxUnknown: aux.json could not be read for now, so the dataset (and
	// the license, unless info.json has one) are unknown, not empty.
	AuxUnknown bool `json:"aux_unknown,omitempty"`
	// Why says why DIGITS cannot import the model: the first of its
	// blockers, as error.txt lists them first; empty when importable.
	// Not a models.tsv column (Fields): ls shows it.
	Why string `json:"why,omitempty"`
}

// Unknown is shown in a table for a value not known for now.
const Unknown = "?"

// TableHeader names the table columns, in Fields order.
var TableHeader = []string{"store", "model", "name", "framework", "dataset", "license", "contributor", "note", "importable"}

// Summary returns the model's table line, its text made harmless.
func (m *Model) Summary() Summary {
	s := Summary{Store: m.Store.Name, Model: m.Name, Importable: m.Importable, AuxUnknown: m.AuxUnknown}
	if !m.Importable && len(m.Problems) > 0 {
		s.Why = m.Problems[0] // the verdict lists blockers first
	}
	if m.Info != nil {
		s.Name, s.Framework, s.Contributor, s.Note, s.License = m.Info.Name, m.Info.Framework, m.Info.Username, m.Info.Note, m.Info.License
	}
	if m.Aux != nil {
		s.Dataset = m.Aux.Dataset
		if m.Aux.License != "" {
			s.License = m.Aux.License
		}
	}
	return s.Clean()
}

// Clean returns s with every text field made one harmless line (CleanLine).
func (s Summary) Clean() Summary {
	for _, f := range []*string{&s.Store, &s.Model, &s.Name, &s.Framework, &s.Dataset, &s.License, &s.Contributor, &s.Note, &s.Why} {
		*f = digits.CleanLine(*f)
	}
	return s
}

// Fields returns the summary's columns in table order (TableHeader), each
// one harmless line: tabs, line breaks and other control characters (store
// content) never reach the table. Values unknown for now are Unknown;
// importable is "yes" or "no".
func (s Summary) Fields() []string {
	dataset, license := s.Dataset, s.License
	if s.AuxUnknown {
		if dataset == "" {
			dataset = Unknown
		}
		if license == "" {
			license = Unknown
		}
	}
	importable := "no"
	if s.Importable {
		importable = "yes"
	}
	fields := []string{s.Store, s.Model, s.Name, s.Framework, dataset, license, s.Contributor, s.Note, importable}
	for i, f := range fields {
		fields[i] = digits.CleanLine(f)
	}
	return fields
}
