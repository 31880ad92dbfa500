package main

import (
	"flag"
	"io"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/modelstorefs/modelstorefs/engine"
)

// TestFlagsPerCommand: the store flags on every command that talks to
// stores, the cache flags where the cache is read, the tuning flags on
// mount only.
func TestFlagsPerCommand(t *testing.T) {
	app := newApp(func() {})
	has := func(cmd *cli.Command, name string) bool { return lookupFlag(cmd.Flags, name) != nil }
	tests := []struct {
		cmd          string
		stores       bool
		cacheFlags   bool
		tuningFlags  bool
		logLevelWant string
	}{
		{"mount", true, true, true, "info"},
		{"ls", true, true, false, "warn"},
		{"import", true, true, false, "warn"},
		{"check", true, false, false, "warn"},
		{"serve", false, false, false, "info"},
	}
	for _, tc := range tests {
		cmd := app.Command(tc.cmd)
		for _, f := range []string{"store", "store-file", "ca-cert"} {
			if has(cmd, f) != tc.stores {
				t.Errorf("%s --%s: %v, want %v", tc.cmd, f, has(cmd, f), tc.stores)
			}
		}
		for _, f := range []string{"cache-dir", "cache-size", "cache-min-free", "ttl"} {
			if has(cmd, f) != tc.cacheFlags {
				t.Errorf("%s --%s: %v, want %v", tc.cmd, f, has(cmd, f), tc.cacheFlags)
			}
		}
		for _, f := range []string{"retry-window", "buffer-size", "direct-io", "verify", "chunk-size"} {
			if has(cmd, f) != tc.tuningFlags {
				t.Errorf("%s --%s: %v, want %v", tc.cmd, f, has(cmd, f), tc.tuningFlags)
			}
		}
		if f, ok := lookupFlag(cmd.Flags, "log-level").(*cli.StringFlag); !ok || f.Value != tc.logLevelWant {
			t.Errorf("%s --log-level default: %v, want %s", tc.cmd, f, tc.logLevelWant)
		}
	}
}

// TestStoreConfigWithoutMountFlags: a command without the tuning flags
// (ls, import) reads with their defaults: verified, the default retry
// window and buffers, never the zero values of flags it does not have.
func TestStoreConfigWithoutMountFlags(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	app := newApp(func() {})
	for _, name := range []string{"ls", "import", "mount"} {
		cmd := app.Command(name)
		set := flag.NewFlagSet(name, flag.ContinueOnError)
		set.SetOutput(io.Discard)
		for _, f := range cmd.Flags {
			if err := f.Apply(set); err != nil {
				t.Fatal(err)
			}
		}
		if err := set.Parse([]string{"--store", "http://127.0.0.1:1/"}); err != nil {
			t.Fatal(err)
		}
		cfg, err := storeConfigFrom(cli.NewContext(app, set, nil))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.NoVerify || cfg.WriteBehind || cfg.RetryWindow != engine.DefaultRetryWindow || cfg.BufferSize != engine.DefaultBufferBudget ||
			cfg.ReadParallel != engine.DefaultParallel || cfg.ChunkSize != engine.DefaultChunkSize {
			t.Errorf("%s: %+v, want the engine's defaults", name, cfg)
		}
	}
}
