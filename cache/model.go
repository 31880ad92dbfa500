package cache

import (
	"sort"
	"sync/atomic"
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
	// listings: whether the store lists its model folders (folder.go).
	listings atomic.Int32
	// pace bounds the store's background resolves (pace.go).
	pace *pacer
	// sums is the store's SHA256SUMS (sums.go).
	sums storeSums
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
	Msg    string
	Models []string // sorted
	// Folders are what master.json says each model folder holds (nil when
	// it says nothing).
	Folders *remote.Folders
	Fetched time.Time
	// Stale is set when this is the last good listing served because a
	// newer fetch failed.
	Stale error
	stale atomic.Pointer[StoreListing] // its stale copy, kept by staleListing
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
	Data    []byte      // KindData (see Bytes)
	Target  string      // KindSymlink: relative target
	Remote  string      // KindRemote: file name below the model folder on the store
	Meta    remote.Meta // KindRemote: size and validators; KindData: Size = len(Data)
	ModTime time.Time

	// gen makes the bytes of a KindData file that are not kept
	// (status.pickle, made again when read: a store may have a hundred
	// thousand); size is their length.
	gen  func() []byte
	size int64
}

// Bytes returns a KindData file's bytes.
func (f *File) Bytes() []byte {
	if f.gen != nil {
		return f.gen()
	}
	return f.Data
}

// Generated reports whether a KindData file's bytes are made when asked
// for (Bytes), not held.
func (f *File) Generated() bool { return f.gen != nil }

// Size is the file's length in bytes.
func (f *File) Size() int64 {
	switch f.Kind {
	case KindData:
		if f.gen != nil {
			return f.size
		}
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
	// Problems lists, one line each, why the model cannot be imported or
	// what was left out; they make up error.txt.
	Problems   []string
	Importable bool
	// AuxUnknown: aux.json failed for now (not absent): the license, logo
	// and dataset are unknown, and the model is resolved again after
	// NegativeTTL.
	AuxUnknown bool
	Fetched    time.Time
	// res is what the store answered, the model is assembled from: kept
	// on disk, and judged again once sizes the listing did not give are
	// known.
	res   *answers
	shown []*digits.Problem // what error.txt lists
	t0    time.Time         // the time of the files made here

	// The folder's files are laid out when first asked for (Files).
	layout func() []File
	files  atomic.Pointer[[]File]
}

// ProblemLines are the model's problems, each made one harmless line
// (as the refusals of import and upload quote them).
func (m *Model) ProblemLines() []string {
	why := make([]string, len(m.Problems))
	for i, p := range m.Problems {
		why[i] = digits.CleanLine(p)
	}
	return why
}

// Files returns the folder's entries, sorted by name. They are laid out
// when first asked for (listing a store and models.tsv need none of them:
// a store may have a hundred thousand models), then kept.
func (m *Model) Files() []File {
	if f := m.files.Load(); f != nil {
		return *f
	}
	var files []File
	if m.layout != nil {
		files = m.layout()
	}
	m.files.CompareAndSwap(nil, &files)
	return *m.files.Load()
}

// Sized reports whether every store file of the folder has its size, so
// that the verdict is settled (an empty required file blocks the import).
func (m *Model) Sized() bool { return m.res == nil || !m.res.unsized() }

// NeedsSizes reports whether the entry called name, or its absence, may
// change once the sizes of the folder's files are known: a file of
// unknown size, and status.pickle and error.txt, which follow the
// verdict (an empty required file blocks the import).
func (m *Model) NeedsSizes(name string) bool {
	if m.Sized() {
		return false
	}
	f, ok := m.File(name)
	switch {
	case !ok, name == digits.StatusFile, name == digits.ErrorFile:
		return true
	case f.Kind == KindRemote:
		return f.Meta.Size < 0
	}
	return false
}

// File returns the entry called name.
func (m *Model) File(name string) (*File, bool) {
	files := m.Files()
	i := sort.Search(len(files), func(i int) bool { return files[i].Name >= name })
	if i < len(files) && files[i].Name == name {
		return &files[i], true
	}
	return nil, false
}

// knownMeta returns what the store said of a file of a (possibly nil)
// model, when it said its version (for a conditional request).
func (m *Model) knownMeta(remoteName string) (remote.Meta, bool) {
	if m == nil || m.res == nil {
		return remote.Meta{}, false
	}
	for _, f := range m.res.files {
		if f.name == remoteName && f.found && f.meta.Size >= 0 && (f.meta.ETag != "" || f.meta.LastModified != "") {
			return f.meta, true
		}
	}
	return remote.Meta{}, false
}

// smallFile returns info.json or aux.json of a (possibly nil) model, as
// the store answered it.
func (m *Model) smallFile(name string) (*File, bool) {
	if m == nil || m.res == nil {
		return nil, false
	}
	a, meta := m.res.info, m.res.infoMeta
	if name == digits.AuxFile {
		a, meta = m.res.aux, m.res.auxMeta
	}
	if !a.Found || a.Err != nil {
		return nil, false
	}
	return keptFile(name, &savedFile{Data: a.Data, Meta: meta}), true
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
	// Files are the model's store files with their digests: filled by
	// ls --json alone (FileSummaries).
	Files []FileSummary `json:"files,omitempty"`
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
