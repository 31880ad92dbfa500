package main

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// serveStore serves a store directory over HTTP for the test; it returns
// the URL and the store's directory name.
func serveStore(t *testing.T, dir string) (string, string) {
	t.Helper()
	files, err := remotetest.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := storetest.NewServer(t, files, remotetest.Options{})
	u, _ := url.Parse(s.URL)
	return s.URL, storeDirName(u)
}

// TestCheckConfiguredStores: check without DIR|URL checks the stores the
// other commands read (--store, --store-file, DIGITS_MODEL_STORE_URL),
// each under a line naming it, and fails when any has an error.
func TestCheckConfiguredStores(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("NETRC", filepath.Join(t.TempDir(), "none"))
	sample, sampleName := serveStore(t, sampleStore)
	good, goodName := serveStore(t, goodStore(t))
	storeFile := filepath.Join(t.TempDir(), "stores")
	writeTestFile(t, storeFile, "# the team's\nteam="+good+"\n")
	tests := []struct {
		name    string
		env     string
		args    []string
		fails   string // "" for success
		stdout  []string
		without []string
	}{
		{"one good store by --store", "", []string{"check", "--store", good}, "",
			[]string{"store " + goodName + " (" + good + "):\n", "1 model, 1 importable, 0 problems\n"}, nil},
		{"from DIGITS_MODEL_STORE_URL", good, []string{"check"}, "",
			[]string{"store " + goodName + " (", "1 model, 1 importable"}, nil},
		{"from --store-file, named", "", []string{"check", "--store-file", storeFile}, "",
			[]string{"store team (" + good + "):\n"}, nil},
		{"a store with an unimportable model", "", []string{"check", "--store", good + "," + sample}, "1 of 2 stores have errors",
			[]string{"store " + goodName, "store " + sampleName, "broken: error: info.json is not valid JSON", "4 models, 3 importable"}, nil},
		{"an unreachable store, credentials not shown", "", []string{"check", "--store", "down=http://u:pw@127.0.0.1:1/", "--store", good},
			"1 of 2 stores have errors", []string{"store down (http://127.0.0.1:1/):\n", "down: error: ", "1 model, 1 importable"}, []string{"pw"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(storeEnv, tc.env)
			out, _, err := runStoreTools(storeToolsCtx(t), tc.args...)
			switch {
			case tc.fails == "" && err != nil:
				t.Errorf("err = %v\n%s", err, out)
			case tc.fails != "" && (err == nil || !strings.Contains(err.Error(), tc.fails)):
				t.Errorf("err = %v, want %q\n%s", err, tc.fails, out)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.without {
				if strings.Contains(out, w) {
					t.Errorf("output shows %q:\n%s", w, out)
				}
			}
		})
	}
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCheckSums: --write-sums writes a SHA256SUMS sha256sum accepts;
// check then verifies it for a DIR by default, and for a URL with --sums.
func TestCheckSums(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("NETRC", filepath.Join(t.TempDir(), "none"))
	dir := goodStore(t)
	out, _, err := runStoreTools(storeToolsCtx(t), "check", "--write-sums", dir)
	if err != nil || !strings.Contains(out, "wrote "+filepath.Join(dir, "SHA256SUMS")+" (6 files)") {
		t.Fatalf("check --write-sums: %v\n%s", err, out)
	}
	cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(b), ".hidden") {
		t.Fatalf("sha256sum --check: %v\n%s", err, b)
	}

	writeTestFile(t, filepath.Join(dir, "lenet", "w.caffemodel"), "corrupt")
	url, _ := serveStore(t, dir)
	mismatch := "lenet: error: w.caffemodel: sha256 mismatch (SHA256SUMS says "
	tests := []struct {
		name string
		args []string
		bad  bool
	}{
		{"a DIR is verified by default", []string{"check", dir}, true},
		{"unless --sums=false", []string{"check", "--sums=false", dir}, false},
		{"a URL is not by default", []string{"check", url}, false},
		{"a URL with --sums", []string{"check", "--sums", url}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runStoreTools(storeToolsCtx(t), tc.args...)
			if got := strings.Contains(out, mismatch); got != tc.bad || (err != nil) != tc.bad {
				t.Errorf("mismatch reported: %v, err %v; want %v\n%s", got, err, tc.bad, out)
			}
		})
	}
}
