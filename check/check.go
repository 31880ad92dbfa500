// Package check validates a DIGITS Model Store the way DIGITS and the
// modelstorefs mount read it, and reports one problem per line.
//
// A store is a directory (served internally on 127.0.0.1 by serve.Handler,
// so that it is judged exactly as `modelstorefs serve` would publish it) or
// an http(s) URL. Discovery, fetches and size checks go through the mount's
// own client (package remote) and its parsers (package digits), so a model
// judged importable here is one the mount shows with a status.pickle.
//
// Severity "error" means a model cannot be imported (by the mount, or by
// DIGITS' own store page: some defects, such as an aux.json that is not
// JSON, make DIGITS fail the whole store), or that the store as a whole
// cannot be read by DIGITS. "warning" is everything else worth fixing:
// optional files named but absent or empty, a license without
// license.txt, a missing logo, master.json gaps.
package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/serve"
)

// Severity of a Problem.
type Severity string

const (
	// Error: the model cannot be imported (or the store cannot be listed).
	Error Severity = "error"
	// Warning: the model can be imported, but something is missing or odd.
	Warning Severity = "warning"
)

// Problem is one finding.
type Problem struct {
	Model    string // model folder; "" for the store as a whole
	Severity Severity
	Message  string
}

// ModelResult is the verdict on one model of the listing.
type ModelResult struct {
	Name       string
	Importable bool // no problem of severity Error
}

// Report is the result of checking one store.
type Report struct {
	// Target is what was checked: the absolute directory, or the store's
	// base URL (without credentials).
	Target string
	// Source says where the model list came from: "master.json" or "listing".
	Source string
	// Msg is the store's welcome message.
	Msg string
	// Models are the models of the listing, in store order.
	Models []ModelResult
	// Problems, store-level first, then per model in store order.
	Problems []Problem
}

// Importable counts the models without errors.
func (r Report) Importable() int {
	n := 0
	for _, m := range r.Models {
		if m.Importable {
			n++
		}
	}
	return n
}

// Failed reports whether any problem is an error: a model that cannot be
// imported, or a store DIGITS cannot list.
func (r Report) Failed() bool {
	for _, p := range r.Problems {
		if p.Severity == Error {
			return true
		}
	}
	return false
}

