package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/urfave/cli/v2"
)

// runApp runs the real command line with args (without the program name)
// and returns its output and error. The context ends after 3s: should a
// test ever reach a real mount, runMount unmounts and returns then.
func runApp(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp(func() {})
	app.Writer, app.ErrWriter = &out, &errOut
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err = run(ctx, app, append([]string{"modelstorefs"}, args...))
	if time.Since(start) > 2*time.Second {
		t.Errorf("modelstorefs %q took %v: it must fail before mounting", args, time.Since(start))
	}
	return out.String(), errOut.String(), err
}

// noStoreEnv makes sure DIGITS_MODEL_STORE_URL and friends from the
// environment of the test run do not leak in.
func noStoreEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"DIGITS_MODEL_STORE_URL", "DIGITS_JOBS_DIR", "DIGITS_URL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// isMounted reports whether dir is a mountpoint according to the kernel.
func isMounted(t *testing.T, dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func TestVersion(t *testing.T) {
	out, _, err := runApp(t, "--version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "modelstorefs") || !strings.Contains(out, version) {
		t.Errorf("--version printed %q", out)
	}
}

func TestHelp(t *testing.T) {
	out, _, err := runApp(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Examples:", "DIGITS_MODEL_STORE_URL", "modelstorefs mount /mnt/models", "mount", "unmount", ".refresh"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q:\n%s", want, out)
		}
	}

	out, _, err = runApp(t, "mount", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MOUNTPOINT", "--store", "DIGITS_MODEL_STORE_URL", "--cache-dir", "--cache-size", "--ttl", "--allow-other", "--log-level", "--log-format"} {
		if !strings.Contains(out, want) {
			t.Errorf("mount --help does not mention %q:\n%s", want, out)
		}
	}
}

func TestMountUsageErrors(t *testing.T) {
	noStoreEnv(t)
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		mention []string
	}{
		{"no mountpoint", []string{"mount", "--store", "http://127.0.0.1:1/"}, []string{"MOUNTPOINT", "0"}},
		{"two mountpoints", []string{"mount", "--store", "http://127.0.0.1:1/", dir, dir}, []string{"MOUNTPOINT", "2"}},
		{"ftp store", []string{"mount", "--store", "ftp://x", dir}, []string{"ftp://x", "http or https"}},
		{"file store in a list", []string{"mount", "--store", "http://127.0.0.1:1/,file:///srv", dir}, []string{"file:///srv", "http or https"}},
		{"no store at all", []string{"mount", dir}, []string{"DIGITS_MODEL_STORE_URL", "--store"}},
		{"reserved store name", []string{"mount", "--store", ".refresh=http://x", dir}, []string{".refresh"}},
		{"bad cache size", []string{"mount", "--store", "http://127.0.0.1:1/", "--cache-size", "lots", dir}, []string{"--cache-size", "lots"}},
		{"zero cache size", []string{"mount", "--store", "http://127.0.0.1:1/", "--cache-size", "0", dir}, []string{"--cache-size"}},
		{"zero ttl", []string{"mount", "--store", "http://127.0.0.1:1/", "--ttl", "0s", dir}, []string{"--ttl"}},
		{"negative ttl", []string{"mount", "--store", "http://127.0.0.1:1/", "--ttl", "-1h", dir}, []string{"--ttl"}},
		{"cache inside the mountpoint", []string{"mount", "--store", "http://127.0.0.1:1/", "--cache-dir", filepath.Join(dir, "cache"), dir}, []string{"inside the mountpoint"}},
		{"cache is the mountpoint", []string{"mount", "--store", "http://127.0.0.1:1/", "--cache-dir", dir, dir}, []string{"inside the mountpoint"}},
		{"unmount without a mountpoint", []string{"unmount"}, []string{"MOUNTPOINT"}},
		{"umount with two", []string{"umount", dir, dir}, []string{"MOUNTPOINT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runApp(t, tc.args...)
			if err == nil {
				t.Fatalf("modelstorefs %q succeeded", tc.args)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("modelstorefs %q: error %q does not mention %q", tc.args, err, m)
				}
			}
			if isMounted(t, dir) {
				t.Fatalf("modelstorefs %q mounted %s", tc.args, dir)
			}
		})
	}
}

