package digitsupload

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digitsupload/digitstest"
	"github.com/modelstorefs/modelstorefs/engine"
	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// env is the sample store, plus a Caffe model with a python layer and one
// whose framework is written "Caffe", behind a catalog with a disk cache.
type env struct {
	srv   *remotetest.Server
	st    *cache.Store
	cat   *cache.Catalog
	files map[string][]byte
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith adds more files to the store.
func newEnvWith(t *testing.T, more map[string][]byte) *env {
	t.Helper()
	// master.json is generated: it lists the models added here.
	files := storetest.SampleFiles(t, storetest.WithoutMaster())
	maps.Copy(files, more)
	files["pylayer/info.json"] = []byte(`{"name": "LeNet with a python layer", "framework": "caffe",
		"snapshot file": "snap.caffemodel", "model file": "train_val.prototxt",
		"python layer file": "my_layers.py", "mean file": "mean.binaryproto"}`)
	files["pylayer/snap.caffemodel"] = bytes.Repeat([]byte{7}, 1000)
	files["pylayer/train_val.prototxt"] = []byte("layer { type: 'Python' }\n")
	files["pylayer/my_layers.py"] = []byte("import caffe\n")
	files["pylayer/mean.binaryproto"] = []byte("mean")
	files["upper/info.json"] = []byte(`{"name": "Upper", "framework": "Caffe", "snapshot file": "w.caffemodel",
		"network file": "net.prototxt"}`)
	files["upper/w.caffemodel"] = []byte("weights")
	files["upper/net.prototxt"] = []byte("net")
	srv := storetest.NewServer(t, files, remotetest.Options{Master: true})
	content, err := engine.NewStreamContent(engine.StreamConfig{Dir: t.TempDir(), MinFree: new(int64(0)), RetryWindow: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st := &cache.Store{Name: "sample", Remote: storetest.Remote(t, srv.URL)}
	cat := cache.NewCatalog([]*cache.Store{st}, content, cache.Config{JobsDir: "/var/lib/digits/jobs"})
	t.Cleanup(func() {
		cat.Close()
		content.Close()
	})
	return &env{srv: srv, st: st, cat: cat, files: files}
}

func newUploader(t *testing.T, d *digitstest.Server, cfg Config) *Uploader {
	t.Helper()
	cfg.URL = d.URL
	up, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

func digest(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// uploadCases are the sample models, one per framework, a Caffe model
// with a python layer and one whose framework is written "Caffe": the
// archive's members, the job files DIGITS makes of them (from which store
// file), and keys of the archive's info.json.
var uploadCases = []struct {
	model, name string
	members     []string          // in archive order
	jobFiles    map[string]string // job file -> store file
	info        map[string]any    // keys of the archive's info.json
	noInfo      []string          // keys it must not have
}{
	{model: "lenet",
		members:  []string{"info.json", "model.caffemodel", "original.prototxt", "labels.txt"},
		jobFiles: map[string]string{"model.caffemodel": "snapshot_iter_28140.caffemodel", "original.prototxt": "original.prototxt", "labels.txt": "labels.txt"},
		info: map[string]any{"framework": "caffe", "name": "LeNet (MNIST)", "snapshot file": "model.caffemodel",
			"model file": "original.prototxt", "labels file": "labels.txt", "username": "luke"},
		noInfo: []string{"mean file", "deploy file", "solver file", "python layer file"}},
	{model: "alexnet-torch", name: "renamed",
		members:  []string{"info.json", "_Model.t7", "original.lua", "labels.txt"},
		jobFiles: map[string]string{"_Model.t7": "snapshot_30_Model.t7", "original.lua": "model.lua", "labels.txt": "labels.txt"},
		info:     map[string]any{"framework": "torch", "name": "renamed", "snapshot file": "_Model.t7", "model file": "original.lua"}},
	{model: "inception-tf",
		members: []string{"info.json", "snapshot.ckpt.data-00000-of-00001", "snapshot.ckpt.index", "snapshot.ckpt.meta", "network.py", "labels.txt"},
		jobFiles: map[string]string{"snapshot.ckpt.data-00000-of-00001": "snapshot_5.ckpt.data-00000-of-00001",
			"snapshot.ckpt.index": "snapshot_5.ckpt.index", "snapshot.ckpt.meta": "snapshot_5.ckpt.meta",
			"network.py": "network.py", "labels.txt": "labels.txt"},
		info: map[string]any{"framework": "tensorflow", "snapshot file": "snapshot.ckpt", "model file": "network.py"}},
	{model: "pylayer",
		members: []string{"info.json", "model.caffemodel", "original.prototxt", "digits_python_layers.py"},
		jobFiles: map[string]string{"model.caffemodel": "snap.caffemodel", "original.prototxt": "train_val.prototxt",
			"digits_python_layers.py": "my_layers.py"},
		info:   map[string]any{"python layer file": "digits_python_layers.py"},
		noInfo: []string{"labels file", "mean file"}},
	{model: "upper",
		members:  []string{"info.json", "model.caffemodel", "original.prototxt"},
		jobFiles: map[string]string{"model.caffemodel": "w.caffemodel", "original.prototxt": "net.prototxt"},
		info:     map[string]any{"framework": "caffe", "model file": "original.prototxt"},
		noInfo:   []string{"network file"}},
}

// TestUpload: each framework lands as a Done job holding the store's bytes
// under the names DIGITS' upload tasks give them; the archive holds
// info.json at its root, rewritten to name exactly the files it holds.
func TestUpload(t *testing.T) {
	e := newEnv(t)
	for _, tt := range uploadCases {
		t.Run(tt.model, func(t *testing.T) {
			d := digitstest.New(digitstest.Options{})
			t.Cleanup(d.Close)
			up := newUploader(t, d, Config{User: "ana"})
			var mu sync.Mutex
			var progress [][2]int64
			res, err := up.Upload(testutil.Ctx(t), e.cat, e.st, tt.model, Options{Name: tt.name, Progress: func(done, total int64) {
				mu.Lock()
				progress = append(progress, [2]int64{done, total})
				mu.Unlock()
			}})
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			checkLanded(t, e, d, res, tt.model, tt.members, tt.jobFiles)
			checkInfo(t, d.Uploads()[0].Info, tt.info, tt.noInfo)
			mu.Lock()
			defer mu.Unlock()
			if last := progress[len(progress)-1]; last != [2]int64{res.Bytes, res.Bytes} {
				t.Errorf("last progress %v, want %d of %d", last, res.Bytes, res.Bytes)
			}
			for i := 1; i < len(progress); i++ {
				if progress[i][0] < progress[i-1][0] {
					t.Errorf("progress went back: %v", progress)
					break
				}
			}
		})
	}
}

// checkLanded checks that the upload made one Done job, as user ana, of
// an archive with these members, holding the store's files.
func checkLanded(t *testing.T, e *env, d *digitstest.Server, res *Result, model string, members []string, jobFiles map[string]string) {
	t.Helper()
	jobs, uploads := d.Jobs(), d.Uploads()
	if len(jobs) != 1 || len(uploads) != 1 {
		t.Fatalf("DIGITS has %d jobs from %d uploads, want 1", len(jobs), len(uploads))
	}
	job, u := jobs[0], uploads[0]
	if res.ID != job.ID || res.Status != "Done" || job.Status != "Done" || res.Name != job.Name {
		t.Errorf("result %+v, DIGITS' job %s %q %s", res, job.ID, job.Name, job.Status)
	}
	if u.ContentLength != res.Bytes || u.User != "ana" || job.Username == nil || *job.Username != "ana" {
		t.Errorf("upload: Content-Length %d (sent %d), cookie user %q", u.ContentLength, res.Bytes, u.User)
	}
	var names []string
	for _, m := range u.Members {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, members) {
		t.Errorf("archive members %q, want %q", names, members)
	}
	for jobName, storeName := range jobFiles {
		if f, ok := job.Files[jobName]; !ok || f.SHA256 != digest(e.files[model+"/"+storeName]) {
			t.Errorf("job file %s: %v, want the store's %s", jobName, ok, storeName)
		}
	}
	if len(job.Files) != len(jobFiles) {
		t.Errorf("job files %v, want %d", job.Files, len(jobFiles))
	}
}

// checkInfo checks keys of the archive's info.json.
func checkInfo(t *testing.T, info map[string]any, want map[string]any, absent []string) {
	t.Helper()
	for k, v := range want {
		if info[k] != v {
			t.Errorf("info.json %q = %v, want %v", k, info[k], v)
		}
	}
	for _, k := range absent {
		if _, ok := info[k]; ok {
			t.Errorf("info.json has %q, naming a file the archive does not hold", k)
		}
	}
}

// TestArchiveBytes: the body streamed is exactly as long as planned, and
// its tar is what archive/tar makes of the same files.
func TestArchiveBytes(t *testing.T) {
	e := newEnv(t)
	for _, model := range []string{"lenet", "inception-tf", "pylayer"} {
		m, err := e.cat.Model(testutil.Ctx(t), e.st, model)
		if err != nil {
			t.Fatal(err)
		}
		a, err := planArchive(m, "")
		if err != nil {
			t.Fatal(err)
		}
		b, err := newBody(a, model)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := b.writeTo(testutil.Ctx(t), &out, e.cat.Content()); err != nil {
			t.Fatal(err)
		}
		if int64(out.Len()) != b.length() {
			t.Errorf("%s: body of %d bytes, planned %d", model, out.Len(), b.length())
		}
		tarBytes := out.Bytes()[len(b.prefix) : out.Len()-len(b.suffix)]
		if want := referenceTar(t, tarBytes); !bytes.Equal(tarBytes, want) {
			t.Errorf("%s: the tar differs from archive/tar's (%d vs %d bytes)", model, len(tarBytes), len(want))
		}
		if !bytes.HasSuffix(out.Bytes(), []byte("--\r\n")) || !strings.Contains(string(b.prefix), `name="archive"; filename="`+model+`.tar"`) {
			t.Errorf("%s: multipart framing %q ... %q", model, b.prefix, b.suffix)
		}
	}
}

// TestUploadRefused: DIGITS' reason is reported in one line, with its
// status; nothing counts as landed.
func TestUploadRefused(t *testing.T) {
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{RefuseCode: 500, RefuseReason: "Missing Key 'framework' in info.json"})
	t.Cleanup(d.Close)
	up := newUploader(t, d, Config{})
	res, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "lenet", Options{})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != 500 || re.Reason != "Missing Key 'framework' in info.json" || res != nil {
		t.Fatalf("Upload = %v, %v; want DIGITS' refusal", res, err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("reason is not one line: %q", err)
	}
	if len(d.Uploads()) != 1 || len(d.Jobs()) != 0 {
		t.Errorf("DIGITS saw %d uploads and has %d jobs", len(d.Uploads()), len(d.Jobs()))
	}
}

// TestUploadDown: a DIGITS that is not there is reported before a byte of
// the model is read.
func TestUploadDown(t *testing.T) {
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{})
	up := newUploader(t, d, Config{})
	d.Close()
	e.srv.ResetCounts()
	_, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "lenet", Options{})
	if err == nil || !strings.Contains(err.Error(), "DIGITS at "+up.URL()) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Upload to a DIGITS that is down: %v", err)
	}
	if n := e.srv.Count(http.MethodGet, "lenet/snapshot_iter_28140.caffemodel"); n != 0 {
		t.Errorf("the weights were fetched %d times for a DIGITS that is down", n)
	}
}

// TestUploadSlow: a DIGITS that reads slowly or takes its time to finish
// the job still gets the model; one that stops reading, or answers later
// than AnswerTimeout, is given up on and reported.
func TestUploadSlow(t *testing.T) {
	tests := []struct {
		name    string
		opt     digitstest.Options
		cfg     Config
		wantErr string
	}{
		{"slow reader", digitstest.Options{ReadDelay: time.Millisecond}, Config{StallTimeout: time.Second}, ""},
		{"slow job", digitstest.Options{Delay: 300 * time.Millisecond}, Config{AnswerTimeout: 5 * time.Second}, ""},
		{"stops reading", digitstest.Options{StopReadingAfter: 1000}, Config{StallTimeout: 200 * time.Millisecond}, "stopped reading"},
		{"answers too late", digitstest.Options{Delay: 3 * time.Second}, Config{AnswerTimeout: 200 * time.Millisecond}, "did not answer within 200ms"},
	}
	// Bigger than what the sockets' buffers take before DIGITS reads.
	e := newEnvWith(t, map[string][]byte{
		"big/info.json": []byte(`{"name": "big", "framework": "torch", "snapshot file": "w.t7", "model file": "m.lua"}`),
		"big/w.t7":      bytes.Repeat([]byte("0123456789abcdef"), 2<<20),
		"big/m.lua":     []byte("return nn.Sequential()"),
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := digitstest.New(tt.opt)
			t.Cleanup(d.Close)
			up := newUploader(t, d, tt.cfg)
			start := time.Now()
			res, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "big", Options{})
			if tt.wantErr == "" {
				if err != nil || res.Status != "Done" {
					t.Fatalf("Upload: %v, %+v", err, res)
				}
				// Synchronous: DIGITS answered once the job was made.
				if time.Since(start) < tt.opt.Delay {
					t.Errorf("returned after %s, before DIGITS' %s job", time.Since(start), tt.opt.Delay)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Upload: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestUploadJobNotDone: DIGITS' 200 with the job in Error is reported as
// not landed, with the job and its status.
func TestUploadJobNotDone(t *testing.T) {
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{LoseMember: "original.prototxt"})
	t.Cleanup(d.Close)
	up := newUploader(t, d, Config{})
	res, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "lenet", Options{})
	if !errors.Is(err, ErrNotDone) || res == nil || res.Status != "Error" || !strings.Contains(err.Error(), res.ID) {
		t.Fatalf("Upload = %+v, %v; want the job in Error", res, err)
	}
}

// TestUploadNotImportable: a model the verdict refuses is not sent.
func TestUploadNotImportable(t *testing.T) {
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{})
	t.Cleanup(d.Close)
	up := newUploader(t, d, Config{})
	_, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "broken", Options{})
	if !errors.Is(err, ErrNotImportable) || !strings.Contains(err.Error(), "info.json") {
		t.Fatalf("Upload of broken: %v", err)
	}
	if n := len(d.Uploads()); n != 0 {
		t.Errorf("DIGITS got %d uploads of a model that cannot be imported", n)
	}
}

// TestUploadStoreFails: the store failing in the middle of the upload is
// reported as the store's failure; DIGITS makes no job of the cut body.
func TestUploadStoreFails(t *testing.T) {
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{})
	t.Cleanup(d.Close)
	up := newUploader(t, d, Config{})
	if _, err := e.cat.Model(testutil.Ctx(t), e.st, "lenet"); err != nil {
		t.Fatal(err)
	}
	e.srv.SetStatus("lenet/snapshot_iter_28140.caffemodel", http.StatusForbidden)
	_, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "lenet", Options{})
	if err == nil || !strings.Contains(err.Error(), "reading the model from the store") || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Upload with the weights refused by the store: %v", err)
	}
	testutil.WaitFor(t, "DIGITS to see the upload end", func() bool { return len(d.Uploads()) == 1 })
	if n := len(d.Jobs()); n != 0 {
		t.Errorf("DIGITS made %d jobs of a cut upload", n)
	}
}

