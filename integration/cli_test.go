package integration

// The command line as a new user meets it (issue 11, part 3): every
// message through the built binary, asserting its text and exit status.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// runExit runs the binary with args and env and returns its combined
// output and exit status (-1: it did not exit normally).
func runExit(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, itest.Binary, args...)
	cmd.Env = append(os.Environ(), "DIGITS_MODEL_STORE_URL=", "DIGITS_JOBS_DIR=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee) && ee.Exited():
		return string(out), ee.ExitCode()
	}
	t.Fatalf("modelstorefs %q: %v\n%s", args, err, out)
	return "", -1
}

func TestCLIMessages(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	src := itest.CopyStore(t)
	s := itest.StartGoStore(t, src, "/")
	for _, c := range cliMessageCases(t, src, s.Base) {
		t.Run(c.name, func(t *testing.T) {
			checkCLIMessage(t, c)
		})
	}
}

// cliMessageCase is a command line, the exit status it wants and what its
// output must say (in one line when oneLine).
type cliMessageCase struct {
	name    string
	args    []string
	code    int
	want    []string
	oneLine bool
}

// cliMessageCases is the table of TestCLIMessages, for the store folder
// src served at base; it makes the folders and files the command lines
// name.
func cliMessageCases(t *testing.T, src, base string) []cliMessageCase {
	store := itest.StoreName(base)
	mnt, cacheDir, jobs := t.TempDir(), t.TempDir(), t.TempDir()
	closed := fmt.Sprintf("http://127.0.0.1:%d/", itest.FreePort(t))
	nonEmpty := t.TempDir()
	writeFile(t, filepath.Join(nonEmpty, "keep.txt"), "mine")
	aFile := filepath.Join(t.TempDir(), "cache")
	writeFile(t, aFile, "not a directory")
	missing := filepath.Join(t.TempDir(), "models")
	return []cliMessageCase{
		{"version command", []string{"version"}, 0, []string{"modelstorefs ", "go: go1.", "go-fuse: v2."}, false},
		{"--version", []string{"--version"}, 0, []string{"modelstorefs ", "go: go1.", "go-fuse: v2."}, false},
		{"unknown flag", []string{"mount", mnt, "--cache-sise", "1G"}, 1,
			[]string{"modelstorefs: mount: unknown flag --cache-sise (did you mean --cache-size?); see 'modelstorefs mount --help'"}, true},
		{"a mount flag on ls", []string{"ls", "--store", base, "--retry-window", "2s"}, 1,
			[]string{"modelstorefs: ls: unknown flag --retry-window (a flag of mount, prefetch); see 'modelstorefs ls --help'"}, true},
		{"unknown command, a typo", []string{"unmont", mnt}, 1, []string{`unknown command "unmont" (did you mean unmount?)`}, true},
		{"--cache-dir is a file", []string{"mount", mnt, "--store", base, "--cache-dir", aFile}, 1,
			[]string{"--cache-dir " + aFile + " is a file, not a directory"}, true},
		{"--cache-dir is a file, --daemon", []string{"mount", "--daemon", mnt, "--store", base, "--cache-dir", aFile}, 1,
			[]string{"--cache-dir " + aFile + " is a file, not a directory"}, true},
		{"--cache-dir under a file", []string{"ls", "--store", base, "--cache-dir", filepath.Join(aFile, "sub")}, 1,
			[]string{"--cache-dir " + filepath.Join(aFile, "sub") + ": a parent of it is a file"}, true},
		{"missing mountpoint", []string{"mount", missing, "--store", base, "--cache-dir", cacheDir}, 1,
			[]string{"mountpoint " + missing + " does not exist: create it first (mkdir -p " + missing + ")"}, true},
		{"fstab line with none and no store", []string{"none", mnt, "-o", "allow_other,cache_dir=" + cacheDir}, 1,
			[]string{"no model store given: write the store URLs in the SOURCE field", "store= or store_file="}, true},
		{"unknown command", []string{"mnt"}, 1, []string{`modelstorefs: unknown command "mnt"; see 'modelstorefs --help'`}, true},
		{"help COMMAND", []string{"help", "check"}, 0, []string{"modelstorefs check - validate model stores"}, false},
		{"unknown global flag", []string{"--verbose", "ls"}, 1, []string{"unknown flag --verbose; see 'modelstorefs --help'"}, true},
		{"--ttl without unit", []string{"mount", "--store", base, "--ttl", "5", mnt}, 1,
			[]string{`--ttl: "5" is not a duration`, "24h"}, true},
		{"unknown log level", []string{"mount", mnt, "--store", base, "--log-level", "verbose"}, 1,
			[]string{`--log-level: "verbose" is not a level; use debug, info, warn or error`}, true},
		{"store URL without scheme", []string{"mount", mnt, "--store", "127.0.0.1:18601"}, 1,
			[]string{"a store URL needs http:// or https://, e.g. http://127.0.0.1:18601"}, true},
		{"check host:port", []string{"check", "127.0.0.1:18601"}, 1,
			[]string{"check: 127.0.0.1:18601 is not a directory; for a store on the network write the URL: http://127.0.0.1:18601"}, true},
		{"check ftp URL", []string{"check", "ftp://x/"}, 1, []string{"only http:// and https:// stores can be checked, not ftp://"}, true},
		{"mount over a non-empty dir", []string{"mount", nonEmpty, "--store", base, "--cache-dir", cacheDir}, 1,
			[]string{"is not empty", "--allow-non-empty"}, true},
		{"import: no such store", []string{"import", "nostore/lenet", "--store", base, "--cache-dir", cacheDir, "--jobs-dir", jobs}, 1,
			[]string{"modelstorefs: import: no store named \"nostore\""}, true},
		{"import: no such model", []string{"import", store + "/nosuch", "--store", base, "--cache-dir", cacheDir, "--jobs-dir", jobs}, 1,
			[]string{"modelstorefs: import: ", "no such model", "(list the models with: modelstorefs ls)"}, true},
		{"import: not STORE/MODEL", []string{"import", "lenet", "--jobs-dir", jobs, "--store", base}, 1,
			[]string{"modelstorefs: import: \"lenet\" is not STORE/MODEL"}, true},
		// Flags after the positional argument, and --store mixed with -s.
		{"flags anywhere, --store and -s", []string{"import", store + "/lenet", "--store", base, "-s", "other=" + base,
			"--cache-dir", cacheDir, "--jobs-dir", jobs}, 0, []string{"Imported " + store + "/lenet as job"}, false},
		{"ls with flags after", []string{"ls", "--store", base, "--cache-dir", cacheDir, "-s", "other=" + closed, "--filter", "lenet"}, 0,
			[]string{store + "  lenet", "store other:"}, false},
		{"check DIR with flags after", []string{"check", src, "--jobs", "2"}, 1, []string{"models,", "importable"}, false},
		{"serve DIR with flags after", []string{"serve", src, "--addr", "127.0.0.1:0", "--log-level", "loud"}, 1,
			[]string{`--log-level: "loud" is not a level`}, true},
	}
}

