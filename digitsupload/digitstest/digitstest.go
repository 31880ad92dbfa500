// Package digitstest is a stand-in for a running DIGITS 6, as far as an
// import through POST /pretrained_models/upload_archive goes, written from
// what DIGITS' code does (reference/digests-and-listings.md) and not from
// the client: it parses the multipart body and the tar, checks info.json
// and the files it names as DIGITS' view and upload tasks do, makes a job
// (Done, or Error when a file is missing), answers as DIGITS answers, and
// lists its jobs in /completed_jobs.json. It also records what it was
// sent, for tests to check.
package digitstest

import (
	"archive/tar"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options shape the stand-in's behaviour.
type Options struct {
	// RefuseCode, if set, answers every upload with it and {"status":
	// RefuseReason}, after reading the body (DIGITS reads it first).
	RefuseCode   int
	RefuseReason string
	// Delay is how long the job takes: DIGITS answers after it
	// (job.wait_completion()).
	Delay time.Duration
	// ReadDelay is slept after every 64 KiB read of the body: a slow
	// DIGITS, or a slow link.
	ReadDelay time.Duration
	// StopReadingAfter, if set, stops reading the body after that many
	// bytes, until the client gives up.
	StopReadingAfter int64
	// LoseMember is a member the upload task does not find, as if the
	// archive lacked it: DIGITS still answers 200, the job is in Error.
	LoseMember string
	// Jobs are listed before any upload.
	Jobs []Job
	// TLS serves https with httptest's certificate.
	TLS bool
}

// Member is one file of an uploaded archive.
type Member struct {
	Name   string
	Size   int64
	SHA256 string
	Data   []byte // the content, when at most 1 MiB
}

// Upload is one request to upload_archive, as received.
type Upload struct {
	ContentLength int64 // -1: chunked
	User          string
	Authorization string // the header, if any
	Filename      string // of the archive part
	Members       []Member
	Info          map[string]any // info.json, when it parsed
	Code          int            // the status answered
}

// Job is a Pretrained Model job of the stand-in.
type Job struct {
	ID, Name, Status, Framework string
	Username                    *string
	Submitted                   float64
	// Files are the job folder's files, by the names the upload task
	// gives them.
	Files map[string]Member
}

// Server is the stand-in DIGITS.
type Server struct {
	*httptest.Server
	opt     Options
	quit    chan struct{} // closed by Close: a handler that waits stops
	mu      sync.Mutex
	uploads []Upload
	jobs    []Job
}

// New starts a stand-in DIGITS; it stops when the test ends (Close).
func New(opt Options) *Server {
	s := &Server{opt: opt, jobs: append([]Job(nil), opt.Jobs...), quit: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pretrained_models/upload_archive", s.uploadArchive)
	mux.HandleFunc("GET /completed_jobs.json", s.completedJobs)
	if opt.TLS {
		s.Server = httptest.NewTLSServer(mux)
	} else {
		s.Server = httptest.NewServer(mux)
	}
	return s
}

// Close stops the server, and the handlers waiting for a client that gave
// up (the server does not notice while a body is unread).
func (s *Server) Close() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.Server.Close()
}

// Uploads returns the requests to upload_archive so far.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Upload(nil), s.uploads...)
}

// Jobs returns the jobs, oldest first.
func (s *Server) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Job(nil), s.jobs...)
}

