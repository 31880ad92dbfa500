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

// statParallel bounds the HEAD requests of one model.
const statParallel = 8

// resolveModel fetches a model's info.json and aux.json, asks the store
// about every file they name (size and validators, bounded-parallel HEADs)
// and lets digits.Judge decide the folder and whether DIGITS can import it:
// the one verdict that status.pickle, error.txt, models.tsv, ls, check and
// import all follow. prev, the last good result, supplies validators for
// conditional requests.
func (c *Catalog) resolveModel(ctx context.Context, st *Store, name string, prev *Model) (*Model, error) {
	m := &Model{Store: st, Name: name, Fetched: time.Now()}

	// info.json and aux.json in parallel: one round trip, not two.
	var auxFile *File
	var auxErr error
	auxDone := make(chan struct{})
	go func() {
		defer close(auxDone)
		auxFile, auxErr = c.smallFile(ctx, st, name, digits.AuxFile, prev)
	}()
	infoFile, err := c.smallFile(ctx, st, name, digits.InfoFile, prev)
	<-auxDone
	var in digits.Input
	switch {
	case errors.Is(err, remote.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		in.Info = digits.Answer{Found: true, Data: infoFile.Data, Size: int64(len(infoFile.Data))}
	}
	switch {
	case auxErr == nil:
		in.Aux = digits.Answer{Found: true, Data: auxFile.Data, Size: int64(len(auxFile.Data))}
	case errors.Is(auxErr, remote.ErrNotFound):
	case ctx.Err() != nil:
		return nil, auxErr
	default:
		// aux.json is optional (DIGITS ignores a failed one): the model is
		// shown and importable. Its fields come from the last good aux.json,
		// else they are unknown until it is asked for again; a failure is
		// never taken for "no aux.json".
		if f, ok := prev.dataFile(digits.AuxFile); ok {
			auxFile = f
			in.Aux = digits.Answer{Found: true, Data: f.Data, Size: int64(len(f.Data))}
			c.log.Warn("aux.json failed, using the last good one", zap.String("store", st.Name), zap.String("model", name), zap.Error(auxErr))
		} else {
			in.Aux = digits.Answer{Err: auxErr}
			c.log.Warn("aux.json failed: license, logo and dataset unknown for now", zap.String("store", st.Name), zap.String("model", name),
				zap.Duration("retry_in", c.cfg.NegativeTTL), zap.Error(auxErr))
		}
	}

	metas, answers, err := c.statAll(ctx, st, name, digits.Wanted(in.Info, in.Aux), prev)
	if err != nil {
		return nil, err
	}
	in.Files = answers
	v := digits.Judge(in)
	m.Info, m.Aux, m.AuxUnknown, m.Importable = v.Info, v.Aux, v.AuxUnknown, v.Importable

	for _, e := range v.Entries {
		switch {
		case e.Name == digits.InfoFile:
			m.Files = append(m.Files, *infoFile)
		case e.Name == digits.AuxFile:
			m.Files = append(m.Files, *auxFile)
		case e.Target != "":
			meta := metas[e.Name]
			m.Files = append(m.Files, File{Name: e.Name, Kind: KindSymlink, Target: e.Target, ModTime: meta.ModTime()})
		default:
			meta := metas[e.Remote]
			m.Files = append(m.Files, File{Name: e.Name, Kind: KindRemote, Remote: e.Remote, Meta: meta, ModTime: meta.ModTime()})
		}
	}

	t0 := modelTime(m, infoFile)
	if m.Importable {
		id := digits.JobID(t0, c.jobIDSuffix(st, name))
		job := digits.NewJobIn(id, strings.TrimRight(c.cfg.JobsDir, "/")+"/"+name, m.Info, v.Layout, t0)
		pickle, err := digits.StatusPickle(job)
		if err != nil {
			// Judge accepted the model, so this is a bug of ours: say so.
			v.Problems = append(v.Problems, &digits.Problem{Severity: digits.Blocker, File: digits.StatusFile, Msg: err.Error()})
			m.Importable = false
		} else {
			m.Files = append(m.Files, File{Name: digits.StatusFile, Kind: KindData, Data: pickle, ModTime: t0})
		}
	}
	// error.txt holds the problems of the model as the folder shows it; an
	// optional file the store does not have (an extra info.json names, a
	// logo) is check's business, not worth an error.txt in every copy.
	var shown []*digits.Problem
	for _, p := range v.Problems {
		if p.Severity == digits.Warning && p.Code == digits.CodeMissing {
			c.log.Debug("optional model file not on the store", zap.String("store", st.Name), zap.String("model", name), zap.String("why", p.Msg))
			continue
		}
		shown = append(shown, p)
		m.Problems = append(m.Problems, p.Msg)
	}
	if len(shown) > 0 {
		m.Files = append(m.Files, File{Name: digits.ErrorFile, Kind: KindData, Data: errorText(name, shown), ModTime: t0})
		var blockers []string
		for _, p := range shown {
			switch {
			case p.Severity == digits.Blocker:
				blockers = append(blockers, p.Msg)
			case p.LeftOut:
				c.log.Warn("model file left out", zap.String("store", st.Name), zap.String("model", name), zap.String("why", p.Msg))
			default:
				c.log.Warn("model warning", zap.String("store", st.Name), zap.String("model", name), zap.String("why", p.Msg))
			}
		}
		if len(blockers) > 0 {
			c.log.Warn("model cannot be imported", zap.String("store", st.Name), zap.String("model", name), zap.Strings("why", blockers))
		}
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	return m, nil
}

// dataFile returns the in-memory file called name of a (possibly nil) model.
func (m *Model) dataFile(name string) (*File, bool) {
	if m == nil {
		return nil, false
	}
	f, ok := m.File(name)
	if !ok || f.Kind != KindData {
		return nil, false
	}
	return f, true
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

// errorText is error.txt: why the model cannot be imported, the store
// files the folder leaves out (never one it shows), then other warnings.
// Store text is made harmless (no control characters).
func errorText(model string, problems []*digits.Problem) []byte {
	var blockers, leftOut, other []string
	for _, p := range problems {
		switch {
		case p.Severity == digits.Blocker:
			blockers = append(blockers, p.Msg)
		case p.LeftOut:
			leftOut = append(leftOut, p.Msg)
		default:
			other = append(other, p.Msg)
		}
	}
	var b strings.Builder
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s%s\n", model, title)
		for _, l := range lines {
			fmt.Fprintf(&b, "- %s\n", digits.CleanLine(l))
		}
	}
	section(" cannot be imported into DIGITS:", blockers)
	section(": files left out of this folder:", leftOut)
	section(": warnings:", other)
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
	data, meta, err := st.Remote.Fetch(ctx, prevMeta, digits.MaxSmallFile, model, name)
	if errors.Is(err, remote.ErrNotModified) {
		return prevFile, nil
	}
	if err != nil {
		return nil, err
	}
	// Remote names the store file, for the user.modelstore.* xattrs.
	return &File{Name: name, Kind: KindData, Remote: name, Data: data, Meta: meta, ModTime: meta.ModTime()}, nil
}

// statAll learns size and validators of the named remote files. The
// answers say, per file, whether the store has it and how big it is, or
// that it refused it (HTTP 4xx other than 404); any other failure fails the
// whole model (it is retried later).
func (c *Catalog) statAll(ctx context.Context, st *Store, model string, names []string, prev *Model) (map[string]remote.Meta, map[string]digits.Answer, error) {
	var (
		mu       sync.Mutex
		metas    = map[string]remote.Meta{}
		answers  = map[string]digits.Answer{}
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, statParallel)
	)
	for _, rn := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			meta, err := c.statFile(ctx, st, model, rn, prev)
			mu.Lock()
			defer mu.Unlock()
			var se *remote.StatusError
			switch {
			case err == nil:
				metas[rn] = meta
				answers[rn] = digits.Answer{Found: true, Size: meta.Size}
			case errors.Is(err, remote.ErrNotFound):
			case errors.Is(err, ErrUnsizedTooLarge):
				answers[rn] = digits.Answer{Err: ErrUnsizedTooLarge}
			case errors.As(err, &se) && se.Code >= 400 && se.Code < 500:
				answers[rn] = digits.Answer{Err: fmt.Errorf("the store answered HTTP %d %s", se.Code, http.StatusText(se.Code))}
			default:
				if firstErr == nil {
					firstErr = err
				}
			}
		}()
	}
	wg.Wait()
	return metas, answers, firstErr
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