// checkCLIMessage runs c's command line and checks its exit status and
// output.
func checkCLIMessage(t *testing.T, c cliMessageCase) {
	t.Helper()
	out, code := runExit(t, nil, c.args...)
	if code != c.code {
		t.Errorf("exit status %d, want %d\n%s", code, c.code, out)
	}
	for _, w := range c.want {
		if !strings.Contains(out, w) {
			t.Errorf("output does not say %q:\n%s", w, out)
		}
	}
	if c.oneLine && strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("want one line, got:\n%s", out)
	}
	if strings.Contains(c.name, "--cache-dir") && strings.Contains(out, "--log-file") {
		t.Errorf("a --cache-dir mistake reported as a --log-file one:\n%s", out)
	}
	if strings.Contains(c.name, "fstab") && strings.Contains(out, "--store") {
		t.Errorf("the fstab helper points to --store, which an fstab line cannot give:\n%s", out)
	}
}

// TestMountRefusesStacking: a second mount on a modelstorefs mountpoint
// is refused (it used to stack silently); the first keeps working.
func TestMountRefusesStacking(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	m := itest.StartMount(t, []string{s.Base})
	out, code := runExit(t, nil, "mount", m.Dir, "--store", s.Base, "--cache-dir", t.TempDir())
	if code != 1 || !strings.Contains(out, m.Dir+" is already a modelstorefs mount (of "+s.Base+"); unmount it first: modelstorefs unmount "+m.Dir) {
		t.Errorf("second mount: exit %d\n%s", code, out)
	}
	if got := itest.ListDir(t, filepath.Join(m.Dir, itest.StoreName(s.Base))); len(got) == 0 {
		t.Errorf("first mount broken after the refused one")
	}
}

