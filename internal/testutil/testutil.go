// Package testutil holds the small helpers the tests of several packages
// share, so that none keeps a copy of its own.
package testutil

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// UnderCI reports whether the tests run under CI (CI set, as .ci/run and
// most CI services do), where every prerequisite of a test is part of the
// machine: a missing one is a failure there, never a skip.
func UnderCI() bool { return os.Getenv("CI") != "" }

// SkipOrFail skips a test whose prerequisite (root, a tool, an address,
// an interpreter) this machine lacks, but fails it under CI: a suite that
// skipped there would pass without having tested. reason says what is
// missing and how to get it.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if UnderCI() {
		t.Fatalf("required under CI (CI is set): "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// WaitFor polls cond until it holds, failing the test after within (3 s
// when zero). It waits for an event the test cannot be told of directly;
// it never stands in for a time limit on the code under test.
func WaitFor(t testing.TB, what string, cond func() bool, within ...time.Duration) {
	t.Helper()
	limit := 3 * time.Second
	if len(within) > 0 {
		limit = within[0]
	}
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Ctx bounds a test's calls (5 s); it ends with the test.
func Ctx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Harmless reports whether text holds no control character (C0, DEL or
// C1) other than those in allowed; when it does, r is the first. Tests of
// what a terminal would show (models.tsv, welcome.txt, error.txt, the
// output of ls) use it.
func Harmless(text, allowed string) (r rune, ok bool) {
	for _, r := range text {
		if (r < 0x20 || (r >= 0x7f && r < 0xa0)) && !strings.ContainsRune(allowed, r) {
			return r, false
		}
	}
	return 0, true
}

// WriteTree writes files (slash paths -> content) below dir.
func WriteTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