// Count returns how many problems have severity s.
func (r Report) Count(s Severity) int {
	n := 0
	for _, p := range r.Problems {
		if p.Severity == s {
			n++
		}
	}
	return n
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Summary is the last line of the report:
// "4 models, 3 importable, 5 problems (1 error, 4 warnings)".
func (r Report) Summary() string {
	s := fmt.Sprintf("%s, %d importable, %s", plural(len(r.Models), "model"), r.Importable(), plural(len(r.Problems), "problem"))
	if len(r.Problems) > 0 {
		s += fmt.Sprintf(" (%s, %s)", plural(r.Count(Error), "error"), plural(r.Count(Warning), "warning"))
	}
	return s
}

// Line formats one problem: "MODEL: SEVERITY: MESSAGE", with the report's
// target in place of the model for store-level problems.
func (r Report) Line(p Problem) string {
	who := p.Model
	if who == "" {
		who = r.Target
	}
	return fmt.Sprintf("%s: %s: %s", who, p.Severity, oneLine(p.Message))
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// Write prints one line per problem, then the summary line.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	for _, p := range r.Problems {
		b.WriteString(r.Line(p))
		b.WriteByte('\n')
	}
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// String is what Write prints.
func (r Report) String() string {
	var b strings.Builder
	_ = r.Write(&b)
	return b.String()
}

// Option tunes Store.
type Option func(*config)

type config struct {
	ropts    remote.Options
	log      *zap.Logger
	parallel int
}

// WithRemoteOptions sets the HTTP client options (CA certificates,
// timeouts, retries, user agent).
func WithRemoteOptions(o remote.Options) Option { return func(c *config) { c.ropts = o } }

// WithLogger logs progress (debug) and, for a directory, the internal
// server's requests.
func WithLogger(l *zap.Logger) Option { return func(c *config) { c.log = l } }

// WithParallel sets how many models are checked at once (default 8).
func WithParallel(n int) Option { return func(c *config) { c.parallel = n } }

// IsURL reports whether target is to be read as an http(s) URL rather
// than a directory.
func IsURL(target string) bool {
	t := strings.ToLower(strings.TrimSpace(target))
	return strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://")
}

// Store checks the store at target, a directory or an http(s) URL. The
// error is for a store that cannot be checked at all (no such directory,
// bad URL, store unreachable, ctx done); everything else is in the Report.
func Store(ctx context.Context, target string, opts ...Option) (Report, error) {
	cfg := config{parallel: 8}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = zap.NewNop()
	}
	if cfg.parallel < 1 {
		cfg.parallel = 1
	}
	c := &checker{cfg: cfg}

	if IsURL(target) {
		st, err := remote.NewStore(target, cfg.ropts)
		if err != nil {
			return Report{}, err
		}
		c.st = st
		c.rep.Target = st.Base().String()
	} else {
		dir, err := filepath.Abs(target)
		if err != nil {
			return Report{}, err
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return Report{}, fmt.Errorf("check %s: %w", target, err)
		}
		if !fi.IsDir() {
			return Report{}, fmt.Errorf("check %s: neither a directory nor an http(s) URL", target)
		}
		base, stop, err := serveDir(dir, cfg.log.Named("serve"))
		if err != nil {
			return Report{}, err
		}
		defer stop()
		if c.st, err = remote.NewStore(base, cfg.ropts); err != nil {
			return Report{}, err
		}
		c.dir, c.internal = dir, base
		c.rep.Target = dir
	}
	if err := c.run(ctx); err != nil {
		return Report{}, err
	}
	return c.rep, nil
}

// serveDir serves dir on a free 127.0.0.1 port with serve.Handler.
func serveDir(dir string, log *zap.Logger) (base string, stop func(), err error) {
	h, err := serve.Handler(dir, log)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("check %s: serving it: %w", dir, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: zap.NewStdLog(log)}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/", func() { srv.Close(); <-done }, nil
}

type checker struct {
	cfg      config
	st       *remote.Store
	dir      string // the directory, when the target is one
	internal string // its internal base URL, replaced by dir in messages
	rep      Report
}

// store adds a store-level problem.
func (c *checker) store(sev Severity, format string, args ...any) {
	c.rep.Problems = append(c.rep.Problems, Problem{Severity: sev, Message: c.clean(fmt.Sprintf(format, args...))})
}

// clean replaces the internal server's URL by the directory in messages.
func (c *checker) clean(msg string) string {
	if c.internal == "" {
		return msg
	}
	return strings.ReplaceAll(msg, c.internal, c.dir+"/")
}

func (c *checker) run(ctx context.Context) error {
	listing, err := c.st.ListModels(ctx)
	if err != nil {
		return fmt.Errorf("check %s: %s", c.rep.Target, c.clean(err.Error()))
	}
	c.rep.Source, c.rep.Msg = listing.Source, listing.Msg
	c.checkMaster(ctx, listing)
	for _, r := range listing.Rejected {
		c.store(Error, "model %s is refused by modelstorefs (not a usable folder name)", r)
	}
	if len(listing.Models) == 0 {
		c.store(Error, "no models found (%s)", listing.Source)
	}

	results := make([][]Problem, len(listing.Models))
	sem := make(chan struct{}, c.cfg.parallel)
	var wg sync.WaitGroup
	for i, name := range listing.Models {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = c.checkModel(ctx, name)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check %s: %w", c.rep.Target, err)
	}
	for i, name := range listing.Models {
		ok := true
		for _, p := range results[i] {
			if p.Severity == Error {
				ok = false
			}
			p.Message = c.clean(p.Message)
			c.rep.Problems = append(c.rep.Problems, p)
		}
		c.rep.Models = append(c.rep.Models, ModelResult{Name: name, Importable: ok})
	}
	return nil
}