// TestMountWarnsUnreachableStores: a store that cannot be reached at mount
// time (wrong port; https to an http server) still mounts, and the log
// says why, once per store, right away.
func TestMountWarnsUnreachableStores(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	closed := fmt.Sprintf("http://127.0.0.1:%d/", itest.FreePort(t))
	tlsToPlain := "https://" + strings.TrimPrefix(s.Base, "http://")
	m := itest.StartMount(t, []string{s.Base, "closed=" + closed, "tls=" + tlsToPlain})
	want := map[string]string{"closed": "connection refused", "tls": "TLS handshake with 127.0.0.1"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		lines := warnLines(m.Logs.String())
		done := true
		for store, why := range want {
			if n := countWith(lines, `"store": "`+store+`"`, why); n != 1 {
				done = false
				if time.Now().After(deadline) {
					t.Errorf("store %s: %d WARN lines saying %q, want 1:\n%s", store, n, why, m.Logs)
				}
			}
		}
		if n := countWith(lines, `"store": "`+itest.StoreName(s.Base)+`"`); n != 0 {
			t.Errorf("the good store was reported unreachable:\n%s", m.Logs)
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := itest.ListDir(t, filepath.Join(m.Dir, itest.StoreName(s.Base))); len(got) == 0 {
		t.Errorf("good store not listed next to the unreachable ones")
	}
}

func warnLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "\tWARN\t") && strings.Contains(l, "store unreachable at mount time") {
			out = append(out, l)
		}
	}
	return out
}

