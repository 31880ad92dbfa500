// Package testutil holds the small helpers the tests of several packages
// share, so that none keeps a copy of its own.
package testutil

import (
	"context"
	"testing"
	"time"
)

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