// errorJSON is DIGITS' error handler's answer when JSON is accepted.
func errorJSON(w http.ResponseWriter, r *http.Request, code int, typ, msg string) {
	if !strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>%s</title></head><body><h1>%s</h1><p>%s</p></body></html>\n", typ, typ, msg)
		return
	}
	writeJSON(w, code, map[string]any{"error": map[string]any{"message": msg, "type": typ}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// uploadArchive is digits/pretrained_model/views.py::upload_archive.
func (s *Server) uploadArchive(w http.ResponseWriter, r *http.Request) {
	up := Upload{ContentLength: r.ContentLength, Authorization: r.Header.Get("Authorization")}
	defer func() {
		s.mu.Lock()
		s.uploads = append(s.uploads, up)
		s.mu.Unlock()
	}()
	if c, err := r.Cookie("username"); err == nil {
		up.User = c.Value
	}
	if u := r.URL.Query().Get("username"); u != "" {
		up.User = u
	}
	ok := false
	if r.ContentLength >= 0 { // gevent reads a chunked body as empty
		r.Body = &slowBody{r: r.Body, delay: s.opt.ReadDelay, stopAfter: s.opt.StopReadingAfter, done: r.Context().Done(), quit: s.quit}
		var members []Member
		members, up.Filename, ok = readArchive(r)
		up.Members = members
	}
	if !ok { // files["archive"] raises
		up.Code = http.StatusBadRequest
		errorJSON(w, r, up.Code, "BadRequestKeyError", "400 Bad Request: KeyError: 'archive'")
		return
	}
	members := up.Members
	if s.opt.RefuseCode != 0 {
		up.Code = s.opt.RefuseCode
		writeJSON(w, up.Code, map[string]string{"status": s.opt.RefuseReason})
		return
	}
	if members == nil {
		up.Code = http.StatusInternalServerError
		writeJSON(w, up.Code, map[string]string{"status": "Incorrect Archive Type"})
		return
	}
	up.Code, up.Info = s.makeJob(w, r, members, up.User)
}

// readArchive reads the "archive" part of the form as a tar; members is
// nil when it is not one; ok is false when there is no such part.
func readArchive(r *http.Request) (members []Member, filename string, ok bool) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", false
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			return members, filename, ok
		}
		if p.FormName() != "archive" || ok {
			_, _ = io.Copy(io.Discard, p)
			continue
		}
		ok, filename = true, p.FileName()
		members = readTar(p)
		_, _ = io.Copy(io.Discard, p)
	}
}

// readTar reads every member; nil if the stream is not a tar.
func readTar(r io.Reader) []Member {
	tr := tar.NewReader(r)
	members := []Member{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return members
		}
		if err != nil {
			return nil
		}
		h := sha256.New()
		var small []byte
		n, err := io.Copy(io.MultiWriter(h, &capped{b: &small, max: 1 << 20}), tr)
		if err != nil {
			return nil
		}
		m := Member{Name: hdr.Name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
		if n <= 1<<20 {
			m.Data = small
		}
		members = append(members, m)
	}
}