func countWith(lines []string, subs ...string) int {
	n := 0
	for _, l := range lines {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}

// TestMountDaemonOptionsAndSource: mount --daemon returns once mounted;
// -o takes fstab options; --store-file keeps the password out of every
// process's argv; findmnt shows the store URL without credentials as
// SOURCE; stat's atime is the file's mtime; a password on the command line
// warns once.
func TestMountDaemonOptionsAndSource(t *testing.T) {
	t.Parallel() // its own store and mountpoints; looks only for processes naming them
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	withPassword := strings.Replace(s.Base, "http://", "http://alice:s3cret-pw@", 1)
	for _, via := range []string{"store-file", "argv", "fstab helper"} {
		t.Run(via, func(t *testing.T) {
			mnt, cacheDir := t.TempDir(), t.TempDir()
			args := []string{"mount", mnt, "--daemon", "-o", "cache_dir=" + cacheDir + ",ttl=1h,ro,noatime"}
			logFile := filepath.Join(cacheDir, "modelstorefs.log")
			switch via {
			case "fstab helper": // as mount(8) runs it; the daemon gets the source in its environment
				args = []string{withPassword, mnt, "-o", "cache_dir=" + cacheDir + ",ttl=1h,ro,noatime"}
			case "argv":
				logFile = filepath.Join(t.TempDir(), "own.log")
				args = append(args, "--store", withPassword, "--log-file", logFile)
			default:
				f := filepath.Join(t.TempDir(), "stores")
				writeFile(t, f, "# the team's store\n"+withPassword+"\n")
				if err := os.Chmod(f, 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--store-file", f)
			}
			out, code := runExit(t, nil, args...)
			t.Cleanup(func() {
				if itest.IsMounted(mnt) {
					_, _ = runExit(t, nil, "unmount", mnt)
				}
			})
			if code != 0 || !strings.Contains(out, "mounted on "+mnt) {
				t.Fatalf("mount --daemon: exit %d\n%s", code, out)
			}
			wantWarning := map[string]string{"argv": "the --store URL carries a password", "fstab helper": "the mount source carries a password"}[via]
			if wantWarning == "" && strings.Contains(out, "warning") || wantWarning != "" && strings.Count(out, "warning") != 1 ||
				!strings.Contains(out, wantWarning) {
				t.Errorf("password warnings (via %s), want %q once:\n%s", via, wantWarning, out)
			}
			if !itest.IsMounted(mnt) {
				t.Fatal("mount --daemon returned but nothing is mounted")
			}
			if src, err := exec.Command("findmnt", "-n", "-o", "SOURCE", mnt).Output(); err != nil || strings.TrimSpace(string(src)) != s.Base {
				t.Errorf("findmnt SOURCE = %q (%v), want %q", src, err, s.Base)
			}
			for _, p := range processesWith(mnt) {
				if strings.Contains(p, "s3cret") {
					t.Errorf("a process shows the password in its argv: %q", p)
				}
			}
			info := filepath.Join(mnt, itest.StoreName(s.Base), "lenet", "info.json")
			var st syscall.Stat_t
			if err := itest.WithTimeout(t, 30*time.Second, "stat", func() error { return syscall.Stat(info, &st) }); err != nil {
				t.Fatal(err)
			}
			if st.Atim != st.Mtim || st.Mtim.Sec < 86400 {
				t.Errorf("stat: atime %v, mtime %v: want atime = mtime, not 1970", st.Atim, st.Mtim)
			}
			if logs, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(logs), "\tmounted\t") ||
				strings.Contains(string(logs), "s3cret") {
				t.Errorf("daemon log %s: %v\n%s", logFile, err, logs)
			}
			if out, code := runExit(t, nil, "unmount", mnt); code != 0 || out != "" {
				t.Errorf("unmount of an idle mount: exit %d, said %q", code, out)
			}
			waitNoDaemon(t, mnt)
		})
	}
}

// TestUnmountOnlyOurs (issue 17): "modelstorefs unmount" detaches a
// modelstorefs mount and refuses any other filesystem, naming its type,
// unless --force; it used to detach anything, /proc included. The mount
// shows as fuse.modelstorefs in mountinfo, which is what it goes by.
func TestUnmountOnlyOurs(t *testing.T) {
	t.Parallel() // its own tmpfs and mount; /proc only in a private namespace
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "mounting a tmpfs needs root")
	}
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	m := itest.StartMount(t, []string{s.Base})
	if typ := mountType(t, m.Dir); typ != "fuse.modelstorefs" {
		t.Fatalf("mountinfo shows the mount as %q, want fuse.modelstorefs", typ)
	}
	tmp := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmp).CombinedOutput(); err != nil {
		testutil.SkipOrFail(t, "cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if mountType(t, tmp) == "tmpfs" {
			_ = syscall.Unmount(tmp, syscall.MNT_DETACH)
		}
	})
	// In a private mount namespace, so that a wrong verdict detaches
	// /proc there only.
	procInNS := func() (string, int) {
		if _, err := exec.LookPath("unshare"); err != nil {
			testutil.SkipOrFail(t, "unshare (util-linux) is needed: %v", err)
		}
		return runCmdExit(t, "unshare", "-m", "--propagation", "private", "sh", "-c",
			`"$0" unmount /proc; code=$?; [ -r /proc/self/mountinfo ] || echo PROC-GONE; exit $code`, itest.Binary)
	}
	steps := []struct {
		name     string
		run      func() (string, int)
		code     int
		say      string
		dir      string // mountpoint of the step
		wantType string // what is mounted on dir after the step ("" = nothing)
	}{
		{"tmpfs refused", func() (string, int) { return runExit(t, nil, "unmount", tmp) }, 1,
			tmp + " is not a modelstorefs mount (filesystem type tmpfs, source tmpfs): not unmounting it; --force unmounts it anyway", tmp, "tmpfs"},
		{"/proc refused", procInNS, 1, "/proc is not a modelstorefs mount (filesystem type proc", "/proc", "proc"},
		{"tmpfs with --force", func() (string, int) { return runExit(t, nil, "unmount", "--force", tmp) }, 0, "", tmp, ""},
		{"modelstorefs mount", func() (string, int) { return runExit(t, nil, "unmount", m.Dir) }, 0, "", m.Dir, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out, code := st.run()
			if code != st.code || !strings.Contains(out, st.say) || strings.Contains(out, "PROC-GONE") {
				t.Errorf("exit %d, want %d, saying %q:\n%s", code, st.code, st.say, out)
			}
			if typ := mountType(t, st.dir); typ != st.wantType {
				t.Errorf("%s is mounted as %q afterwards, want %q", st.dir, typ, st.wantType)
			}
		})
	}
	select {
	case <-m.Done: // "unmounted from outside": exit 0, which Stop checks
	case <-time.After(15 * time.Second):
		t.Errorf("the daemon still runs 15 s after its mount was unmounted")
	}
}

