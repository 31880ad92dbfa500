package digitsupload

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// pythons are the interpreters found: DIGITS' own Python 2.7, and 3.
func pythons(t *testing.T) []string {
	var found []string
	for _, group := range [][]string{
		{"/root/.pyenv/versions/2.7.18/bin/python", "python2.7", "python2"},
		{"python3"},
	} {
		for _, py := range group {
			if path, err := exec.LookPath(py); err == nil {
				found = append(found, path)
				break
			}
		}
	}
	if len(found) == 0 {
		t.Skip("no python interpreter")
	}
	return found
}

// TestArchiveWithPython: Python's own tarfile, doing what DIGITS'
// upload_archive and upload tasks do (testdata/upload_archive.py), finds
// info.json and every job file in the archive, byte for byte.
func TestArchiveWithPython(t *testing.T) {
	e := newEnv(t)
	pys := pythons(t)
	for _, tt := range uploadCases {
		m, err := e.cat.Model(testutil.Ctx(t), e.st, tt.model)
		if err != nil {
			t.Fatal(err)
		}
		a, err := planArchive(m, tt.name)
		if err != nil {
			t.Fatal(err)
		}
		var tarBytes bytes.Buffer
		if err := a.writeTo(testutil.Ctx(t), &tarBytes, e.cat.Content()); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), tt.model+".tar")
		if err := os.WriteFile(path, tarBytes.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, py := range pys {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := exec.CommandContext(ctx, py, "testdata/upload_archive.py", path).Output()
			cancel()
			var got struct {
				Names []string
				Files map[string]string
			}
			if err != nil || json.Unmarshal(out, &got) != nil {
				t.Errorf("%s %s: %v: %s", py, tt.model, err, out)
				continue
			}
			want := map[string]string{}
			for job, store := range tt.jobFiles {
				want[job] = digest(e.files[tt.model+"/"+store])
			}
			if !slices.Equal(got.Names, tt.members) || len(got.Files) != len(want) {
				t.Errorf("%s %s: members %q, files %v", py, tt.model, got.Names, got.Files)
			}
			for job, sum := range want {
				if got.Files[job] != sum {
					t.Errorf("%s %s: %s is %s, want the store's", py, tt.model, job, got.Files[job])
				}
			}
		}
	}
}