// makeJob checks info.json as the view does and runs the upload task;
// it answers and returns the status and the parsed info.json.
func (s *Server) makeJob(w http.ResponseWriter, r *http.Request, members []Member, user string) (int, map[string]any) {
	byName := map[string]Member{}
	var info *Member
	for i, m := range members {
		if m.Name != s.opt.LoseMember {
			byName[path.Clean(m.Name)] = m
		}
		if m.Name == "info.json" { // exactly: not ./info.json, not DIR/info.json
			info = &members[i]
		}
	}
	if info == nil {
		writeJSON(w, 500, map[string]string{"status": "Missing or Incorrect json file"})
		return 500, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(info.Data, &obj); err != nil || obj == nil {
		errorJSON(w, r, 500, "ValueError", "No JSON object could be decoded")
		return 500, nil
	}
	for _, k := range []string{"snapshot file", "framework", "name"} {
		if _, ok := obj[k]; !ok {
			writeJSON(w, 500, map[string]string{"status": "Missing Key '" + k + "' in info.json"})
			return 500, obj
		}
	}
	model, ok := obj["model file"]
	if !ok {
		if model, ok = obj["network file"]; !ok {
			writeJSON(w, 500, map[string]string{"status": "Missing model definition in info.json"})
			return 500, obj
		}
	}
	fw, _ := obj["framework"].(string)
	if fw != "caffe" && fw != "torch" && fw != "tensorflow" {
		// DIGITS 6 raises in PretrainedModelJob (after making its folder).
		errorJSON(w, r, 500, "ValueError", fmt.Sprintf("framework %q is not supported", fw))
		return 500, obj
	}
	name, _ := obj["name"].(string)
	job := Job{ID: newID(), Name: name, Framework: fw, Submitted: float64(time.Now().UnixNano()) / 1e9}
	if user != "" {
		job.Username = &user
	}
	job.Files, job.Status = uploadTask(fw, str(obj["snapshot file"]), str(model), labelsOf(obj), byName)
	select {
	case <-time.After(s.opt.Delay):
	case <-r.Context().Done():
	}
	s.mu.Lock()
	s.jobs = append(s.jobs, job)
	s.mu.Unlock()
	writeJSON(w, 200, map[string]string{"status": "success"})
	return 200, obj
}

func str(v any) string { s, _ := v.(string); return s }

func labelsOf(obj map[string]any) *string {
	if v, ok := obj["labels file"]; ok {
		s := str(v)
		return &s
	}
	return nil
}

// uploadTask copies the files as Caffe/Torch/TensorflowUploadTask.run
// does; a missing one puts the job in Error.
func uploadTask(fw, weights, model string, labels *string, files map[string]Member) (map[string]Member, string) {
	type move struct{ from, to string }
	var moves []move
	switch fw {
	case "caffe":
		moves = append(moves, move{weights, "model.caffemodel"}, move{model, "original.prototxt"})
	case "torch":
		moves = append(moves, move{weights, "_Model.t7"}, move{model, "original.lua"})
	case "tensorflow":
		for _, suf := range []string{".data-00000-of-00001", ".index", ".meta"} {
			moves = append(moves, move{weights + suf, "snapshot.ckpt" + suf})
		}
		moves = append(moves, move{model, "network.py"})
	}
	if labels != nil {
		moves = append(moves, move{*labels, "labels.txt"})
	}
	if fw == "caffe" { // only by this name, next to the weights
		dir := path.Dir(weights)
		for _, pl := range []string{"digits_python_layers.py", "digits_python_layers.pyc"} {
			if _, ok := files[path.Join(dir, pl)]; ok {
				moves = append(moves, move{path.Join(dir, pl), pl})
				break
			}
		}
	}
	out := map[string]Member{}
	for _, m := range moves {
		f, ok := files[path.Clean(m.from)]
		if !ok {
			return out, "Error"
		}
		out[m.to] = f
	}
	return out, "Done"
}

// completedJobs is digits/views.py::completed_jobs: Pretrained Model jobs
// that are no longer running, newest first.
func (s *Server) completedJobs(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	jobs := append([]Job(nil), s.jobs...)
	s.mu.Unlock()
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].Submitted > jobs[j].Submitted })
	list := []map[string]any{}
	for _, j := range jobs {
		css := map[string]string{"Done": "success", "Error": "danger"}[j.Status]
		_, labels := j.Files["labels.txt"]
		list = append(list, map[string]any{
			"id": j.ID, "name": j.Name, "group": "", "status": j.Status, "status_css": css,
			"submitted": j.Submitted, "elapsed": 1, "progress": 100, "type": "pretrained_model",
			"framework": j.Framework, "username": j.Username, "has_labels": labels,
		})
	}
	writeJSON(w, 200, map[string]any{
		"running": []any{}, "datasets": []any{}, "models": []any{}, "pretrained_models": list,
		"model_output_fields": []string{"has_labels", "username"},
	})
}

// newID names a job as DIGITS does: 20170124-101010-ab12.
func newID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return time.Now().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// capped keeps the first max bytes written.
type capped struct {
	b   *[]byte
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max + 1 - len(*c.b); room > 0 {
		*c.b = append(*c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// slowChunk is how much a slow body reads between two pauses.
const slowChunk = 64 << 10

// slowBody reads a request body slowly, or stops reading.
type slowBody struct {
	r         io.ReadCloser
	delay     time.Duration
	stopAfter int64
	n         int64
	done      <-chan struct{}
	quit      <-chan struct{}
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.stopAfter > 0 && b.n >= b.stopAfter {
		select { // until the client gives up, or the server stops
		case <-b.done:
		case <-b.quit:
		}
		return 0, io.ErrUnexpectedEOF
	}
	if b.stopAfter > 0 {
		p = p[:min(int64(len(p)), b.stopAfter-b.n)]
	}
	n, err := b.r.Read(p)
	if b.delay > 0 && (b.n+int64(n))/slowChunk != b.n/slowChunk {
		time.Sleep(b.delay)
	}
	b.n += int64(n)
	return n, err
}

func (b *slowBody) Close() error { return b.r.Close() }