// mountType is the type of the topmost mount on dir ("" when none), from
// /proc/self/mountinfo.
func mountType(t *testing.T, dir string) string {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) == 0 {
		return ""
	}
	return infos[len(infos)-1].FSType
}

// runCmdExit runs a command, bounded, and returns its combined output and
// exit status.
func runCmdExit(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee) && ee.Exited():
		return string(out), ee.ExitCode()
	}
	t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	return "", -1
}

// processesWith returns the command lines (NULs as spaces) naming s.
func processesWith(s string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), s) {
			out = append(out, strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	return out
}

func waitNoDaemon(t *testing.T, mnt string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for daemonRunning(mnt) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon for %s still running after unmount", mnt)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// asNobody runs script in a private mount namespace, where setup (as root)
// may bind files over /dev/fuse or fusermount3 without touching the host's,
// then "$MSFS ARGS" runs as nobody. It returns the combined output.
func asNobody(t *testing.T, setup, script string) string {
	t.Helper()
	for _, tool := range []string{"unshare", "setpriv", "mknod"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipOrFail(t, "%s (util-linux, coreutils) is needed: %v", tool, err)
		}
	}
	// A copy of the binary nobody may run.
	dir, err := os.MkdirTemp("", "msfs-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "modelstorefs")
	data, err := os.ReadFile(itest.Binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	full := "set -u\nNOBODY='setpriv --reuid=65534 --regid=65534 --clear-groups -- env HOME=/nonexistent'\nMSFS=" + bin + "\nW=" + dir + "\n" + setup + "\n" + script
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c", full).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("script did not finish: %v\n%s", err, out)
	}
	return string(out)
}

// A /dev/fuse that nobody may open, in the private namespace: a tmpfs
// (device nodes allowed) with a node of the same device.
const openFuse = `mkdir $W/dev && mount -t tmpfs -o mode=755 none $W/dev && mknod -m 666 $W/dev/fuse c 10 229 && mount --bind $W/dev/fuse /dev/fuse`

func TestNonRootMessages(t *testing.T) {
	t.Parallel() // in private mount namespaces, on its own store
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "needs root to set up the namespace")
	}
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	prep := `mkdir -m 777 $W/mnt $W/cache && chown 65534 $W/mnt $W/cache`
	run := `$NOBODY $MSFS mount $W/mnt --store ` + s.Base + ` --cache-dir $W/cache; echo "exit=$?"`

	t.Run("no access to /dev/fuse", func(t *testing.T) {
		out := asNobody(t, prep+` && touch $W/nofuse && chmod 600 $W/nofuse && mount --bind $W/nofuse /dev/fuse`, run)
		for _, w := range []string{"cannot open /dev/fuse", "permission denied", "crw-rw-rw-", "fuse3 package", "or mount as root", "exit=1"} {
			if !strings.Contains(out, w) {
				t.Errorf("output does not say %q:\n%s", w, out)
			}
		}
	})
	t.Run("no fusermount", func(t *testing.T) {
		hide := `touch $W/none && for f in /usr/bin/fusermount3 /usr/bin/fusermount /bin/fusermount3 /bin/fusermount; do [ -e $f ] && mount --bind $W/none $f; done; true`
		out := asNobody(t, prep+` && `+openFuse+` && `+hide, run)
		for _, w := range []string{"needs fusermount3", "install the fuse3 package (apt-get install fuse3), or mount as root", "exit=1"} {
			if !strings.Contains(out, w) {
				t.Errorf("output does not say %q:\n%s", w, out)
			}
		}
	})
	t.Run("unmount of a healthy idle mount", func(t *testing.T) {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			testutil.SkipOrFail(t, "fusermount3 (package fuse3) is needed")
		}
		// The daemon lives in the namespace; should the unmount fail, it is
		// stopped by its pid (printed by mount --daemon).
		out := asNobody(t, prep+` && `+openFuse, `out=$($NOBODY $MSFS mount $W/mnt --daemon --store `+s.Base+` --cache-dir $W/cache 2>&1); echo "$out"; echo "mount-exit=$?"
pid=$(echo "$out" | sed -n 's/.*daemon pid \([0-9]*\).*/\1/p')
$NOBODY ls $W/mnt >/dev/null
$NOBODY $MSFS unmount $W/mnt; echo "unmount-exit=$?"
for i in $(seq 200); do grep -qs " $W/mnt " /proc/mounts || break; sleep 0.05; done
grep -qs " $W/mnt " /proc/mounts && { echo STILL-MOUNTED; umount -l $W/mnt; }
for i in $(seq 200); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
[ -n "$pid" ] && kill "$pid" 2>/dev/null && echo DAEMON-LINGERED; true`)
		t.Logf("as nobody:\n%s", out)
		if !strings.Contains(out, "mount-exit=0") || !strings.Contains(out, "unmount-exit=0") {
			t.Errorf("mount and unmount as nobody:\n%s", out)
		}
		for _, bad := range []string{"busy or dead", "lazily", "STILL-MOUNTED", "DAEMON-LINGERED"} {
			if strings.Contains(out, bad) {
				t.Errorf("unmount of an idle mount says %q:\n%s", bad, out)
			}
		}
	})
}

