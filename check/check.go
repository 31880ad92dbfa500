// Package check validates a DIGITS Model Store the way DIGITS and the
// modelstorefs mount read it, and reports one problem per line.
//
// A store is an http(s) URL (Store) or a directory (Dir), served
// internally on 127.0.0.1 by the handler the caller gives, serve.Handler
// in the command, so that it is judged exactly as `modelstorefs serve`
// would publish it. Discovery, fetches and size checks go through the mount's
// own client (package remote) and its parsers (package digits), so a model
// judged importable here is one the mount shows with a status.pickle.
//
// Whether a model can be imported is digits.Judge's verdict, the one the
// mount (status.pickle), ls and import follow. Severity "error" on a model
// means that verdict is no; on the store as a whole it means the store
// cannot be read. "digits-error", a store-level severity of its own, means
// DIGITS' own store page fails on the store while modelstorefs reads it (a
// master.json without "msg", an aux.json that is not JSON: the model itself
// still imports). "warning" is everything
// else worth fixing: optional files named but absent or empty, a license
// without license.txt, a missing logo, an aux.json that could not be read
// for now, master.json gaps.
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

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// Severity of a Problem.
type Severity string

const (
	// Error: the model cannot be imported (or the store cannot be listed).
	Error Severity = "error"
	// Warning: the model can be imported, but something is missing or odd.
	Warning Severity = "warning"
	// DIGITSError: a store-level defect that makes DIGITS' own store page
	// fail (HTTP 500, no model listed), while modelstorefs reads the store
	// and its models keep their own verdict (a master.json without "msg",
	// an aux.json that is not JSON).
	DIGITSError Severity = "digits-error"
)

// Problem is one finding.
type Problem struct {
	Model    string // model folder; "" for the store as a whole
	Severity Severity
	Message  string
}

