package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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

// resolution is what the store said about a model: the answers digits.Judge
// takes, info.json and aux.json as fetched, and what it said of each file
// the verdict may show (size and validators; Size -1 when only presence
// is known). A model is assembled from it, and assembled again once the
// sizes are known (sizeModel).
type resolution struct {
	in                digits.Input
	infoFile, auxFile *File
	metas             map[string]remote.Meta
}

// resolveModel fetches a model's info.json and aux.json, learns what the
// folder holds (master.json "folders", else the folder's listing, else a
// HEAD per file info.json and aux.json name) and lets digits.Judge decide
// the folder and whether DIGITS can import it: the one verdict that
// status.pickle, error.txt, models.tsv, ls, check and import all follow.
// prev, the last good result, supplies validators for conditional
// requests.
//
// It is a pipeline: fetch the small files (and the folder's listing, in
// the same round trip), learn the files they name, judge, then assemble
// the folder (store files and symlinks, status.pickle, error.txt). Sizes
// a listing does not give are left unknown: the verdict then rests on
// presence, and is settled by sizeModel when someone needs them.
func (c *Catalog) resolveModel(ctx context.Context, st *Store, name string, prev *Model, known remote.Folder) (*Model, error) {
	r, folder, err := c.fetchSmallFiles(ctx, st, name, prev, known)
	if err != nil {
		return nil, err
	}
	plan := digits.NewPlan(r.in.Info, r.in.Aux)
	r.metas, r.in.Files, err = c.statAll(ctx, st, name, plan.Wanted(), prev, folder)
	if err != nil {
		return nil, err
	}
	return c.assemble(st, name, r, plan), nil
}

// assemble judges a resolution (with its plan, when made already): the
// model's verdict and problems now, its folder when first asked for.
func (c *Catalog) assemble(st *Store, name string, r *resolution, plan *digits.Plan) *Model {
	if plan == nil {
		plan = digits.NewPlan(r.in.Info, r.in.Aux)
	}
	v := plan.Judge(r.in.Files)
	m := &Model{Store: st, Name: name, Fetched: time.Now(), res: keep(r),
		Info: v.Info, Aux: v.Aux, AuxUnknown: v.AuxUnknown, Importable: v.Importable}
	m.t0 = modelTime(m, r.infoFile)
	if m.Importable {
		if err := c.pickleJob(m, v.Layout).Validate(); err != nil {
			// Judge accepted the model, so this is a bug of ours: say so.
			v.Problems = append(v.Problems, &digits.Problem{Severity: digits.Blocker, File: digits.StatusFile, Msg: err.Error()})
			m.Importable = false
		}
	}
	c.addProblems(m, v)
	m.layout = func() []File { return c.layoutFiles(m) }
	return m
}

// layoutFiles lays out a model's folder from its answers: the store's
// files and symlinks as the verdict shows them, status.pickle when
// importable, error.txt when there are problems to show.
func (c *Catalog) layoutFiles(m *Model) []File {
	r := m.res.resolution()
	v := digits.Judge(r.in)
	files := folderFiles(v, r.metas, r.infoFile, r.auxFile)
	c.withSums(m.Store, m.Name, files)
	if m.Importable {
		files = append(files, c.pickleFile(m, v.Layout))
	}
	if shown := append(slices.Clip(m.shown), c.refusedProblems(m.Store, m.Name)...); len(shown) > 0 {
		files = append(files, File{Name: digits.ErrorFile, Kind: KindData, Data: errorText(m.Name, shown), ModTime: m.t0})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return slices.Clip(files)
}

// fetchSmallFiles fetches info.json and aux.json in parallel (one round
// trip, not two) and says what the store answered, as digits.Judge takes
// it; with the folder's listing in the same round trip when known (what
// master.json said) is nil. A missing info.json is an answer; any other
// failure of it fails the model (it is retried later). aux.json is
// optional: see auxAnswer. It returns what the store says the folder
// holds (nil: it does not say).
func (c *Catalog) fetchSmallFiles(ctx context.Context, st *Store, name string, prev *Model, known remote.Folder) (*resolution, remote.Folder, error) {
	r := &resolution{}
	var (
		auxErr, listErr error
		listed          remote.Folder
		wg              sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.auxFile, auxErr = c.smallFile(ctx, st, name, digits.AuxFile, prev, known)
	}()
	if known == nil && st.folderListings() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			listed, listErr = st.Remote.ListFolder(ctx, name)
		}()
	}
	infoFile, err := c.smallFile(ctx, st, name, digits.InfoFile, prev, known)
	wg.Wait()
	switch {
	case errors.Is(err, remote.ErrNotFound):
	case err != nil:
		return nil, nil, err
	default:
		r.infoFile = infoFile
		r.in.Info = digits.Answer{Found: true, Data: infoFile.Data, Size: int64(len(infoFile.Data))}
	}
	if err := c.auxAnswer(ctx, st, name, r, auxErr, prev); err != nil {
		return nil, nil, err
	}
	if known != nil {
		return r, known, nil
	}
	auxKnown := auxErr == nil || errors.Is(auxErr, remote.ErrNotFound)
	return r, st.trustListing(listed, listErr, r.in, auxKnown), nil
}

