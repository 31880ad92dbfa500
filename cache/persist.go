package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/digits"
)

// metaStore keeps the last good listing and model metadata of every store
// on disk, so that a daemon started while a store is down still shows it
// (stale, with error.txt saying so) and serves the files already in the
// content cache, and so that a restart revalidates with conditional
// requests instead of fetching everything again.
//
// Its bytes are bounded (maxBytes, counted in disk blocks): a store of a
// hundred thousand entries must not fill the disk with small files. Past
// the bound, new models are simply not kept; they are fetched again after
// a restart.
type metaStore struct {
	dir      string // "" disables
	log      *zap.Logger
	maxBytes int64

	mu     sync.Mutex
	used   int64 // disk bytes under dir; -1 until counted
	warned bool
}

// defaultMetaBytes bounds the kept metadata.
const defaultMetaBytes = 64 << 20

// diskBytes rounds a file size up to whole 4 KiB blocks, as it lands on disk.
func diskBytes(n int64) int64 { return (n + 4095) &^ 4095 }

// reserve accounts for replacing the file at path (old size, if any) by
// one of n bytes; it reports whether that fits in the bound.
func (p *metaStore) reserve(path string, n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used < 0 {
		p.used = 0
		_ = filepath.WalkDir(p.dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					p.used += diskBytes(info.Size())
				}
			}
			return nil
		})
	}
	var old int64
	if info, err := os.Stat(path); err == nil {
		old = diskBytes(info.Size())
	}
	grow := diskBytes(n) - old
	if grow > 0 && p.used+grow > p.maxBytes {
		if !p.warned {
			p.warned = true
			p.log.Warn("kept metadata reached its bound: more models are not kept on disk", zap.String("dir", p.dir), zap.Int64("bytes", p.maxBytes))
		}
		return false
	}
	p.used += grow
	return true
}

type savedListing struct {
	URL     string    `json:"url"`
	Msg     string    `json:"msg"`
	Models  []string  `json:"models"`
	Fetched time.Time `json:"fetched"`
}

type savedModel struct {
	Name       string    `json:"name"`
	Files      []File    `json:"files"`
	Problems   []string  `json:"problems"`
	Importable bool      `json:"importable"`
	AuxUnknown bool      `json:"aux_unknown,omitempty"`
	Fetched    time.Time `json:"fetched"`
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

func (p *metaStore) modelPath(st *Store, name string) string {
	return filepath.Join(p.storeDir(st), "models", hashName(name)+".json")
}

// write stores v at path atomically; failures only cost the fallback.
func (p *metaStore) write(path string, v any) {
	data, err := json.Marshal(v)
	if err == nil && !p.reserve(path, int64(len(data))) {
		return
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o700)
	}
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

func (p *metaStore) read(path string, v any) bool {
	data, err := os.ReadFile(path)
	return err == nil && json.Unmarshal(data, v) == nil
}

func (p *metaStore) saveListing(st *Store, l *StoreListing) {
	if p.dir == "" {
		return
	}
	p.write(p.listingPath(st), savedListing{URL: st.Remote.Base().String(), Msg: l.Msg, Models: l.Models, Fetched: l.Fetched})
}

func (p *metaStore) loadListing(st *Store) *StoreListing {
	var s savedListing
	if p.dir == "" || !p.read(p.listingPath(st), &s) || s.URL != st.Remote.Base().String() {
		return nil
	}
	return &StoreListing{Msg: s.Msg, Models: s.Models, Fetched: s.Fetched}
}

func (p *metaStore) saveModel(st *Store, m *Model) {
	if p.dir == "" {
		return
	}
	p.write(p.modelPath(st, m.Name), savedModel{Name: m.Name, Files: m.Files, Problems: m.Problems, Importable: m.Importable, AuxUnknown: m.AuxUnknown, Fetched: m.Fetched})
}

// loadModel rebuilds a saved model; Info and Aux are parsed again from the
// saved info.json and aux.json.
func (p *metaStore) loadModel(st *Store, name string) *Model {
	var s savedModel
	if p.dir == "" || !p.read(p.modelPath(st, name), &s) || s.Name != name {
		return nil
	}
	m := &Model{Store: st, Name: name, Files: s.Files, Problems: s.Problems, Importable: s.Importable, AuxUnknown: s.AuxUnknown, Fetched: s.Fetched}
	if f, ok := m.File(digits.InfoFile); ok && f.Kind == KindData {
		m.Info, _ = digits.ParseInfo(f.Data)
	}
	if f, ok := m.File(digits.AuxFile); ok && f.Kind == KindData {
		m.Aux, _ = digits.ParseAux(f.Data)
	}
	return m
}