func TestMountBadStoreFromEnv(t *testing.T) {
	noStoreEnv(t)
	dir := t.TempDir()
	for _, v := range []string{"ftp://x", "http://127.0.0.1:8000, ftp://x", "127.0.0.1:8000", " , "} {
		t.Setenv("DIGITS_MODEL_STORE_URL", v)
		if _, _, err := runApp(t, "mount", dir); err == nil {
			t.Errorf("DIGITS_MODEL_STORE_URL=%q: mount succeeded", v)
		}
		if isMounted(t, dir) {
			t.Fatalf("DIGITS_MODEL_STORE_URL=%q: %s got mounted", v, dir)
		}
	}
}

func TestUnmountNotAMountpoint(t *testing.T) {
	dir := t.TempDir()
	_, _, err := runApp(t, "unmount", dir)
	if err == nil {
		t.Fatalf("unmount of a plain directory succeeded")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory", err)
	}
}

// configFrom runs the real mount command's flags with an Action that only
// computes the mount configuration: nothing is mounted.
func configFrom(t *testing.T, args ...string) (mountConfig, error) {
	t.Helper()
	cmd := mountCommand(func() {})
	var (
		cfg    mountConfig
		cfgErr error
		called bool
	)
	cmd.Action = func(c *cli.Context) error {
		called = true
		cfg, cfgErr = mountConfigFrom(c)
		return nil
	}
	app := &cli.App{Name: "modelstorefs", Commands: []*cli.Command{cmd}, Writer: io.Discard, ErrWriter: io.Discard}
	if err := run(context.Background(), app, append([]string{"modelstorefs", "mount"}, args...)); err != nil {
		t.Fatalf("mount %q: %v", args, err)
	}
	if !called {
		t.Fatalf("mount %q: the action did not run", args)
	}
	return cfg, cfgErr
}