// ModelResult is the verdict on one model of the listing.
type ModelResult struct {
	Name string
	// Importable is digits.Judge's verdict, the one the mount, ls and
	// import follow: the model has no problem of severity Error.
	Importable bool
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
// imported, a store that cannot be read, or a store DIGITS' own page
// cannot list.
func (r Report) Failed() bool {
	for _, p := range r.Problems {
		if p.Severity == Error || p.Severity == DIGITSError {
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
		digitsErrors := ""
		if n := r.Count(DIGITSError); n > 0 {
			digitsErrors = ", " + plural(n, "digits-error")
		}
		s += fmt.Sprintf(" (%s%s, %s)", plural(r.Count(Error), "error"), digitsErrors, plural(r.Count(Warning), "warning"))
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

// oneLine makes a message one harmless line: messages quote store text.
func oneLine(s string) string { return digits.CleanLine(s) }

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
	sums     bool // verify SHA256SUMS
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

// Store checks the store at the http(s) URL target. The error is for a
// store that cannot be checked at all (bad URL, store unreachable, ctx
// done); everything else is in the Report.
func Store(ctx context.Context, target string, opts ...Option) (Report, error) {
	if !IsURL(target) {
		return Report{}, fmt.Errorf("check %s: not an http(s) URL", target)
	}
	c := newChecker(opts)
	st, err := remote.NewStore(target, c.cfg.ropts)
	if err != nil {
		return Report{}, err
	}
	c.st = st
	c.rep.Target = st.Base().String()
	if err := c.run(ctx); err != nil {
		return Report{}, err
	}
	return c.rep, nil
}

// Dir checks the store directory dir as h publishes it over HTTP (h is
// serve.Handler(dir) in the command). folders are dir's model folders as
// its generated master.json would list them (serve.ModelFolders), compared
// with the master.json it has. The error is for a store that cannot be
// checked at all.
func Dir(ctx context.Context, dir string, h http.Handler, folders []string, opts ...Option) (Report, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Report{}, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Report{}, fmt.Errorf("check %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return Report{}, fmt.Errorf("check %s: neither a directory nor an http(s) URL", dir)
	}
	c := newChecker(opts)
	base, stop, err := serveDir(abs, h, c.cfg.log.Named("serve"))
	if err != nil {
		return Report{}, err
	}
	defer stop()
	if c.st, err = remote.NewStore(base, c.cfg.ropts); err != nil {
		return Report{}, err
	}
	c.dir, c.internal, c.folders = abs, base, folders
	c.rep.Target = abs
	if err := c.run(ctx); err != nil {
		return Report{}, err
	}
	return c.rep, nil
}

func newChecker(opts []Option) *checker {
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
	return &checker{cfg: cfg}
}

// serveDir serves h on a free 127.0.0.1 port until stop.
func serveDir(dir string, h http.Handler, log *zap.Logger) (base string, stop func(), err error) {
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
	dir      string   // the directory, when the target is one
	folders  []string // its model folders
	internal string   // its internal base URL, replaced by dir in messages
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

	type result struct {
		probs, store []Problem
		ok           bool
	}
	results := make([]result, len(listing.Models))
	sem := make(chan struct{}, c.cfg.parallel)
	var wg sync.WaitGroup
	for i, name := range listing.Models {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := &results[i]
			r.probs, r.store, r.ok = c.checkModel(ctx, name)
		}()
	}
	wg.Wait()
	sums := c.checkSums(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check %s: %w", c.rep.Target, err)
	}
	// Store-level problems found through models come before the models'.
	for _, r := range results {
		for _, p := range r.store {
			c.store(p.Severity, "%s", p.Message)
		}
	}
	for _, p := range sums.store {
		c.store(p.Severity, "%s", p.Message)
	}
	for i, name := range listing.Models {
		for _, p := range results[i].probs {
			p.Message = c.clean(p.Message)
			c.rep.Problems = append(c.rep.Problems, p)
		}
		c.rep.Problems = append(c.rep.Problems, sums.models[name]...)
		c.rep.Models = append(c.rep.Models, ModelResult{Name: name, Importable: results[i].ok && !sums.failed(name)})
	}
	c.rep.Problems = append(c.rep.Problems, sums.unlisted(listing.Models)...)
	return nil
}

// checkMaster judges master.json as DIGITS reads it: when the store has
// one (HTTP 200), DIGITS json.loads it and needs both "msg" and
// "children"; anything less fails its whole store page. modelstorefs is
// more lenient (a missing "msg" is fine, an unusable file means the
// listing), which is why these are errors only for DIGITS' sake.
func (c *checker) checkMaster(ctx context.Context, listing *remote.Listing) {
	body, _, err := c.st.Fetch(ctx, nil, remote.MaxMasterJSON, digits.MasterFile)
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
		c.store(DIGITSError, "master.json %s: DIGITS cannot list this store (HTTP 500); modelstorefs falls back to the directory listing", why)
		return
	}
	if _, ok := m["msg"]; !ok {
		c.store(DIGITSError, `master.json has no "msg": DIGITS cannot list this store (KeyError, HTTP 500)`)
	}
	var children []json.RawMessage
	if raw, ok := m["children"]; !ok {
		c.store(DIGITSError, `master.json has no "children": DIGITS cannot list this store (KeyError, HTTP 500); modelstorefs falls back to the directory listing`)
	} else if err := json.Unmarshal(raw, &children); err != nil || children == nil {
		c.store(DIGITSError, `master.json "children" is not a list: DIGITS cannot list this store; modelstorefs falls back to the directory listing`)
	}

	if c.dir == "" {
		return
	}
	// A directory: compare with its model folders.
	if _, err := os.Lstat(filepath.Join(c.dir, "master.json")); errors.Is(err, os.ErrNotExist) {
		c.store(Warning, "no master.json in the directory: `modelstorefs serve` generates one, but other servers (python -m http.server) leave DIGITS and modelstorefs to read the directory listing")
		return
	}
	for _, f := range c.folders {
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
	store []Problem // store-level problems found through this model
	stats map[string]fileState
}

// fileState is what the store says about one file of a model.
type fileState struct {
	present, empty bool
	err            error // neither present nor absent: the answer failed
}

// answer fetches info.json or aux.json as the mount does.
func (m *modelCheck) answer(ctx context.Context, file string) digits.Answer {
	data, _, err := m.c.st.Fetch(ctx, nil, digits.MaxSmallFile, m.name, file)
	switch {
	case errors.Is(err, remote.ErrNotFound):
		return digits.Answer{}
	case err != nil:
		return digits.Answer{Err: err}
	}
	return digits.Answer{Found: true, Data: data, Size: int64(len(data))}
}

const leftOutSuffix = ": left out of the folder"

// checkModel asks the store what the mount asks and lets digits.Judge
// decide, so a model is importable here exactly when the mount gives it a
// status.pickle, ls says so and import takes it. The verdict's problems
// are the model's lines; the defects that break DIGITS' own store page
// (an info.json or aux.json that is not JSON) are also reported for the
// store.
func (c *checker) checkModel(ctx context.Context, name string) (probs, store []Problem, importable bool) {
	m := &modelCheck{c: c, name: name, stats: map[string]fileState{}}
	c.cfg.log.Debug("checking model", zap.String("model", name))

	var in digits.Input
	in.Info = m.answer(ctx, digits.InfoFile)
	in.Aux = m.answer(ctx, digits.AuxFile)
	in.Files = map[string]digits.Answer{}
	for _, rn := range digits.Wanted(in.Info, in.Aux) {
		s := m.stat(ctx, rn)
		switch {
		case s.err != nil:
			in.Files[rn] = digits.Answer{Err: errors.New(failure(s.err))}
		case s.empty:
			in.Files[rn] = digits.Answer{Found: true, Size: 0}
		case s.present:
			in.Files[rn] = digits.Answer{Found: true, Size: -1}
		}
	}
	v := digits.Judge(in)
	for _, p := range v.Problems {
		sev := Warning
		if p.Severity == digits.Blocker {
			sev = Error
		}
		switch p.Code {
		case digits.CodeInfoNotJSON:
			m.add(sev, "%s: DIGITS cannot list any model of this store (HTTP 500)", p.Msg)
		case digits.CodeAuxNotJSON:
			m.add(sev, "%s", p.Msg)
			m.store = append(m.store, Problem{Severity: DIGITSError, Message: fmt.Sprintf(
				"model %s: %s: DIGITS' own store page fails on it (HTTP 500) and lists no model of this store; the model itself can be imported (modelstorefs ignores the file)",
				name, strings.TrimSuffix(p.Msg, ": modelstorefs ignores aux.json (license, logo, dataset)"))})
		default:
			msg := p.Msg
			if p.Code == digits.CodeUnsafeName && p.Severity == digits.Warning {
				msg += leftOutSuffix
			}
			m.add(sev, "%s", msg)
		}
	}
	return m.probs, m.store, v.Importable
}

func (m *modelCheck) add(sev Severity, format string, args ...any) {
	m.probs = append(m.probs, Problem{Model: m.name, Severity: sev, Message: fmt.Sprintf(format, args...)})
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
