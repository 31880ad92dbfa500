package digitsupload

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

// Defaults of Config.
const (
	DefaultAnswerTimeout = 10 * time.Minute
	DefaultStallTimeout  = time.Minute
	listTimeout          = 30 * time.Second // a GET of /completed_jobs.json
)

// Config says which DIGITS to talk to, and how.
type Config struct {
	// URL is DIGITS' base URL (http or https, with its URL prefix if any).
	// user:password in it is sent as basic auth, to that origin only.
	URL string
	// User is sent as the username cookie; "" sends none (the job then
	// has no user, and any logged-in user may delete it).
	User string
	// RootCAs, if set, replaces the system's CAs (a private CA).
	RootCAs   *x509.CertPool
	UserAgent string
	// AnswerTimeout bounds DIGITS' answer once the body is sent: it
	// answers when the job has finished (default 10m).
	AnswerTimeout time.Duration
	// StallTimeout gives up when DIGITS accepts no byte of the body for
	// this long (default 1m).
	StallTimeout time.Duration
	// Transport replaces the store client's transport (proxies from the
	// environment, TLS verified with RootCAs); for tests.
	Transport http.RoundTripper
}

// Uploader sends models to one DIGITS.
type Uploader struct {
	cfg  Config
	base *url.URL // without credentials, path ending in "/"
	auth *url.Userinfo
	hc   *http.Client
}

// validUser is DIGITS' own rule for a login name (utils/auth.py): a job
// whose user could not log in could not be deleted by anyone.
var validUser = regexp.MustCompile(`^[a-z][a-z0-9._-]*$`)

// New checks cfg and returns an Uploader.
func New(cfg Config) (*Uploader, error) {
	u, err := remote.ParseBaseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("DIGITS URL: %w", err)
	}
	if cfg.User != "" && !validUser.MatchString(cfg.User) {
		return nil, fmt.Errorf("DIGITS user %q: DIGITS' login takes lower-case letters, digits, '.', '-' and '_', starting with a letter", cfg.User)
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = DefaultAnswerTimeout
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "modelstorefs"
	}
	rt := cfg.Transport
	if rt == nil {
		rt = remote.NewTransport(remote.Options{RootCAs: cfg.RootCAs, HeaderTimeout: cfg.AnswerTimeout})
	}
	up := &Uploader{cfg: cfg, base: u, auth: u.User}
	up.base.User = nil
	// Redirects are not followed: the body cannot be sent twice, and a
	// redirect of this POST means a login page or another address.
	up.hc = &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return up, nil
}

// URL is DIGITS' base URL, without credentials.
func (u *Uploader) URL() string { return u.base.String() }

// JobURL is the page of job id.
func (u *Uploader) JobURL(id string) string { return u.endpoint("jobs/" + url.PathEscape(id)) }

func (u *Uploader) endpoint(path string) string { return u.base.String() + path }

// Options tune one upload.
type Options struct {
	Name string // job name; "" keeps info.json "name"
	// Progress, if set, is called as DIGITS takes the body (done of total).
	Progress func(done, total int64)
}

// Result is the job DIGITS made.
type Result struct {
	ID, Name string
	Status   string // as /completed_jobs.json lists it: "Done", "Error", ...
	Bytes    int64  // body bytes sent
}

// ErrNotImportable: the model is not sent, by the verdict the mount, ls
// and the jobs-dir import share.
var ErrNotImportable = errors.New("cannot be imported")

// ErrNotDone: DIGITS made the job, but does not list it as Done.
var ErrNotDone = errors.New("the job is not Done")

// Upload sends model of store st to DIGITS and returns the job it made.
// With an error, Result is set only when DIGITS made a job (ErrNotDone).
func (u *Uploader) Upload(ctx context.Context, cat *cache.Catalog, st *cache.Store, model string, opt Options) (*Result, error) {
	m, err := cat.Sized(ctx, st, model) // the body's length, and the verdict an empty file decides
	if err != nil {
		return nil, err
	}
	if !m.Importable {
		return nil, fmt.Errorf("%w (not sent): %s", ErrNotImportable, strings.Join(m.ProblemLines(), "; "))
	}
	a, err := planArchive(m, opt.Name)
	if err != nil {
		return nil, err
	}
	if err := a.confirm(ctx, cat); err != nil {
		return nil, err
	}
	b, err := newBody(a, model)
	if err != nil {
		return nil, err
	}
	before, err := u.jobs(ctx)
	if err != nil {
		return nil, err
	}
	if err := u.send(ctx, b, cat.Content(), opt.Progress); err != nil {
		return nil, err
	}
	after, err := u.jobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("DIGITS took the model, then: %w", err)
	}
	j, ok := newJob(before, after, a.jobName, u.cfg.User)
	if !ok {
		return nil, fmt.Errorf("DIGITS answered success but /completed_jobs.json lists no new job named %q", a.jobName)
	}
	res := &Result{ID: j.ID, Name: j.Name, Status: j.Status, Bytes: b.length()}
	if j.Status != "Done" {
		return res, fmt.Errorf("DIGITS made job %s, and lists it as %s: %w (its page says why: %s)",
			j.ID, digits.CleanLine(j.Status), ErrNotDone, u.JobURL(j.ID))
	}
	return res, nil
}

