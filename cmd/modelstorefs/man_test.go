package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPage: the man page is written from the command definitions, so
// it names every command and every flag --help shows, every fstab option,
// and nothing hidden.
func TestManPage(t *testing.T) {
	out, _, err := runApp(t, "man")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, ".TH MODELSTOREFS 1 ") {
		t.Errorf("no roff title line:\n%.200s", out)
	}
	var want []string
	app := newApp(func() {})
	for _, cmd := range app.VisibleCommands() {
		want = append(want, ".SS \"modelstorefs "+roff(cmd.Name))
		for _, f := range cmd.VisibleFlags() {
			for _, n := range f.Names() {
				want = append(want, `\fB`+roff(dashed(n))+`\fR`)
			}
		}
	}
	for k := range valueOptions {
		want = append(want, `\fB`+roff(k)+`=\fR`)
	}
	for k := range switchOptions {
		want = append(want, `\fB`+roff(k)+`\fR`)
	}
	want = append(want, "mount.fuse.modelstorefs", `\fIURL\fR`, `\fIDURATION\fR`, "[$DIGITS_MODEL_STORE_URL]", "(default: 24h)")
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the man page lacks %q", w)
		}
	}
	for _, hidden := range []string{"chunk\\-size", "write\\-behind", "read\\-parallel", "modelstorefs man"} {
		if strings.Contains(out, hidden) {
			t.Errorf("the man page shows hidden %q", hidden)
		}
	}
	renderMan(t, out)
}

// renderMan has man(1), when installed, format the page, and fails on
// what it says on stderr (roff warnings).
func renderMan(t *testing.T, page string) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Logf("man is not installed: the page was checked as text only")
		return
	}
	file := filepath.Join(t.TempDir(), "modelstorefs.1")
	if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("man", "--warnings", "-l", file)
	cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	text, err := cmd.Output()
	if err != nil {
		t.Fatalf("man -l: %v\n%s", err, stderr.String())
	}
	for _, w := range []string{"MODELSTOREFS(1)", "--store", "--cache-dir DIR", "mount.fuse.modelstorefs SOURCE MOUNTPOINT"} {
		if !strings.Contains(string(text), w) {
			t.Errorf("man -l output lacks %q:\n%s", w, text)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("man -l warns:\n%s", stderr.String())
	}
}

// TestRoffText: descriptions become paragraphs, examples stay as typed.
func TestRoffText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"One line.", "One line.\n"},
		{"First.\n\nSecond --flag.", "First.\n.PP\nSecond \\-\\-flag.\n"},
		{".dot and \\back", "\\&.dot and \\eback\n"},
		{"Examples:\n   modelstorefs ls -f x\nAfter.", "Examples:\n.PP\n.nf\n.RS 4\nmodelstorefs ls \\-f x\n.RE\n.fi\nAfter.\n"},
		{"Examples:\n   a", "Examples:\n.PP\n.nf\n.RS 4\na\n.RE\n.fi\n"},
	}
	for _, tc := range tests {
		if got := roffText(tc.in); got != tc.want {
			t.Errorf("roffText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
