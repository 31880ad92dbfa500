package remote

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Sums is a store's SHA256SUMS as a mount keeps it: compact and sorted
// (a store of a hundred thousand models names about 600,000 files: one
// string of names and one of digests, not a map of 600,000 entries).
type Sums struct {
	names string   // the paths, sorted, end to end
	ends  []uint32 // ends[i] is where path i ends in names
	sums  string   // 32 bytes per path
	Bad   int      // malformed lines skipped
}

// NewSums reads a SHA256SUMS file into Sums. A path named twice with two
// digests is refused (the file is not to be trusted).
func NewSums(data []byte) (*Sums, error) {
	type line struct {
		name string
		sum  string
	}
	var lines []line
	bad, err := eachSum(data, func(name string, d Digest) error {
		lines = append(lines, line{name, d.Sum})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].name < lines[j].name })
	s := &Sums{Bad: bad, ends: make([]uint32, 0, len(lines))}
	var names, sums strings.Builder
	for i, l := range lines {
		if i > 0 && lines[i-1].name == l.name {
			if lines[i-1].sum != l.sum {
				return nil, fmt.Errorf("%s: %s is listed twice with two digests", SumsFile, l.name)
			}
			continue
		}
		if names.Len()+len(l.name) > 1<<32-1 {
			return nil, fmt.Errorf("%s: %w", SumsFile, ErrTooLarge)
		}
		names.WriteString(l.name)
		sums.WriteString(l.sum)
		s.ends = append(s.ends, uint32(names.Len()))
	}
	s.names, s.sums = names.String(), sums.String()
	return s, nil
}

// Len is the number of paths.
func (s *Sums) Len() int {
	if s == nil {
		return 0
	}
	return len(s.ends)
}

func (s *Sums) name(i int) string {
	start := uint32(0)
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.names[start:s.ends[i]]
}

func (s *Sums) digest(i int) Digest {
	return Digest{Alg: AlgSHA256, Sum: s.sums[i*32 : i*32+32]}
}

// Lookup returns the SHA-256 the file names for path ("MODEL/FILE").
func (s *Sums) Lookup(path string) (Digest, bool) {
	if s == nil {
		return Digest{}, false
	}
	i := sort.Search(len(s.ends), func(i int) bool { return s.name(i) >= path })
	if i < len(s.ends) && s.name(i) == path {
		return s.digest(i), true
	}
	return Digest{}, false
}

// Find returns the paths the file names with digest d (a scan: asked
// only when a store fails and a mirror is looked for).
func (s *Sums) Find(d Digest) []string {
	if s == nil || d.Alg != AlgSHA256 {
		return nil
	}
	var out []string
	for i := range s.ends {
		if s.sums[i*32:i*32+32] == d.Sum {
			out = append(out, s.name(i))
		}
	}
	return out
}

// MaxSumsFile bounds a SHA256SUMS read (about a million lines).
const MaxSumsFile = 128 << 20

// FetchSums GETs the store's SHA256SUMS. A store without one answers
// ErrNotFound; prev (the last answer's validators) makes it conditional
// (ErrNotModified).
func (s *Store) FetchSums(ctx context.Context, prev *Meta) (*Sums, Meta, error) {
	data, meta, err := s.Fetch(ctx, prev, MaxSumsFile, SumsFile)
	if err != nil {
		return nil, meta, err
	}
	sums, err := NewSums(data)
	if err != nil {
		return nil, meta, fmt.Errorf("%s: %w", s.URL(SumsFile), err)
	}
	return sums, meta, nil
}