// TestBashCompletion drives the real bash completion function against the
// binary: mount <TAB> completes directories (no "help h"), ls --<TAB>
// offers ls's flags without hidden ones, import <TAB> offers STORE/MODEL
// from the listing ls kept.
func TestBashCompletion(t *testing.T) {
	t.Parallel() // its own servers and mounts; mostly waiting
	bash, err := exec.LookPath("bash")
	if err != nil {
		testutil.SkipOrFail(t, "bash is needed")
	}
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	cacheHome, work := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "models-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_CACHE_HOME=" + cacheHome, "DIGITS_MODEL_STORE_URL=" + s.Base}
	if out, code := runExit(t, env, "ls"); code != 0 {
		t.Fatalf("ls: exit %d\n%s", code, out)
	}
	complete := func(words ...string) []string {
		t.Helper()
		script := `source <("$BIN" completion bash) || exit 1
COMP_WORDS=("$BIN" "$@"); COMP_CWORD=$#; _modelstorefs; printf '%s\n' "${COMPREPLY[@]}"`
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bash, append([]string{"-c", script, "bash"}, words...)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), append(env, "BIN="+itest.Binary)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completing %q: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	cases := []struct {
		words         []string
		want, without []string
	}{
		{[]string{"mount", ""}, []string{"models-dir"}, []string{"help", "h"}},
		{[]string{"import", ""}, []string{itest.StoreName(s.Base) + "/lenet", itest.StoreName(s.Base) + "/alexnet-torch"}, []string{"help", "h", itest.StoreName(s.Base) + "/broken"}},
		{[]string{"ls", "--"}, []string{"--filter", "--json", "--refresh", "--store", "--store-file"}, []string{"--chunk-size", "--read-parallel"}},
		{[]string{"mount", "--log-level", ""}, []string{"debug", "info", "warn", "error"}, nil},
		{[]string{"ver"}, []string{"version"}, nil},
	}
	for _, c := range cases {
		got := complete(c.words...)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("completing %q: %q missing from %q", c.words, w, got)
			}
		}
		for _, w := range c.without {
			if slices.Contains(got, w) {
				t.Errorf("completing %q offers %q: %q", c.words, w, got)
			}
		}
	}
}

