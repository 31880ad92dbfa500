package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// MaxSmallFile bounds info.json and aux.json; anything larger is refused.
const MaxSmallFile = 4 << 20

// statParallel bounds the HEAD requests of one model.
const statParallel = 8

// Names in a model folder that modelstorefs produces itself.
const (
	InfoName   = "info.json"
	AuxName    = "aux.json"
	ErrorName  = "error.txt"
	PickleName = "status.pickle"
)

// candidate is a file the model folder should show if the store has it.
type candidate struct {
	jobName, remoteName string
	required            bool
	role                string // for messages: "snapshot file", "logo", ...
}

// resolveModel fetches a model's info.json and aux.json, works out its
// folder (DIGITS job names, remote-name symlinks, extras) and learns the
// size and validators of every file with bounded-parallel HEADs. prev, the
// last good result, supplies validators for conditional requests.
func (c *Catalog) resolveModel(ctx context.Context, st *Store, name string, prev *Model) (*Model, error) {
	m := &Model{Store: st, Name: name, Fetched: time.Now()}
	var blockers, notes []string

	// info.json and aux.json in parallel: one round trip, not two.
	var auxFile *File
	var auxErr error
	auxDone := make(chan struct{})
	go func() {
		defer close(auxDone)
		auxFile, auxErr = c.smallFile(ctx, st, name, AuxName, prev)
	}()
	infoFile, err := c.smallFile(ctx, st, name, InfoName, prev)
	<-auxDone
	switch {
	case errors.Is(err, remote.ErrNotFound):
		blockers = append(blockers, "the store has no info.json for this model")
	case err != nil:
		return nil, err
	}
	if auxErr != nil && !errors.Is(auxErr, remote.ErrNotFound) {
		return nil, auxErr
	}

	var cands []candidate
	var layout []digits.JobFile
	if infoFile != nil {
		m.Files = append(m.Files, *infoFile)
		info, err := digits.ParseInfo(infoFile.Data)
		m.Info = info
		if err != nil {
			blockers = append(blockers, importProblem(err))
		} else {
			var dropped []string
			layout, dropped, err = digits.Layout(info)
			notes = append(notes, dropped...)
			if err != nil {
				blockers = append(blockers, importProblem(err))
				layout = nil
			}
			for _, f := range layout {
				cands = append(cands, candidate{f.JobName, f.RemoteName, f.Required, "file " + f.RemoteName})
			}
		}
	}
	if auxFile != nil {
		m.Files = append(m.Files, *auxFile)
		aux, err := digits.ParseAux(auxFile.Data)
		if err != nil {
			notes = append(notes, "aux.json: "+err.Error())
		} else {
			m.Aux = aux
			if aux.License != "" {
				cands = append(cands, candidate{"license.txt", "license.txt", false, "license.txt"})
			}
			if aux.Logo != "" {
				if err := digits.SafeRelName(aux.Logo); err != nil {
					notes = append(notes, fmt.Sprintf("aux.json logo %q refused: %v", aux.Logo, err))
				} else {
					cands = append(cands, candidate{aux.Logo, aux.Logo, false, "logo"})
				}
			}
		}
	}

	metas, statNotes, err := c.statAll(ctx, st, name, cands, prev)
	if err != nil {
		return nil, err
	}
	notes = append(notes, statNotes...)

	taken := map[string]bool{InfoName: true, AuxName: true, ErrorName: true, PickleName: true}
	var present []digits.JobFile
	for _, cd := range cands {
		meta, ok := metas[cd.remoteName]
		if !ok {
			if cd.required {
				blockers = append(blockers, fmt.Sprintf("%s is not on the store (needed as %s)", cd.remoteName, cd.jobName))
			}
			continue
		}
		if taken[cd.jobName] {
			notes = append(notes, fmt.Sprintf("%s %q left out: the name is already used in this folder", cd.role, cd.jobName))
			continue
		}
		taken[cd.jobName] = true
		m.Files = append(m.Files, File{Name: cd.jobName, Kind: KindRemote, Remote: cd.remoteName, Meta: meta, ModTime: meta.ModTime()})
		for _, f := range layout {
			if f.JobName == cd.jobName {
				present = append(present, f)
			}
		}
	}
	// Remote names kept as relative symlinks, so cp -r copies each byte once.
	for _, cd := range cands {
		if _, ok := metas[cd.remoteName]; !ok || cd.remoteName == cd.jobName || taken[cd.remoteName] {
			continue
		}
		if f, ok := fileNamed(m.Files, cd.jobName); !ok || f.Remote != cd.remoteName {
			continue
		}
		taken[cd.remoteName] = true
		m.Files = append(m.Files, File{Name: cd.remoteName, Kind: KindSymlink, Target: cd.jobName, ModTime: metas[cd.remoteName].ModTime()})
	}

	t0 := modelTime(m, infoFile)
	m.Importable = len(blockers) == 0 && m.Info != nil && layout != nil
	if m.Importable {
		job := digits.NewJob(name, m.Info, present, c.cfg.JobsDir, t0)
		pickle, err := digits.StatusPickle(job)
		if err != nil {
			blockers = append(blockers, "status.pickle: "+err.Error())
			m.Importable = false
		} else {
			m.Files = append(m.Files, File{Name: PickleName, Kind: KindData, Data: pickle, ModTime: t0})
		}
	}
	m.Problems = append(blockers, notes...)
	if len(m.Problems) > 0 {
		m.Files = append(m.Files, File{Name: ErrorName, Kind: KindData, Data: errorText(m, blockers, notes), ModTime: t0})
		if len(blockers) > 0 {
			c.log.Warn("model cannot be imported", zap.String("store", st.Name), zap.String("model", name), zap.Strings("why", blockers))
		}
		for _, n := range notes {
			c.log.Warn("model file left out", zap.String("store", st.Name), zap.String("model", name), zap.String("why", n))
		}
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	return m, nil
}

// importProblem words a digits error for error.txt: the messages already
// name info.json and the key, so the "not importable" prefix goes.
func importProblem(err error) string {
	return strings.TrimPrefix(err.Error(), digits.ErrNotImportable.Error()+": ")
}

func fileNamed(files []File, name string) (*File, bool) {
	for i := range files {
		if files[i].Name == name {
			return &files[i], true
		}
	}
	return nil, false
}

// modelTime is the deterministic time of a model's synthesized files: the
// info.json "creation time", else info.json's Last-Modified, else the epoch.
func modelTime(m *Model, infoFile *File) time.Time {
	if m.Info != nil && !m.Info.CreationTime.IsZero() {
		return m.Info.CreationTime
	}
	if infoFile != nil && !infoFile.ModTime.IsZero() {
		return infoFile.ModTime
	}
	return time.Unix(0, 0).UTC()
}

func errorText(m *Model, blockers, notes []string) []byte {
	var b strings.Builder
	if len(blockers) > 0 {
		fmt.Fprintf(&b, "%s cannot be imported into DIGITS:\n", m.Name)
		for _, p := range blockers {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, "%s: files left out of this folder:\n", m.Name)
		for _, p := range notes {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return []byte(b.String())
}

// smallFile GETs info.json or aux.json, conditionally when prev has it.
func (c *Catalog) smallFile(ctx context.Context, st *Store, model, name string, prev *Model) (*File, error) {
	var prevFile *File
	var prevMeta *remote.Meta
	if prev != nil {
		if f, ok := prev.File(name); ok && f.Kind == KindData {
			prevFile, prevMeta = f, &f.Meta
		}
	}
	data, meta, err := st.Remote.Fetch(ctx, prevMeta, MaxSmallFile, model, name)
	if errors.Is(err, remote.ErrNotModified) {
		return prevFile, nil
	}
	if err != nil {
		return nil, err
	}
	return &File{Name: name, Kind: KindData, Data: data, Meta: meta, ModTime: meta.ModTime()}, nil
}

// statAll learns size and validators of every candidate's remote file.
// Files the store does not have are absent from the result; a failure other
// than "not there" fails the whole model (it is retried later).
func (c *Catalog) statAll(ctx context.Context, st *Store, model string, cands []candidate, prev *Model) (map[string]remote.Meta, []string, error) {
	var (
		mu       sync.Mutex
		metas    = map[string]remote.Meta{}
		notes    []string
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, statParallel)
		seen     = map[string]bool{}
	)
	for _, cd := range cands {
		if seen[cd.remoteName] {
			continue
		}
		seen[cd.remoteName] = true
		wg.Add(1)
		sem <- struct{}{}
		go func(rn string) {
			defer wg.Done()
			defer func() { <-sem }()
			meta, err := c.statFile(ctx, st, model, rn, prev)
			mu.Lock()
			defer mu.Unlock()
			var se *remote.StatusError
			switch {
			case err == nil:
				metas[rn] = meta
			case errors.Is(err, remote.ErrNotFound):
			case errors.Is(err, ErrUnsizedTooLarge):
				notes = append(notes, fmt.Sprintf("%s: %v", rn, ErrUnsizedTooLarge))
			case errors.As(err, &se) && se.Code >= 400 && se.Code < 500:
				notes = append(notes, fmt.Sprintf("%s: the store answered HTTP %d %s", rn, se.Code, http.StatusText(se.Code)))
			default:
				if firstErr == nil {
					firstErr = err
				}
			}
		}(cd.remoteName)
	}
	wg.Wait()
	sort.Strings(notes)
	return metas, notes, firstErr
}

func (c *Catalog) statFile(ctx context.Context, st *Store, model, rn string, prev *Model) (remote.Meta, error) {
	var prevMeta *remote.Meta
	if f := prev.remoteFile(rn); f != nil {
		prevMeta = &f.Meta
	}
	meta, err := st.Remote.Stat(ctx, prevMeta, model, rn)
	if errors.Is(err, remote.ErrNotModified) {
		return meta, nil
	}
	if err != nil {
		return meta, err
	}
	if meta.Size < 0 {
		// No length in the headers and no Range (chunked answers): fetch
		// the file into the content cache, within its bounds, to learn its
		// true size before anyone stats it.
		h, err := c.content.Open(ctx, Ref{Store: st, Model: model, Name: rn, Meta: meta})
		if err != nil {
			return meta, err
		}
		meta.Size = h.Size()
		h.Close()
	}
	return meta, nil
}
