package main

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/modelstorefs/modelstorefs/digitsupload/digitstest"
	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// TestImportTarget: a flag on the command line wins over the variables;
// of the two variables, DIGITS_URL (no restart) wins.
func TestImportTarget(t *testing.T) {
	both := map[string]string{"DIGITS_URL": "http://env:5000", "DIGITS_JOBS_DIR": "/env/jobs"}
	tests := []struct {
		name              string
		env               map[string]string
		args              []string
		digits, jobs, err string
	}{
		{"--digits", nil, []string{"--digits", "http://d:5000"}, "http://d:5000", "", ""},
		{"--jobs-dir", nil, []string{"--jobs-dir", "/j"}, "", "/j", ""},
		{"both flags", nil, []string{"--digits", "http://d", "--jobs-dir", "/j"}, "", "", "not both"},
		{"empty --digits", nil, []string{"--digits="}, "", "", "URL is empty"},
		{"DIGITS_URL", map[string]string{"DIGITS_URL": "http://env:5000"}, nil, "http://env:5000", "", ""},
		{"DIGITS_JOBS_DIR", map[string]string{"DIGITS_JOBS_DIR": "/env/jobs"}, nil, "", "/env/jobs", ""},
		{"both variables", both, nil, "http://env:5000", "", ""},
		{"--jobs-dir over DIGITS_URL", both, []string{"--jobs-dir", "/j"}, "", "/j", ""},
		{"--digits over DIGITS_JOBS_DIR", both, []string{"--digits", "http://d"}, "http://d", "", ""},
		{"neither", nil, nil, "", "", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noStoreEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			app := newApp(func() {})
			var digitsURL, jobsDir string
			var err error
			app.Command("import").Action = func(c *cli.Context) error {
				digitsURL, jobsDir, err = importTarget(c)
				return nil
			}
			args := append(append([]string{"modelstorefs", "import"}, tt.args...), "s/m")
			if rerr := run(context.Background(), app, args); rerr != nil {
				t.Fatal(rerr)
			}
			if digitsURL != tt.digits || jobsDir != tt.jobs || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("importTarget = %q, %q, %v; want %q, %q, %q", digitsURL, jobsDir, err, tt.digits, tt.jobs, tt.err)
			}
		})
	}
}

// TestImportDigits: several models go one after the other, each reported
// in one line; the one that cannot be imported is not sent, and the
// command fails because not all landed.
func TestImportDigits(t *testing.T) {
	noStoreEnv(t)
	s := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	d := digitstest.New(digitstest.Options{})
	t.Cleanup(d.Close)
	u, _ := url.Parse(s.URL)
	store := storeDirName(u)
	t.Setenv("USER", "ana")
	out, errOut, err := runApp(t, "import", "--store", s.URL, "--cache-dir", t.TempDir(), "--digits", d.URL,
		store+"/lenet", store+"/broken", store+"/inception-tf", "nostore/x")
	if err == nil || err.Error() != "import: 2 of 4 models did not land in DIGITS" {
		t.Errorf("import: %v\n%s%s", err, out, errOut)
	}
	jobs := d.Jobs()
	if len(jobs) != 2 || len(d.Uploads()) != 2 {
		t.Fatalf("DIGITS has %d jobs from %d uploads, want 2\n%s", len(jobs), len(d.Uploads()), out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wants := []string{
		store + "/lenet: imported into DIGITS as job " + jobs[0].ID + ` (Done), "LeNet (MNIST)"`,
		"  " + d.URL + "/jobs/" + jobs[0].ID,
		store + "/broken: not imported: cannot be imported (not sent): info.json is not valid JSON",
		store + "/inception-tf: imported into DIGITS as job " + jobs[1].ID + ` (Done), "Inception v3 (tensorflow)"`,
		"  " + d.URL + "/jobs/" + jobs[1].ID,
		`nostore/x: not sent: no store named "nostore"`,
	}
	if len(lines) != len(wants) {
		t.Fatalf("output:\n%s\nwant %d lines", out, len(wants))
	}
	for i, want := range wants {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d: %q\nwant %q...", i, lines[i], want)
		}
	}
	for _, u := range d.Uploads() {
		if u.User != "ana" {
			t.Errorf("upload as %q, want $USER", u.User)
		}
	}
	if !strings.Contains(errOut, store+"/lenet: 100%") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}
}