// auxAnswer records aux.json's answer. aux.json is optional (DIGITS
// ignores a failed one): the model is shown and importable. Its fields
// come from the last good aux.json, else they are unknown until it is
// asked for again; a failure is never taken for "no aux.json".
func (c *Catalog) auxAnswer(ctx context.Context, st *Store, name string, r *resolution, auxErr error, prev *Model) error {
	switch {
	case auxErr == nil:
		r.in.Aux = digits.Answer{Found: true, Data: r.auxFile.Data, Size: int64(len(r.auxFile.Data))}
	case errors.Is(auxErr, remote.ErrNotFound):
		r.auxFile = nil
	case ctx.Err() != nil:
		return auxErr
	default:
		if f, ok := prev.smallFile(digits.AuxFile); ok {
			r.auxFile = f
			r.in.Aux = digits.Answer{Found: true, Data: f.Data, Size: int64(len(f.Data))}
			c.log.Warn("aux.json failed, using the last good one", zap.String("store", st.Name), zap.String("model", name), zap.Error(auxErr))
		} else {
			r.auxFile = nil
			r.in.Aux = digits.Answer{Err: auxErr}
			c.log.Warn("aux.json failed: license, logo and dataset unknown for now", zap.String("store", st.Name), zap.String("model", name),
				zap.Duration("retry_in", c.cfg.NegativeTTL), zap.Error(auxErr))
		}
	}
	return nil
}

// folderFiles are the folder's entries as the verdict lays them out: the
// fetched info.json and aux.json, symlinks, and the store's files with
// their sizes and validators.
func folderFiles(v *digits.Verdict, metas map[string]remote.Meta, infoFile, auxFile *File) []File {
	files := make([]File, 0, len(v.Entries)+2) // and status.pickle, error.txt
	for _, e := range v.Entries {
		switch {
		case e.Name == digits.InfoFile:
			files = append(files, *infoFile)
		case e.Name == digits.AuxFile:
			files = append(files, *auxFile)
		case e.Target != "":
			meta := metas[e.Name]
			files = append(files, File{Name: e.Name, Kind: KindSymlink, Target: e.Target, ModTime: meta.ModTime()})
		default:
			meta := metas[e.Remote]
			files = append(files, File{Name: e.Name, Kind: KindRemote, Remote: e.Remote, Meta: meta, ModTime: meta.ModTime()})
		}
	}
	return files
}

// pickleJob is the DIGITS job status.pickle describes.
func (c *Catalog) pickleJob(m *Model, layout []digits.JobFile) digits.Job {
	id := digits.JobID(m.t0, c.jobIDSuffix(m.Store, m.Name))
	return digits.NewJobIn(id, strings.TrimRight(c.cfg.JobsDir, "/")+"/"+m.Name, m.Info, layout, m.t0)
}

// pickleFile is the status.pickle that makes an importable folder a
// DIGITS job. Its bytes are made again when read, the same each time, from
// the model (the job's layout judged again): a store may have a hundred
// thousand models, and each would hold its job and pickle.
func (c *Catalog) pickleFile(m *Model, layout []digits.JobFile) File {
	pickle, _ := digits.StatusPickle(c.pickleJob(m, layout)) // validated by assemble
	gen := func() []byte {
		v := digits.Judge(m.res.resolution().in)
		p, _ := digits.StatusPickle(c.pickleJob(m, v.Layout))
		return p
	}
	return File{Name: digits.StatusFile, Kind: KindData, ModTime: m.t0, gen: gen, size: int64(len(pickle))}
}

