package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// metaStore keeps the last good listing and model metadata of every store
// on disk, so that a daemon started while a store is down still shows it
// (stale, with error.txt saying so) and serves the files already in the
// content cache, and so that a restart revalidates with conditional
// requests instead of fetching everything again.
//
// A store's listing is one file; its models are one append-only log
// (modelLog), written in batches: a store of a hundred thousand models is
// one file, not a hundred thousand, and resolving it costs no syscall per
// model. What is kept of a model is what the store answered (a
// resolution): the folder is assembled from it again, as after a fetch.
type metaStore struct {
	dir      string // "" disables
	log      *zap.Logger
	maxBytes int64 // bound of one store's model log

	mu   sync.Mutex
	logs map[string]*modelLog // by store directory
}

// defaultMetaBytes bounds the kept models of one store.
const defaultMetaBytes = 256 << 20

func newMetaStore(dir string, log *zap.Logger) *metaStore {
	return &metaStore{dir: dir, log: log, maxBytes: defaultMetaBytes, logs: map[string]*modelLog{}}
}

type savedListing struct {
	URL     string    `json:"url"`
	Msg     string    `json:"msg"`
	Models  []string  `json:"models"`
	Fetched time.Time `json:"fetched"`
}

func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

func (p *metaStore) storeDir(st *Store) string {
	return filepath.Join(p.dir, hashName(st.Remote.Base().String()))
}

func (p *metaStore) listingPath(st *Store) string {
	return filepath.Join(p.storeDir(st), "listing.json")
}

// modelLog returns the store's model log, opening it on first use.
func (p *metaStore) modelLog(st *Store) *modelLog {
	dir := p.storeDir(st)
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.logs[dir]
	if !ok {
		l = &modelLog{path: filepath.Join(dir, "models.log"), maxBytes: p.maxBytes, log: p.log}
		p.logs[dir] = l
	}
	return l
}

