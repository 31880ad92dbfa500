package digitsupload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/modelstorefs/modelstorefs/digits"
)

// maxAnswer bounds what is read of an answer: DIGITS' are a few hundred
// bytes, a listing of many jobs some more.
const maxAnswer = 4 << 20

// RefusedError is DIGITS saying no to an upload, with its reason.
type RefusedError struct {
	Code   int
	Reason string // one line
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("DIGITS refused the upload (HTTP %d): %s", e.Code, e.Reason)
}

// checkAnswer reads upload_archive's answer: 200 {"status": "success"},
// else the reason DIGITS gives.
func checkAnswer(resp *http.Response, body []byte) error {
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 {
		return fmt.Errorf("DIGITS answered the upload with a redirect (HTTP %d) to %q: a login page or another address; give the address DIGITS answers at",
			resp.StatusCode, digits.CleanLine(loc))
	}
	if resp.StatusCode != http.StatusOK {
		return &RefusedError{Code: resp.StatusCode, Reason: reasonOf(body, resp.StatusCode)}
	}
	var ok struct {
		Status *string `json:"status"`
	}
	if json.Unmarshal(body, &ok) != nil || ok.Status == nil {
		return fmt.Errorf(`DIGITS answered the upload with HTTP 200 but not with {"status": "success"}: %s`, reasonOf(body, resp.StatusCode))
	}
	if *ok.Status != "success" {
		return &RefusedError{Code: resp.StatusCode, Reason: digits.CleanLine(*ok.Status)}
	}
	return nil
}

var (
	htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlTag   = regexp.MustCompile(`(?s)<[^>]*>`)
	spaces    = regexp.MustCompile(`\s+`)
)

// maxReason bounds a reason, for one line.
const maxReason = 300

// reasonOf makes one line of an error answer: DIGITS' JSON {"status":
// reason}, its error handler's {"error": {"message", "description"}}, or
// the text of a page (a proxy's, or DIGITS' HTML error page).
func reasonOf(body []byte, code int) string {
	var j struct {
		Status *string `json:"status"`
		Error  *struct {
			Message     string `json:"message"`
			Description string `json:"description"`
		} `json:"error"`
	}
	var reason string
	switch {
	case json.Unmarshal(body, &j) == nil && j.Status != nil:
		reason = *j.Status
	case j.Error != nil:
		reason = j.Error.Message
		if d := j.Error.Description; d != "" && !strings.Contains(reason, d) {
			reason = strings.TrimSuffix(strings.TrimSpace(reason), ".") + ": " + d
		}
	case bytes.Contains(bytes.ToLower(body), []byte("<html")) || bytes.Contains(bytes.ToLower(body), []byte("<title")):
		text := htmlTag.ReplaceAllString(string(body), " ")
		if m := htmlTitle.FindSubmatch(body); m != nil {
			// The title often repeats in the page; keep what follows it.
			title := strings.TrimSpace(html.UnescapeString(string(m[1])))
			text = strings.Replace(htmlTag.ReplaceAllString(htmlTitle.ReplaceAllString(string(body), " "), " "), title, "", 1)
			text = title + ": " + text
		}
		reason = html.UnescapeString(text)
	default:
		reason = string(body)
	}
	reason = strings.TrimSpace(spaces.ReplaceAllString(reason, " "))
	reason = strings.TrimSuffix(reason, ":")
	if reason == "" {
		reason = http.StatusText(code)
	}
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "") + "..."
	}
	return digits.CleanLine(reason)
}

// listedJob is a job as /completed_jobs.json lists it.
type listedJob struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Status    string  `json:"status"`
	Username  *string `json:"username"`
	Submitted float64 `json:"submitted"`
}

// jobList is the part of /completed_jobs.json read here; a Pretrained
// Model job is listed there once it is no longer running.
type jobList struct {
	Pretrained []listedJob `json:"pretrained_models"`
	Running    []listedJob `json:"running"`
}

func (l *jobList) all() []listedJob {
	return append(append([]listedJob(nil), l.Pretrained...), l.Running...)
}

// jobs fetches /completed_jobs.json.
func (u *Uploader) jobs(ctx context.Context) (*jobList, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	where := "DIGITS at " + u.URL()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.endpoint("completed_jobs.json"), nil)
	if err != nil {
		return nil, err
	}
	u.prepare(req)
	resp, err := u.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s: reading /completed_jobs.json: %w", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /completed_jobs.json: HTTP %d: %s (is this the address of a DIGITS 6 server?)",
			where, resp.StatusCode, reasonOf(data, resp.StatusCode))
	}
	var l jobList
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s: /completed_jobs.json is not DIGITS' job list: %w", where, err)
	}
	return &l, nil
}

// newJob finds the job an upload made: listed after and not before, of
// that name and user (DIGITS' answer names no job); the latest if several.
func newJob(before, after *jobList, name, user string) (listedJob, bool) {
	seen := map[string]bool{}
	for _, j := range before.all() {
		seen[j.ID] = true
	}
	var found listedJob
	ok := false
	for _, j := range after.all() {
		if seen[j.ID] || j.Name != name {
			continue
		}
		if j.Username != nil && *j.Username != user || j.Username == nil && user != "" {
			continue
		}
		if !ok || j.Submitted > found.Submitted {
			found, ok = j, true
		}
	}
	return found, ok
}