// TestMountAllowNonEmpty: --allow-non-empty (-o nonempty) mounts over a
// directory with files, which come back after the unmount.
func TestMountAllowNonEmpty(t *testing.T) {
	t.Parallel() // its own servers, mounts and temp dirs; nothing shared
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	for _, flag := range [][]string{{"--allow-non-empty"}, {"-o", "nonempty"}} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "keep.txt"), "mine")
		m := itest.MountWith(t, itest.Binary, dir, t.TempDir(), []string{s.Base}, flag...)
		if got := itest.ListDir(t, dir); !slices.Contains(got, itest.StoreName(s.Base)) || slices.Contains(got, "keep.txt") {
			t.Errorf("%q: mounted dir shows %q", flag, got)
		}
		m.Stop(t)
		if data, err := os.ReadFile(filepath.Join(dir, "keep.txt")); err != nil || string(data) != "mine" {
			t.Errorf("%q: the hidden file after unmount: %q, %v", flag, data, err)
		}
	}
}

// TestMountAsOtherUserMessage: a mount by a user other than root that
// cannot go ahead (/dev/fuse closed to them, or fusermount3 refusing a
// mountpoint they cannot write) says so in a short first line, then what
// to check one thing a line, and speaks of --allow-other only when it was
// given.
func TestMountAsOtherUserMessage(t *testing.T) {
	t.Parallel() // its own store, mountpoint and copy of the binary
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the binary as nobody")
	}
	s := itest.StartGoStore(t, itest.CopyStore(t), "/")
	// Everything nobody needs, outside the test's 0700 temporary directories.
	root, err := os.MkdirTemp("", "modelstorefs-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	bin, mnt, cacheDir := filepath.Join(root, "modelstorefs"), filepath.Join(root, "mnt"), filepath.Join(root, "cache")
	data, err := os.ReadFile(itest.Binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{os.Chmod(root, 0o755), os.WriteFile(bin, data, 0o755), os.Mkdir(mnt, 0o755),
		os.Mkdir(cacheDir, 0o700), os.Chown(cacheDir, 65534, 65534)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, allowOther := range []bool{false, true} {
		args := []string{"mount", mnt, "--store", s.Base, "--cache-dir", cacheDir}
		if allowOther {
			args = append(args, "--allow-other")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "DIGITS_MODEL_STORE_URL=", "HOME="+cacheDir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		cancel()
		if isMountpoint(mnt) {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
			t.Fatalf("nobody mounted on a directory owned by root:\n%s", out)
		}
		// fusermount3 may say its part first, on its own line.
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		first := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "modelstorefs: ") })
		if err == nil || first < 0 || first == len(lines)-1 || len(lines[first]) > 110 {
			t.Errorf("--allow-other %v: %v; want a failure, a short first line and hints:\n%s", allowOther, err, out)
		}
		if !strings.Contains(string(out), "or mount as root") {
			t.Errorf("--allow-other %v: no way out offered:\n%s", allowOther, out)
		}
		if got := strings.Contains(string(out), "allow-other") || strings.Contains(string(out), "user_allow_other"); got != allowOther {
			t.Errorf("--allow-other %v: the message mentions it: %v:\n%s", allowOther, got, out)
		}
	}
}

// isMountpoint reports whether dir is in the mount table.
func isMountpoint(dir string) bool {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	return err == nil && len(infos) > 0
}
