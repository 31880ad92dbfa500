package check

// Verifying a store's SHA256SUMS against its bytes: every file it names is
// read whole (GET) and hashed, as the mount would verify it. Opt-in for
// URLs (WithSums): it reads the whole store.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/modelstorefs/modelstorefs/remote"
)

// WithSums verifies the store's SHA256SUMS, when it has one, against the
// bytes of every file it names.
func WithSums(on bool) Option { return func(c *config) { c.sums = on } }

// sumsResult is what verifying SHA256SUMS found: problems by model (the
// first segment of the path), and those of files at the root.
type sumsResult struct {
	store  []Problem
	models map[string][]Problem
}

// failed reports whether model has an error in its files' digests.
func (s sumsResult) failed(model string) bool {
	return slices.ContainsFunc(s.models[model], func(p Problem) bool { return p.Severity == Error })
}

// checkSums reads the store's SHA256SUMS and hashes every file it names.
// A store without one has nothing to verify.
func (c *checker) checkSums(ctx context.Context) sumsResult {
	res := sumsResult{models: map[string][]Problem{}}
	if !c.cfg.sums {
		return res
	}
	data, _, err := c.st.Fetch(ctx, nil, remote.MaxSumsFile, remote.SumsFile)
	switch {
	case errors.Is(err, remote.ErrNotFound):
		return res
	case err != nil:
		res.store = append(res.store, Problem{Severity: Warning, Message: fmt.Sprintf("%s could not be read: %v", remote.SumsFile, err)})
		return res
	}
	sums, bad, err := remote.ParseSums(data)
	if err != nil {
		res.store = append(res.store, Problem{Severity: Error, Message: err.Error()})
		return res
	}
	if bad > 0 {
		res.store = append(res.store, Problem{Severity: Warning, Message: fmt.Sprintf(
			"%s: %d malformed lines skipped (not \"<64 hex digits>  PATH\" with PATH below the store's root)", remote.SumsFile, bad)})
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	slices.Sort(names)
	found := make([]*Problem, len(names))
	sem := make(chan struct{}, c.cfg.parallel)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			found[i] = c.verify(ctx, name, sums[name])
		}()
	}
	wg.Wait()
	for _, p := range found {
		switch {
		case p == nil:
		case p.Model == "":
			res.store = append(res.store, *p)
		default:
			res.models[p.Model] = append(res.models[p.Model], *p)
		}
	}
	return res
}

// verify hashes one file named in SHA256SUMS; nil when its bytes match.
func (c *checker) verify(ctx context.Context, name string, want remote.Digest) *Problem {
	segs := strings.Split(name, "/")
	p := &Problem{Severity: Error}
	file := name
	if len(segs) > 1 {
		p.Model, file = segs[0], strings.Join(segs[1:], "/")
	}
	h := sha256.New()
	_, err := c.st.Download(ctx, h, remote.Meta{Size: -1}, segs...)
	got := remote.Digest{Alg: remote.AlgSHA256, Sum: string(h.Sum(nil))}
	switch {
	case errors.Is(err, remote.ErrNotFound):
		p.Message = fmt.Sprintf("%s: named in %s but missing", file, remote.SumsFile)
	case err != nil:
		p.Message = fmt.Sprintf("%s: could not be read to verify its digest: %v", file, err)
	case got != want:
		p.Message = fmt.Sprintf("%s: sha256 mismatch (%s says %x, the bytes are %x)", file, remote.SumsFile, want.Sum, got.Sum)
	default:
		return nil
	}
	p.Message = c.clean(p.Message)
	return p
}

// unlisted returns the problems of folders the listing does not name, in
// folder order.
func (s sumsResult) unlisted(listed []string) []Problem {
	var out []Problem
	for _, m := range slices.Sorted(maps.Keys(s.models)) {
		if !slices.Contains(listed, m) {
			out = append(out, s.models[m]...)
		}
	}
	return out
}