// checkMaster judges master.json as DIGITS reads it: when the store has
// one (HTTP 200), DIGITS json.loads it and needs both "msg" and
// "children"; anything less fails its whole store page. modelstorefs is
// more lenient (a missing "msg" is fine, an unusable file means the
// listing), which is why these are errors only for DIGITS' sake.
func (c *checker) checkMaster(ctx context.Context, listing *remote.Listing) {
	body, _, err := c.st.Fetch(ctx, nil, remote.MaxMasterJSON, "master.json")
	switch {
	case errors.Is(err, remote.ErrNotFound):
		c.store(Warning, "no master.json: the models were found in the directory listing, which DIGITS reads from the link text (the DIGITS documentation asks for a master.json)")
		return
	case err != nil:
		c.store(Warning, "master.json could not be read (%v): the models were found in the %s", err, listing.Source)
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		why := "is not valid JSON"
		if json.Valid(body) {
			why = "is not a JSON object"
		}
		c.store(Error, "master.json %s: DIGITS cannot list this store (HTTP 500); modelstorefs falls back to the directory listing", why)
		return
	}
	if _, ok := m["msg"]; !ok {
		c.store(Error, `master.json has no "msg": DIGITS cannot list this store (KeyError, HTTP 500)`)
	}
	var children []json.RawMessage
	if raw, ok := m["children"]; !ok {
		c.store(Error, `master.json has no "children": DIGITS cannot list this store (KeyError, HTTP 500); modelstorefs falls back to the directory listing`)
	} else if err := json.Unmarshal(raw, &children); err != nil || children == nil {
		c.store(Error, `master.json "children" is not a list: DIGITS cannot list this store; modelstorefs falls back to the directory listing`)
	}

	if c.dir == "" {
		return
	}
	// A directory: compare with its model folders.
	if _, err := os.Lstat(filepath.Join(c.dir, "master.json")); errors.Is(err, os.ErrNotExist) {
		c.store(Warning, "no master.json in the directory: `modelstorefs serve` generates one, but other servers (python -m http.server) leave DIGITS and modelstorefs to read the directory listing")
		return
	}
	gen, err := serve.MasterJSON(c.dir)
	if err != nil {
		return
	}
	var folders struct{ Children []string }
	if json.Unmarshal(gen, &folders) != nil {
		return
	}
	for _, f := range folders.Children {
		if !slices.Contains(listing.Models, f) {
			c.store(Warning, "folder %q has an info.json but master.json does not list it", f)
		}
	}
}

// modelCheck collects the problems of one model.
type modelCheck struct {
	c     *checker
	name  string
	probs []Problem
	stats map[string]fileState
}

func (m *modelCheck) add(sev Severity, format string, args ...any) {
	m.probs = append(m.probs, Problem{Model: m.name, Severity: sev, Message: fmt.Sprintf(format, args...)})
}

// fileState is what the store says about one file of a model.
type fileState struct {
	present, empty bool
	err            error // neither present nor absent: the answer failed
}