// addProblems records the problems the model's error.txt shows, and logs
// them; an optional file the store does not have (an extra info.json
// names, a logo) is check's business, not worth an error.txt in every
// copy.
func (c *Catalog) addProblems(m *Model, v *digits.Verdict) {
	log := c.log.With(zap.String("store", m.Store.Name), zap.String("model", m.Name))
	var shown []*digits.Problem
	for _, p := range v.Problems {
		if p.Severity == digits.Warning && p.Code == digits.CodeMissing {
			log.Debug("optional model file not on the store", zap.String("why", p.Msg))
			continue
		}
		shown = append(shown, p)
		m.Problems = append(m.Problems, p.Msg)
	}
	if len(shown) == 0 {
		return
	}
	m.shown = shown
	var blockers []string
	for _, p := range shown {
		switch {
		case p.Severity == digits.Blocker:
			blockers = append(blockers, p.Msg)
		case p.LeftOut:
			log.Warn("model file left out", zap.String("why", p.Msg))
		default:
			log.Warn("model warning", zap.String("why", p.Msg))
		}
	}
	if len(blockers) > 0 {
		log.Warn("model cannot be imported", zap.Strings("why", blockers))
	}
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
// What master.json says of the folder (known) spares the request: a file
// it says is absent is not asked for, one whose validators are those of
// prev's copy is that copy, and one it carries whole is that.
func (c *Catalog) smallFile(ctx context.Context, st *Store, model, name string, prev *Model, known remote.Folder) (*File, error) {
	f, err := c.smallFileAnswer(ctx, st, model, name, prev, known)
	if err == nil {
		err = c.checkSmall(st, model, name, f.Data, f.Meta) // also a kept one: the sums may be newer
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// smallFileAnswer is smallFile before the SHA256SUMS check.
func (c *Catalog) smallFileAnswer(ctx context.Context, st *Store, model, name string, prev *Model, known remote.Folder) (*File, error) {
	var prevFile *File
	var prevMeta *remote.Meta
	if f, ok := prev.smallFile(name); ok {
		prevFile, prevMeta = f, &f.Meta
	}
	if known != nil {
		ff, ok := known.Find(name)
		switch {
		case !ok:
			return nil, fmt.Errorf("%s/%s: %w (the store's master.json says so)", model, name, remote.ErrNotFound)
		case prevFile != nil && sameValidated(ff.Meta, prevFile.Meta):
			return prevFile, nil
		case ff.Data != nil:
			return &File{Name: name, Kind: KindData, Remote: name, Data: ff.Data, Meta: ff.Meta, ModTime: ff.Meta.ModTime()}, nil
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

// sameValidated reports whether two Metas are one version by a validator
// both carry (an ETag, else a Last-Modified), and of one size.
func sameValidated(a, b remote.Meta) bool {
	if a.Size != b.Size {
		return false
	}
	if a.ETag != "" || b.ETag != "" {
		return a.ETag == b.ETag
	}
	return a.LastModified != "" && a.LastModified == b.LastModified
}

// statAll learns size and validators of the named remote files: from what
// the store says the folder holds when it says it (no request; a file it
// does not name is not there), else with a HEAD each. The answers say, per
// file, whether the store has it and how big it is (-1: not said), or
// that it refused it (HTTP 4xx other than 404); any other failure fails
// the whole model (it is retried later).
func (c *Catalog) statAll(ctx context.Context, st *Store, model string, names []string, prev *Model, folder remote.Folder) (map[string]remote.Meta, map[string]digits.Answer, error) {
	metas, answers := map[string]remote.Meta{}, map[string]digits.Answer{}
	var ask []string
	for _, rn := range names {
		if folder == nil {
			ask = append(ask, rn)
			continue
		}
		if meta, ok := folder.File(rn); ok {
			metas[rn] = meta
			answers[rn] = digits.Answer{Found: true, Size: meta.Size}
		}
	}
	err := c.statEach(ctx, st, model, ask, prev, metas, answers)
	return metas, answers, err
}

// statEach asks about each named file with a HEAD (bounded parallel) and
// records the answers.
func (c *Catalog) statEach(ctx context.Context, st *Store, model string, names []string, prev *Model, metas map[string]remote.Meta, answers map[string]digits.Answer) error {
	var (
		mu       sync.Mutex
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
			delete(metas, rn)
			delete(answers, rn)
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
	return firstErr
}

func (c *Catalog) statFile(ctx context.Context, st *Store, model, rn string, prev *Model) (remote.Meta, error) {
	var prevMeta *remote.Meta
	if meta, ok := prev.knownMeta(rn); ok {
		prevMeta = &meta
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
