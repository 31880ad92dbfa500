package integration

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/modelstorefs/modelstorefs/digitsupload/digitstest"
	"github.com/modelstorefs/modelstorefs/integration/itest"
)

// countingProxy is a forward HTTP proxy that sends every request to the
// stand-in DIGITS, whatever host it names, and remembers what it saw.
type countingProxy struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD host path Content-Length"
}

func startProxy(t *testing.T, to string) *countingProxy {
	t.Helper()
	target, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Method+" "+r.Host+" "+r.URL.Path+" "+r.Header.Get("Content-Length"))
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *countingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// TestImportDigitsCommand: `modelstorefs import` with DIGITS_URL uploads
// each model to the running DIGITS through the proxy of the environment,
// with a Content-Length, writing no temporary file and nothing in the
// jobs directory (DIGITS_URL wins over DIGITS_JOBS_DIR); a refusal and a
// DIGITS that is down give exit 1 and the reason.
func TestImportDigitsCommand(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	store := itest.StoreName(s.Base)
	d := digitstest.New(digitstest.Options{})
	t.Cleanup(d.Close)
	proxy := startProxy(t, d.URL)
	jobs, tmp, cacheDir := t.TempDir(), t.TempDir(), t.TempDir()
	env := []string{"DIGITS_MODEL_STORE_URL=" + s.Base, "DIGITS_JOBS_DIR=" + jobs, "TMPDIR=" + tmp, "USER=ana",
		"DIGITS_URL=http://digits.test:5000/", "HTTP_PROXY=" + proxy.URL, "NO_PROXY=", "no_proxy="}
	out, err := runBinary(t, env, "import", "--cache-dir", cacheDir, store+"/lenet", store+"/inception-tf")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	dj := d.Jobs()
	if len(dj) != 2 || dj[0].Status != "Done" || dj[1].Status != "Done" {
		t.Fatalf("DIGITS' jobs: %+v\n%s", dj, out)
	}
	for i, model := range []string{"lenet", "inception-tf"} {
		want := store + "/" + model + ": imported into DIGITS as job " + dj[i].ID + " (Done)"
		if !strings.Contains(out, want) || !strings.Contains(out, "http://digits.test:5000/jobs/"+dj[i].ID) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
		if *dj[i].Username != "ana" {
			t.Errorf("job %s belongs to %q, want $USER", dj[i].ID, *dj[i].Username)
		}
	}
	posts := 0
	for _, r := range proxy.requests() {
		if strings.HasPrefix(r, "POST digits.test:5000 /pretrained_models/upload_archive ") {
			posts++
			if strings.HasSuffix(r, " ") {
				t.Errorf("upload without a Content-Length: %q", r)
			}
		}
	}
	if posts != 2 {
		t.Errorf("the proxy saw %d uploads, want 2: %q", posts, proxy.requests())
	}
	for dir, what := range map[string]string{tmp: "TMPDIR", jobs: "the jobs directory"} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s holds %v after an upload", what, entries)
		}
	}

	refusing := digitstest.New(digitstest.Options{RefuseCode: 500, RefuseReason: "Incorrect Archive Type"})
	t.Cleanup(refusing.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tt := range []struct{ url, want string }{
		{refusing.URL, "DIGITS refused the upload (HTTP 500): Incorrect Archive Type"},
		{gone.URL, "not imported: DIGITS at " + gone.URL + "/: dial tcp"},
	} {
		out, err := runBinary(t, env, "import", "--cache-dir", cacheDir, "--digits", tt.url, store+"/alexnet-torch")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, tt.want) ||
			!strings.Contains(out, "import: 1 of 1 models did not land in DIGITS") {
			t.Errorf("import to %s: %v\n%s", tt.url, err, out)
		}
	}
}