// TestUploadFindsItsJob: a job of the same name that was there before, or
// another user's, is not taken for the new one; without a user, no cookie
// is sent and the job has none.
func TestUploadFindsItsJob(t *testing.T) {
	other := "bob"
	old := []digitstest.Job{
		{ID: "20200101-000000-0001", Name: "LeNet (MNIST)", Status: "Done", Submitted: float64(time.Now().Unix() + 3600)},
		{ID: "20200101-000000-0002", Name: "LeNet (MNIST)", Status: "Error", Username: &other, Submitted: 1},
	}
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{Jobs: old})
	t.Cleanup(d.Close)
	up := newUploader(t, d, Config{})
	res, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "lenet", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ID == old[0].ID || res.ID == old[1].ID || res.Status != "Done" {
		t.Errorf("took %+v for the new job", res)
	}
	if u := d.Uploads()[0]; u.User != "" {
		t.Errorf("sent user %q, want no cookie", u.User)
	}
}

// TestUploadBasicAuth: user:password in the URL is sent as basic auth and
// never shown.
func TestUploadBasicAuth(t *testing.T) {
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{})
	t.Cleanup(d.Close)
	up, err := New(Config{URL: strings.Replace(d.URL, "http://", "http://me:s3cret@", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(up.URL(), "s3cret") || strings.Contains(up.JobURL("x"), "s3cret") {
		t.Errorf("URL %q shows the password", up.URL())
	}
	if _, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "lenet", Options{}); err != nil {
		t.Fatal(err)
	}
	if got := d.Uploads()[0].Authorization; got != "Basic bWU6czNjcmV0" {
		t.Errorf("Authorization %q", got)
	}
}

// TestUploadTLS: https with a private CA works as it does for stores;
// without the CA, the certificate is refused.
func TestUploadTLS(t *testing.T) {
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{TLS: true})
	t.Cleanup(d.Close)
	pool := x509Pool(d)
	up := newUploader(t, d, Config{RootCAs: pool})
	if res, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "alexnet-torch", Options{}); err != nil || res.Status != "Done" {
		t.Fatalf("Upload over https: %+v, %v", res, err)
	}
	up = newUploader(t, d, Config{})
	if _, err := up.Upload(testutil.Ctx(t), e.cat, e.st, "alexnet-torch", Options{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Upload without the CA: %v", err)
	}
}

