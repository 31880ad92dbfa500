package integration

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// TestMakeInstall runs `make install` into a staging directory, as a
// packager would (PREFIX=/usr, DESTDIR), and checks that every file lands
// where the system looks for it: the binary with its version stamped, the
// mount helper link for mount(8) and fstab, a man page man(1) renders, the
// shell completions, and the systemd unit pointing at the installed
// binary. Then `make uninstall` removes them all.
func TestMakeInstall(t *testing.T) {
	t.Parallel() // installs below its own DESTDIR
	for _, tool := range []string{"make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipOrFail(t, "%s is not installed: %v", tool, err)
		}
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	runMake := func(target string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "-C", repo, target, "DESTDIR="+dest, "PREFIX=/usr",
			"BIN="+filepath.Join(t.TempDir(), "modelstorefs"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	runMake("install")

	files := []struct {
		path, contains string
		mode           fs.FileMode
	}{
		{"usr/bin/modelstorefs", "", 0o755},
		{"usr/share/man/man1/modelstorefs.1", ".TH MODELSTOREFS 1 ", 0o644},
		{"usr/share/bash-completion/completions/modelstorefs", "complete -o filenames -F _modelstorefs modelstorefs", 0o644},
		{"usr/share/zsh/site-functions/_modelstorefs", "#compdef modelstorefs", 0o644},
		{"usr/share/fish/vendor_completions.d/modelstorefs.fish", "complete -c modelstorefs", 0o644},
		{"usr/lib/systemd/system/modelstorefs.service", "ExecStart=/usr/bin/modelstorefs mount ", 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dest, f.path)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
		}
		data, _ := os.ReadFile(p)
		if !strings.Contains(string(data), f.contains) {
			t.Errorf("%s does not contain %q", f.path, f.contains)
		}
	}
	if unit, _ := os.ReadFile(filepath.Join(dest, files[5].path)); strings.Contains(string(unit), "/usr/local/") {
		t.Errorf("the unit still points at /usr/local:\n%s", unit)
	}
	// mount -t fuse.modelstorefs and fstab lines run /sbin/mount.fuse.modelstorefs.
	if target, err := os.Readlink(filepath.Join(dest, "sbin/mount.fuse.modelstorefs")); err != nil || target != "/usr/bin/modelstorefs" {
		t.Errorf("mount helper link -> %q (%v), want /usr/bin/modelstorefs", target, err)
	}
	checkInstalledVersion(t, repo, filepath.Join(dest, "usr/bin/modelstorefs"))
	checkInstalledMan(t, filepath.Join(dest, "usr/share/man/man1/modelstorefs.1"))
	if out, err := exec.Command("bash", "-n", filepath.Join(dest, files[2].path)).CombinedOutput(); err != nil {
		t.Errorf("bash completion: %v\n%s", err, out)
	}

	runMake("uninstall")
	_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("left after make uninstall: %s", p)
		}
		return nil
	})
}

// checkInstalledVersion: the installed binary says the version git
// describes, never "dev" or "unknown".
func checkInstalledVersion(t *testing.T, repo, bin string) {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("installed binary: version: %v", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	desc, err := exec.Command("git", "-C", repo, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil { // not a clone: the version comes from Go's build information
		t.Logf("git describe: %v; the binary says %q", err, first)
		if first == "modelstorefs dev" || first == "modelstorefs " {
			t.Errorf("installed binary says %q", first)
		}
		return
	}
	if want := "modelstorefs " + strings.TrimSpace(string(desc)); first != want {
		t.Errorf("installed binary says %q, want %q", first, want)
	}
}

// checkInstalledMan renders the installed page with man -l (or, without
// man, checks the roff header only).
func checkInstalledMan(t *testing.T, page string) {
	t.Helper()
	if _, err := exec.LookPath("man"); err != nil {
		t.Logf("man is not installed: only the page's roff header was checked")
		return
	}
	cmd := exec.Command("man", "--warnings", "-l", page)
	cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 || !strings.Contains(string(out), "MODELSTOREFS(1)") {
		t.Errorf("man -l %s: %v\n%s\n%.400s", page, err, stderr.String(), out)
	}
}