// checkModel judges one model as cache.resolveModel does, and also
// reports what the mount silently leaves out.
func (c *checker) checkModel(ctx context.Context, name string) []Problem {
	m := &modelCheck{c: c, name: name, stats: map[string]fileState{}}
	c.cfg.log.Debug("checking model", zap.String("model", name))

	// info.json: required.
	var info *digits.Info
	data, _, err := c.st.Fetch(ctx, nil, cache.MaxSmallFile, name, cache.InfoName)
	switch {
	case errors.Is(err, remote.ErrNotFound):
		m.add(Error, "the store has no info.json for this model")
	case err != nil:
		m.add(Error, "info.json: %v", err)
	default:
		var perr error
		info, perr = digits.ParseInfo(data)
		switch {
		case perr != nil && !json.Valid(data):
			m.add(Error, "%s: DIGITS cannot list any model of this store (HTTP 500)", splitProblems(perr)[0])
		case perr != nil:
			for _, p := range splitProblems(perr) {
				m.add(Error, "%s", p)
			}
		}
		m.checkFramework(data)
		// Layout's verdict counts only when ParseInfo had none (it would
		// repeat the same problems); the files are checked either way.
		files, dropped, lerr := digits.Layout(info)
		if info != nil && perr == nil && lerr != nil {
			for _, p := range splitProblems(lerr) {
				m.add(Error, "%s", p)
			}
		}
		for _, d := range dropped {
			m.add(Warning, "%s: left out of the folder", d)
		}
		if lerr == nil {
			m.checkFiles(ctx, info, files)
		}
	}

	// aux.json: optional.
	data, _, err = c.st.Fetch(ctx, nil, cache.MaxSmallFile, name, cache.AuxName)
	switch {
	case errors.Is(err, remote.ErrNotFound):
	case err != nil:
		// The mount cannot resolve the model while aux.json fails.
		m.add(Error, "aux.json: %v", err)
	default:
		m.checkAux(ctx, data)
	}
	return m.probs
}

// splitProblems turns a digits error ("not importable: A; B") into its
// problems. Every digits problem starts with "info.json " or "framework ",
// so a "; " inside a quoted value does not split it.
func splitProblems(err error) []string {
	msg := strings.TrimPrefix(err.Error(), digits.ErrNotImportable.Error()+": ")
	var out []string
	for _, part := range strings.Split(msg, "; ") {
		if len(out) > 0 && !strings.HasPrefix(part, "info.json ") && !strings.HasPrefix(part, "framework ") {
			out[len(out)-1] += "; " + part
			continue
		}
		out = append(out, part)
	}
	return out
}

// checkFramework warns about a framework DIGITS would keep verbatim: its
// Pretrained Networks tabs compare it with the lowercase id.
func (m *modelCheck) checkFramework(data []byte) {
	var raw struct {
		Framework *string `json:"framework"`
	}
	if json.Unmarshal(data, &raw) != nil || raw.Framework == nil {
		return
	}
	fw := *raw.Framework
	if low := strings.ToLower(strings.TrimSpace(fw)); low != fw && digits.KnownFramework(low) {
		m.add(Warning, `info.json "framework" is %q: DIGITS keeps it as written, so the model would not show under its framework in New Model; write %q`, fw, low)
	}
}

// stat asks the store about one file of the model, once.
func (m *modelCheck) stat(ctx context.Context, remoteName string) fileState {
	if s, ok := m.stats[remoteName]; ok {
		return s
	}
	var s fileState
	meta, err := m.c.st.Stat(ctx, nil, m.name, remoteName)
	switch {
	case errors.Is(err, remote.ErrNotFound):
	case err != nil:
		s.err = err
	case meta.Size == 0:
		s.present, s.empty = true, true
	case meta.Size > 0:
		s.present = true
	default:
		// No length in the headers: read one byte.
		s.present = true
		s.empty, s.err = m.emptyBody(ctx, meta, remoteName)
	}
	m.stats[remoteName] = s
	return s
}

