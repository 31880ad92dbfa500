package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Python finds an interpreter whose version starts with version ("2.7",
// "3"): on PATH (python2.7, python2, python3...), then among pyenv's
// installed versions (`pyenv root`, $PYENV_ROOT or ~/.pyenv). A candidate
// counts only if it runs and says that version: a pyenv shim on PATH for a
// version that is not selected exits 127 and is passed over.
func Python(version string) (string, error) {
	major, _, _ := strings.Cut(version, ".")
	var cands []string
	for _, name := range []string{"python" + version, "python" + major} {
		if p, err := exec.LookPath(name); err == nil {
			cands = append(cands, p)
		}
	}
	for _, root := range pyenvRoots() {
		found, _ := filepath.Glob(filepath.Join(root, "versions", version+"*", "bin", "python"+major))
		cands = append(cands, found...)
	}
	for _, c := range cands {
		if got, err := pythonVersion(c); err == nil && (got == version || strings.HasPrefix(got, version+".")) {
			return c, nil
		}
	}
	return "", fmt.Errorf("no Python %s on PATH or in pyenv (tried %q); install one, e.g. pyenv install 2.7.18 (Debian 12 has no python2.7 package)", version, cands)
}

// pyenvRoots are the places pyenv keeps its versions.
func pyenvRoots() []string {
	var roots []string
	if out, err := exec.Command("pyenv", "root").Output(); err == nil {
		roots = append(roots, strings.TrimSpace(string(out)))
	}
	if r := os.Getenv("PYENV_ROOT"); r != "" {
		roots = append(roots, r)
	}
	if home, err := os.UserHomeDir(); err == nil {
		roots = append(roots, filepath.Join(home, ".pyenv"))
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range roots {
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// pythonVersion runs python and returns its major.minor.micro version.
func pythonVersion(python string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])").Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", python, err)
	}
	return strings.TrimSpace(string(out)), nil
}