// errStalled cancels an upload DIGITS stopped reading.
var errStalled = errors.New("DIGITS stopped reading the upload")

// send POSTs the body, streamed through a pipe with its exact length, and
// checks DIGITS' answer.
func (u *Uploader) send(ctx context.Context, b *body, content cache.Content, progress func(done, total int64)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	pr, pw := io.Pipe()
	total := b.length()
	mw := newMeter(pw, total, u.cfg.StallTimeout, func() { cancel(errStalled) }, progress)
	var wg sync.WaitGroup
	var werr error // the body's own failure (the store), once wg is done
	defer wg.Wait()
	defer cancel(nil)
	defer pr.Close() // stops the writer if DIGITS answered early
	wg.Go(func() {
		werr = b.writeTo(ctx, mw, content)
		pw.CloseWithError(werr)
	})

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.endpoint("pretrained_models/upload_archive"), pr)
	if err != nil {
		return err
	}
	req.ContentLength = total
	req.Header.Set("Content-Type", b.contentType)
	u.prepare(req)
	resp, err := u.hc.Do(req)
	if err != nil {
		pr.Close()
		wg.Wait()
		return u.sendError(ctx, err, werr)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("DIGITS' answer to the upload: %w", err)
	}
	return checkAnswer(resp, answer)
}

// sendError says why a POST failed: the store, DIGITS stalling or
// answering late, or the connection.
func (u *Uploader) sendError(ctx context.Context, err, werr error) error {
	var ne net.Error
	switch {
	case werr != nil && !errors.Is(werr, io.ErrClosedPipe) && !errors.Is(werr, context.Canceled):
		return fmt.Errorf("reading the model from the store: %w", werr)
	case errors.Is(context.Cause(ctx), errStalled):
		return fmt.Errorf("%w: no byte taken for %s", errStalled, u.cfg.StallTimeout)
	case ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("DIGITS did not answer within %s of the upload (it answers once the job has finished; the job may still appear): %w",
			u.cfg.AnswerTimeout, err)
	}
	return fmt.Errorf("uploading to DIGITS: %w", err)
}

// prepare adds what every request to DIGITS carries.
func (u *Uploader) prepare(req *http.Request) {
	req.Header.Set("Accept", "application/json") // DIGITS' errors come as JSON then
	req.Header.Set("User-Agent", u.cfg.UserAgent)
	if u.cfg.User != "" {
		req.AddCookie(&http.Cookie{Name: "username", Value: u.cfg.User})
	}
	if u.auth != nil {
		pw, _ := u.auth.Password()
		req.SetBasicAuth(u.auth.Username(), pw)
	}
}

// meter passes the body to the pipe in small writes, reports progress and
// arms a stall timer while DIGITS is expected to read.
type meter struct {
	w           io.Writer
	done, total int64
	stall       time.Duration
	timer       *time.Timer
	progress    func(done, total int64)
}

// meterChunk bounds one write, so progress and the stall timer see
// DIGITS reading.
const meterChunk = 64 << 10

func newMeter(w io.Writer, total int64, stall time.Duration, onStall func(), progress func(done, total int64)) *meter {
	m := &meter{w: w, total: total, stall: stall, timer: time.AfterFunc(stall, onStall), progress: progress}
	m.timer.Stop()
	m.report()
	return m
}

func (m *meter) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		chunk := p[:min(len(p), meterChunk)]
		m.timer.Reset(m.stall)
		k, err := m.w.Write(chunk)
		m.timer.Stop()
		n += k
		m.done += int64(k)
		m.report()
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func (m *meter) report() {
	if m.progress != nil {
		m.progress(m.done, m.total)
	}
}