// writeFile stores data at path atomically; failures only cost the
// fallback.
func (p *metaStore) writeFile(path string, data []byte) {
	err := os.MkdirAll(filepath.Dir(path), 0o700)
	var tmp *os.File
	if err == nil {
		tmp, err = os.CreateTemp(filepath.Dir(path), ".tmp-*")
	}
	if err == nil {
		_, err = tmp.Write(data)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err != nil {
		p.log.Debug("could not keep metadata on disk", zap.String("path", path), zap.Error(err))
	}
}

func (p *metaStore) saveListing(st *Store, l *StoreListing) {
	if p.dir == "" {
		return
	}
	data, err := json.Marshal(savedListing{URL: st.Remote.Base().String(), Msg: l.Msg, Models: l.Models, Fetched: l.Fetched})
	if err == nil {
		p.writeFile(p.listingPath(st), data)
	}
	// Models were kept one file each before: that layout is gone.
	_ = os.RemoveAll(filepath.Join(p.storeDir(st), "models"))
}

func (p *metaStore) loadListing(st *Store) *StoreListing {
	var s savedListing
	if p.dir == "" {
		return nil
	}
	data, err := os.ReadFile(p.listingPath(st))
	if err != nil || json.Unmarshal(data, &s) != nil || s.URL != st.Remote.Base().String() {
		return nil
	}
	return &StoreListing{Msg: s.Msg, Models: s.Models, Fetched: s.Fetched}
}

// savedModel is what the store answered about a model, as kept on disk.
type savedModel struct {
	Fetched time.Time              `json:"fetched"`
	Info    *savedFile             `json:"info,omitempty"` // nil: the store has none
	Aux     *savedFile             `json:"aux,omitempty"`
	AuxErr  string                 `json:"aux_err,omitempty"` // aux.json failed: its fields unknown
	Files   map[string]savedAnswer `json:"files,omitempty"`   // by remote name; absent: not on the store
}

type savedFile struct {
	Data []byte      `json:"data"`
	Meta remote.Meta `json:"meta"`
}

type savedAnswer struct {
	Meta *remote.Meta `json:"meta,omitempty"` // the store has it
	Err  string       `json:"err,omitempty"`  // it refused it
}

// encodeModel is a model's line of the log.
func encodeModel(m *Model) ([]byte, error) {
	a := m.res
	if a == nil {
		return nil, errors.New("no answers")
	}
	s := savedModel{Fetched: m.Fetched, Files: make(map[string]savedAnswer, len(a.files))}
	if a.info.Found {
		s.Info = &savedFile{Data: a.info.Data, Meta: a.infoMeta}
	}
	switch {
	case a.aux.Err != nil:
		s.AuxErr = a.aux.Err.Error()
	case a.aux.Found:
		s.Aux = &savedFile{Data: a.aux.Data, Meta: a.auxMeta}
	}
	for _, f := range a.files {
		switch {
		case f.err != "":
			s.Files[f.name] = savedAnswer{Err: f.err}
		case f.found:
			meta := f.meta
			s.Files[f.name] = savedAnswer{Meta: &meta}
		}
	}
	return json.Marshal(s)
}

// decodeModel rebuilds the resolution a line keeps.
func decodeModel(data []byte) (*resolution, time.Time, bool) {
	var s savedModel
	if json.Unmarshal(data, &s) != nil {
		return nil, time.Time{}, false
	}
	r := &resolution{metas: map[string]remote.Meta{}}
	r.in.Files = make(map[string]digits.Answer, len(s.Files))
	if s.Info != nil {
		r.infoFile = keptFile(digits.InfoFile, s.Info)
		r.in.Info = digits.Answer{Found: true, Data: s.Info.Data, Size: int64(len(s.Info.Data))}
	}
	switch {
	case s.AuxErr != "":
		r.in.Aux = digits.Answer{Err: errors.New(s.AuxErr)}
	case s.Aux != nil:
		r.auxFile = keptFile(digits.AuxFile, s.Aux)
		r.in.Aux = digits.Answer{Found: true, Data: s.Aux.Data, Size: int64(len(s.Aux.Data))}
	}
	for rn, a := range s.Files {
		switch {
		case a.Err != "":
			r.in.Files[rn] = digits.Answer{Err: errors.New(a.Err)}
		case a.Meta != nil:
			r.metas[rn] = *a.Meta
			r.in.Files[rn] = digits.Answer{Found: true, Size: a.Meta.Size}
		}
	}
	return r, s.Fetched, true
}

func keptFile(name string, f *savedFile) *File {
	return &File{Name: name, Kind: KindData, Remote: name, Data: f.Data, Meta: f.Meta, ModTime: f.Meta.ModTime()}
}

// saveModel keeps a model (in the next batch of its store's log).
func (p *metaStore) saveModel(st *Store, m *Model) {
	if p.dir == "" {
		return
	}
	p.modelLog(st).save(m.Name, func() ([]byte, error) { return encodeModel(m) })
}

// loadModel returns what was kept of a model, and when it was fetched.
func (p *metaStore) loadModel(st *Store, name string) (*resolution, time.Time, bool) {
	if p.dir == "" {
		return nil, time.Time{}, false
	}
	data, ok := p.modelLog(st).load(name)
	if !ok {
		return nil, time.Time{}, false
	}
	return decodeModel(data)
}

// flush writes every store's pending batch.
func (p *metaStore) flush() {
	p.mu.Lock()
	logs := make([]*modelLog, 0, len(p.logs))
	for _, l := range p.logs {
		logs = append(logs, l)
	}
	p.mu.Unlock()
	for _, l := range logs {
		l.flush()
	}
}

// close writes what is pending and closes the logs.
func (p *metaStore) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		l.close()
	}
}

// KeptSummaries reads the model list kept under metaDir for st, as the
// mount and `ls` left it (one list per store, whoever fetched it): one
// summary per kept model of the last good listing, sorted, and when that
// listing was fetched. It fetches nothing. complete is false when a model
// of the listing is not kept or has values unknown for now (it failed, its
// aux.json could not be read, or its listing gave no sizes): such a list
// is to be asked for again.
func KeptSummaries(metaDir string, st *Store) (rows []Summary, fetched time.Time, complete bool) {
	p := newMetaStore(metaDir, zap.NewNop())
	defer p.close()
	l := p.loadListing(st)
	if l == nil {
		return nil, time.Time{}, false
	}
	complete = true
	for _, name := range l.Models {
		r, _, ok := p.loadModel(st, name)
		if !ok {
			complete = false
			continue
		}
		v := digits.Judge(r.in)
		m := &Model{Store: st, Name: name, Info: v.Info, Aux: v.Aux, Importable: v.Importable, AuxUnknown: v.AuxUnknown}
		// Judged on presence alone (a listing without sizes): not the
		// verdict check and import give.
		complete = complete && !m.AuxUnknown && !keep(r).unsized()
		sum := m.Summary()
		sum.Files = keep(r).fileSummaries(st, name, nil)
		rows = append(rows, sum)
	}
	return rows, l.Fetched, complete
}
