package cache

import (
	"fmt"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// TestRefusedFileInErrorText: a file whose bytes the engine refused is
// named in its model's error.txt, with why (the filesystem is told);
// once it verifies, the next layout (a refresh) leaves it out.
func TestRefusedFileInErrorText(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	e := newEnv(t, srv, Config{})
	ctx := testutil.Ctx(t)
	var told int
	e.cat.OnModelChanged(func(_ *Store, model string) {
		if model == "lenet" {
			told++
		}
	})
	errorTxt := func() string {
		m, err := e.cat.Model(ctx, e.st, "lenet")
		if err != nil {
			t.Fatal(err)
		}
		f, ok := m.File(digits.ErrorFile)
		if !ok {
			return ""
		}
		return string(f.Data)
	}
	before := errorTxt()
	const weights = "snapshot_iter_28140.caffemodel"
	ref := Ref{Store: e.st, Model: "lenet", Name: weights}
	e.cat.fileRefused(ref, fmt.Errorf("%s: %w (expected sha-256:aa, got sha-256:bb)", ref.URL(), remote.ErrDigestMismatch))
	if got := errorTxt(); !strings.Contains(got, weights+": refused") || !strings.Contains(got, "expected sha-256:aa, got sha-256:bb") {
		t.Errorf("error.txt after a refusal:\n%s", got)
	}
	e.cat.fileRefused(ref, fmt.Errorf("another failure")) // not a refusal: nothing changes
	e.cat.fileRefused(ref, nil)
	// Verified: the folder keeps its error.txt (it may be being copied)
	// until it is laid out again.
	if got := errorTxt(); !strings.Contains(got, weights+": refused") {
		t.Errorf("error.txt right after the file verified:\n%s", got)
	}
	e.cat.Refresh(e.st)
	if got := errorTxt(); got != before {
		t.Errorf("error.txt after a refresh:\n%s\nwant as before:\n%s", got, before)
	}
	if told < 1 {
		t.Errorf("the folder was told changed %d times, want at least once", told)
	}
}