func (m *modelCheck) emptyBody(ctx context.Context, meta remote.Meta, remoteName string) (bool, error) {
	b, err := m.c.st.GetRange(ctx, meta, 0, 1, m.name, remoteName)
	var se *remote.StatusError
	if errors.As(err, &se) && se.Code == http.StatusRequestedRangeNotSatisfiable {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer b.Close()
	var one [1]byte
	n, err := io.ReadFull(b, one[:])
	if n == 1 {
		return false, nil
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return true, nil
	}
	return false, err
}

// failure words a failed answer about a file.
func failure(err error) string {
	var se *remote.StatusError
	if errors.As(err, &se) {
		return fmt.Sprintf("the store answered HTTP %d %s", se.Code, http.StatusText(se.Code))
	}
	return err.Error()
}

// keyOf names the info.json key a job file comes from.
func keyOf(info *digits.Info, f digits.JobFile) string {
	switch f.RemoteName {
	case info.LabelsFile:
		return digits.KeyLabelsFile
	case info.PythonLayerFile:
		return digits.KeyPythonLayerFile
	}
	switch f.JobName {
	case digits.CaffeWeights, digits.TorchWeights:
		return digits.KeySnapshotFile
	case digits.CaffeModelDef, digits.TorchModelDef, digits.TensorflowModelDef:
		return digits.KeyModelFile
	}
	if strings.HasPrefix(f.JobName, digits.TensorflowWeights+".") {
		return digits.KeySnapshotFile
	}
	for _, k := range digits.ExtraKeys {
		if info.Extra[k] == f.RemoteName {
			return k
		}
	}
	return "file"
}

// checkFiles checks every file info.json names: required ones must be on
// the store and non-empty (errors), optional ones should be (warnings).
func (m *modelCheck) checkFiles(ctx context.Context, info *digits.Info, files []digits.JobFile) {
	for _, f := range files {
		key := keyOf(info, f)
		where := fmt.Sprintf("info.json %q", key)
		if f.JobName != f.RemoteName {
			where += ", needed as " + f.JobName
		}
		tfHint := ""
		if info.Framework == digits.Tensorflow && key == digits.KeySnapshotFile {
			tfHint = "; a TensorFlow checkpoint has three parts: " + strings.Join(digits.TensorflowSuffixes, ", ")
		}
		sev := Warning
		if f.Required {
			sev = Error
		}
		s := m.stat(ctx, f.RemoteName)
		switch {
		case s.err != nil:
			m.add(sev, "%s (%s): %s", f.RemoteName, where, failure(s.err))
		case !s.present && f.Required:
			m.add(Error, "%s is not on the store (%s%s)", f.RemoteName, where, tfHint)
		case !s.present:
			m.add(Warning, "%s is not on the store (%s): left out of the folder", f.RemoteName, where)
		case s.empty && f.Required:
			m.add(Error, "%s is empty (%s%s)", f.RemoteName, where, tfHint)
		case s.empty:
			m.add(Warning, "%s is empty (%s)", f.RemoteName, where)
		}
	}
}

// checkAux checks aux.json and what it names: license.txt and the logo,
// which DIGITS' page shows (the browser loads them) and the mount lists.
func (m *modelCheck) checkAux(ctx context.Context, data []byte) {
	aux, err := digits.ParseAux(data)
	if err != nil {
		if !json.Valid(data) {
			m.add(Error, "%v: DIGITS cannot list any model of this store (HTTP 500); modelstorefs ignores the file", err)
		} else {
			m.add(Warning, "%v: modelstorefs ignores aux.json (license, logo, dataset)", err)
		}
		return
	}
	if aux.License != "" {
		s := m.stat(ctx, "license.txt")
		switch {
		case s.err != nil:
			m.add(Warning, "license.txt (aux.json names the license %q): %s", aux.License, failure(s.err))
		case !s.present:
			m.add(Warning, "aux.json names the license %q but license.txt is not on the store", aux.License)
		case s.empty:
			m.add(Warning, "license.txt is empty (aux.json names the license %q)", aux.License)
		}
	}
	if aux.Logo != "" {
		if err := digits.SafeRelName(aux.Logo); err != nil {
			m.add(Warning, "aux.json logo refused: %v", err)
			return
		}
		s := m.stat(ctx, aux.Logo)
		switch {
		case s.err != nil:
			m.add(Warning, "logo %s (aux.json): %s", aux.Logo, failure(s.err))
		case !s.present:
			m.add(Warning, "aux.json names the logo %q but it is not on the store", aux.Logo)
		case s.empty:
			m.add(Warning, "logo %s is empty (aux.json)", aux.Logo)
		}
	}
}