// TestUploadCancel: a cancelled upload returns, its goroutine done.
func TestUploadCancel(t *testing.T) {
	e := newEnv(t)
	d := digitstest.New(digitstest.Options{StopReadingAfter: 1000})
	t.Cleanup(d.Close)
	up := newUploader(t, d, Config{})
	ctx, cancel := context.WithTimeout(testutil.Ctx(t), 300*time.Millisecond)
	defer cancel()
	if _, err := up.Upload(ctx, e.cat, e.st, "lenet", Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled Upload: %v", err)
	}
}

func TestNewRefusesBadUser(t *testing.T) {
	for _, tt := range []struct {
		user string
		ok   bool
	}{{"ana", true}, {"", true}, {"j.doe-2_x", true}, {"Ana", false}, {"2ana", false}, {"a b", false}, {"zoë", false}} {
		_, err := New(Config{URL: "http://digits:5000", User: tt.user})
		if (err == nil) != tt.ok {
			t.Errorf("New(user %q): %v", tt.user, err)
		}
	}
}

func TestReasonOf(t *testing.T) {
	tests := []struct {
		body string
		code int
		want string
	}{
		{`{"status": "Missing or Incorrect json file"}`, 500, "Missing or Incorrect json file"},
		{`{"error": {"message": "400 Bad Request: KeyError: 'archive'", "type": "BadRequestKeyError"}}`, 400, "400 Bad Request: KeyError: 'archive'"},
		{`{"error": {"message": "403: Forbidden", "description": "You don't have the permission."}}`, 403, "403: Forbidden: You don't have the permission."},
		{"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>", 502, "502 Bad Gateway: nginx"},
		{"<!DOCTYPE html><html><title>ValueError</title><p>framework &quot;X&quot;\n is\tnot</p></html>", 500, `ValueError: framework "X" is not`},
		{"upstream timed out\n(after 60s)", 504, "upstream timed out (after 60s)"},
		{"", 413, "Request Entity Too Large"},
		{"\x1b[31mred\x1b[0m", 500, `\x1b[31mred\x1b[0m`},
	}
	for _, tt := range tests {
		if got := reasonOf([]byte(tt.body), tt.code); got != tt.want {
			t.Errorf("reasonOf(%q) = %q, want %q", tt.body, got, tt.want)
		}
	}
	if got := reasonOf(bytes.Repeat([]byte("x"), 1000), 500); len(got) != maxReason+3 {
		t.Errorf("a long reason is %d bytes", len(got))
	}
}

// TestStandInChunked: the stand-in, as DIGITS on gevent, reads a chunked
// upload as empty: why the body carries a Content-Length.
func TestStandInChunked(t *testing.T) {
	d := digitstest.New(digitstest.Options{})
	t.Cleanup(d.Close)
	req, err := http.NewRequest(http.MethodPost, d.URL+"/pretrained_models/upload_archive", struct{ *strings.Reader }{strings.NewReader("x")})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	resp, err := d.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if u := d.Uploads(); resp.StatusCode != 400 || len(u) != 1 || u[0].ContentLength != -1 {
		t.Errorf("chunked upload: HTTP %d, %+v", resp.StatusCode, u)
	}
}

// referenceTar is what archive/tar writes for the members of tarBytes.
func referenceTar(t *testing.T, tarBytes []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(tarBytes)), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// x509Pool trusts the stand-in's certificate only.
func x509Pool(d *digitstest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(d.Certificate())
	return pool
}