func TestMountConfigFromEnv(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("DIGITS_MODEL_STORE_URL", " http://127.0.0.1:8000, ,http://127.0.0.1:8001/team,")
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	mnt := t.TempDir()
	cfg, err := configFrom(t, mnt)
	if err != nil {
		t.Fatal(err)
	}
	want := []storeSpec{{"127.0.0.1_8000", "http://127.0.0.1:8000/"}, {"127.0.0.1_8001_team", "http://127.0.0.1:8001/team/"}}
	if !slices.Equal(cfg.Stores, want) {
		t.Errorf("Stores %q, want %q", cfg.Stores, want)
	}
	if cfg.Mountpoint != mnt {
		t.Errorf("Mountpoint %q, want %q", cfg.Mountpoint, mnt)
	}
	if cfg.CacheDir != filepath.Join(cache, "modelstorefs") {
		t.Errorf("CacheDir %q, want $XDG_CACHE_HOME/modelstorefs", cfg.CacheDir)
	}
	if cfg.CacheSize != 10<<30 || cfg.TTL != 24*time.Hour || cfg.LogLevel != "info" || cfg.LogFormat != "console" ||
		cfg.AllowOther || cfg.DebugFuse || cfg.JobsDir != "/var/lib/digits/jobs" {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestMountConfigNamedStoresFromEnv(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("DIGITS_MODEL_STORE_URL", "public=http://127.0.0.1:8000,team = http://127.0.0.1:8001/team")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg, err := configFrom(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := []storeSpec{{"public", "http://127.0.0.1:8000/"}, {"team", "http://127.0.0.1:8001/team/"}}
	if !slices.Equal(cfg.Stores, want) {
		t.Errorf("Stores %q, want %q", cfg.Stores, want)
	}
}

func TestMountConfigStoreFlag(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("DIGITS_MODEL_STORE_URL", "ftp://ignored-when-store-is-given")
	cfg, err := configFrom(t, "--store", "http://a/,http://b/", "--store", "c=http://c/x", "--store", " http://a/ ", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := []storeSpec{{"a", "http://a/"}, {"b", "http://b/"}, {"c", "http://c/x/"}, {"a_2", "http://a/"}}
	if !slices.Equal(cfg.Stores, want) {
		t.Errorf("Stores %q, want %q", cfg.Stores, want)
	}

	// The short form, mixed with the long one, and after the mountpoint.
	cfg, err = configFrom(t, "-s", "http://a/", t.TempDir(), "--store", "b=http://b/")
	if err != nil {
		t.Fatal(err)
	}
	want = []storeSpec{{"a", "http://a/"}, {"b", "http://b/"}}
	if !slices.Equal(cfg.Stores, want) {
		t.Errorf("-s: Stores %q, want %q", cfg.Stores, want)
	}
}

func TestMountConfigFlags(t *testing.T) {
	noStoreEnv(t)
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", home)
	t.Setenv("DIGITS_JOBS_DIR", "/srv/digits/jobs")
	t.Setenv("DIGITS_MODEL_STORE_URL", "http://127.0.0.1:8000")

	t.Run("defaults without XDG_CACHE_HOME", func(t *testing.T) {
		cfg, err := configFrom(t, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(home, ".cache", "modelstorefs"); cfg.CacheDir != want {
			t.Errorf("CacheDir %q, want %q", cfg.CacheDir, want)
		}
		if cfg.JobsDir != "/srv/digits/jobs" {
			t.Errorf("JobsDir %q, want DIGITS_JOBS_DIR", cfg.JobsDir)
		}
	})
	t.Run("every flag", func(t *testing.T) {
		mnt := t.TempDir()
		cacheDir := filepath.Join(t.TempDir(), "c")
		cfg, err := configFrom(t, "--cache-dir", cacheDir, "--cache-size", "500MiB", "--ttl", "90m",
			"--jobs-dir", "/jobs", "--allow-other", "--log-level", "debug", "--log-format", "json", "--debug-fuse", mnt)
		if err != nil {
			t.Fatal(err)
		}
		want := mountConfig{
			storeConfig: storeConfig{
				Stores:    []storeSpec{{"127.0.0.1_8000", "http://127.0.0.1:8000/"}},
				CacheDir:  cacheDir,
				CacheSize: 500 << 20,
				TTL:       90 * time.Minute,
				LogLevel:  "debug",
				LogFormat: "json",
			},
			Mountpoint: mnt,
			JobsDir:    "/jobs",
			AllowOther: true,
			DebugFuse:  true,
		}
		if cfg.Mountpoint != want.Mountpoint || !slices.Equal(cfg.Stores, want.Stores) || cfg.CacheDir != want.CacheDir ||
			cfg.CacheSize != want.CacheSize || cfg.TTL != want.TTL || cfg.JobsDir != want.JobsDir ||
			cfg.AllowOther != want.AllowOther || cfg.LogLevel != want.LogLevel || cfg.LogFormat != want.LogFormat ||
			cfg.DebugFuse != want.DebugFuse {
			t.Errorf("config\n  %+v\nwant\n  %+v", cfg, want)
		}
	})
	t.Run("relative paths made absolute", func(t *testing.T) {
		wd := t.TempDir()
		t.Chdir(wd)
		cfg, err := configFrom(t, "--cache-dir", "cache", "mnt")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Mountpoint != filepath.Join(wd, "mnt") || cfg.CacheDir != filepath.Join(wd, "cache") {
			t.Errorf("Mountpoint %q, CacheDir %q, want both under %s", cfg.Mountpoint, cfg.CacheDir, wd)
		}
	})
	t.Run("cache next to the mountpoint", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := configFrom(t, "--cache-dir", filepath.Join(dir, "mnt-cache"), filepath.Join(dir, "mnt")); err != nil {
			t.Errorf("a cache dir beside the mountpoint was refused: %v", err)
		}
	})
	t.Run("default cache inside the mountpoint", func(t *testing.T) {
		if _, err := configFrom(t, home); err == nil || !strings.Contains(err.Error(), "inside the mountpoint") {
			t.Errorf("mounting on $HOME with the default cache in $HOME/.cache: %v, want an error", err)
		}
	})
}

func TestMountConfigFlagsAnywhere(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	mnt, cacheDir := t.TempDir(), t.TempDir()
	storeFile := filepath.Join(t.TempDir(), "stores")
	if err := os.WriteFile(storeFile, []byte("# team stores\nteam=http://u:pw@127.0.0.1:8001/team\n\nhttp://127.0.0.1:8002\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DIGITS_MODEL_STORE_URL", "http://replaced-by-the-store-file/")
	cfg, err := configFrom(t, mnt, "--store-file", storeFile, "-o", "allow_other,nonempty,cache_size=2GiB,ttl=2h",
		"--cache-dir="+cacheDir, "--log-level", "debug", "--allow-other=false")
	if err != nil {
		t.Fatal(err)
	}
	want := []storeSpec{{"team", "http://u:pw@127.0.0.1:8001/team/"}, {"127.0.0.1_8002", "http://127.0.0.1:8002/"}}
	if !slices.Equal(cfg.Stores, want) {
		t.Errorf("Stores %q, want %q", cfg.Stores, want)
	}
	if cfg.Mountpoint != mnt || cfg.CacheDir != cacheDir || cfg.CacheSize != 2<<30 || cfg.TTL != 2*time.Hour ||
		!cfg.AllowNonEmpty || cfg.AllowOther || cfg.LogLevel != "debug" {
		t.Errorf("config %+v", cfg)
	}
}

// TestMountConfigVerify: files are hashed and checked unless --verify=false
// or -o no_verify says otherwise.
func TestMountConfigVerify(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	for _, tt := range []struct {
		args     []string
		noVerify bool
	}{
		{nil, false},
		{[]string{"--verify=false"}, true},
		{[]string{"-o", "no_verify"}, true},
	} {
		cfg, err := configFrom(t, append([]string{t.TempDir(), "--store", "http://127.0.0.1:8001/"}, tt.args...)...)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if cfg.NoVerify != tt.noVerify {
			t.Errorf("%q: NoVerify %v, want %v", tt.args, cfg.NoVerify, tt.noVerify)
		}
	}
}

// TestMountConfigDirectIO: cold files bypass the kernel page cache unless
// --direct-io=false or -o no_direct_io says otherwise.
func TestMountConfigDirectIO(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	tests := []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--direct-io=false"}, false},
		{[]string{"-o", "no_direct_io"}, false},
		{[]string{"-o", "nonempty"}, true},
	}
	for _, tt := range tests {
		cfg, err := configFrom(t, append([]string{t.TempDir(), "--store", "http://127.0.0.1:8001/"}, tt.args...)...)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if cfg.DirectIO != tt.want {
			t.Errorf("%q: DirectIO %v, want %v", tt.args, cfg.DirectIO, tt.want)
		}
	}
}

// TestUnmountAllowed: unmount touches a modelstorefs mount or a dead one;
// anything else only with --force, and the refusal names what it found.
func TestUnmountAllowed(t *testing.T) {
	ours := &mountinfo.Info{FSType: "fuse.modelstorefs", Source: "http://127.0.0.1:8000"}
	proc := &mountinfo.Info{FSType: "proc", Source: "proc"}
	sshfs := &mountinfo.Info{FSType: "fuse.sshfs", Source: "me@host:"}
	cases := []struct {
		name  string
		info  *mountinfo.Info
		serr  error
		force bool
		err   string // "" = allowed
	}{
		{"modelstorefs", ours, nil, false, ""},
		{"proc", proc, nil, false, "/m is not a modelstorefs mount (filesystem type proc, source proc): not unmounting it; --force unmounts it anyway"},
		{"proc with --force", proc, nil, true, ""},
		{"another FUSE filesystem", sshfs, nil, false, "filesystem type fuse.sshfs"},
		{"dead mount", sshfs, &os.PathError{Op: "stat", Path: "/m", Err: syscall.ENOTCONN}, false, ""},
		{"unreadable, not ours", sshfs, &os.PathError{Op: "stat", Path: "/m", Err: syscall.EACCES}, false, "filesystem type fuse.sshfs"},
		{"no mount table entry", nil, &os.PathError{Op: "stat", Path: "/m", Err: syscall.ENOENT}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := unmountAllowed("/m", c.info, c.serr, c.force)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Errorf("unmountAllowed = %v, want %q", err, c.err)
			}
		})
	}
}
