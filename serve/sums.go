package serve

// SHA256SUMS: the store's digests in one file at its root (remote.SumsFile,
// sha256sum's format). The directory's own is served as a plain file; when
// it has none, NewServer's handler generates one from the digests it knows
// (all files once the background hashing is done). WriteSums writes one
// into the directory, for stores other servers (nginx, Apache, python)
// publish.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/modelstorefs/modelstorefs/remote"
)

// maxWalkDepth bounds how deep a model folder is walked.
const maxWalkDepth = 16

// storeFile is a regular file a SHA256SUMS lists.
type storeFile struct {
	name    string // as requested: slash-separated, relative to the root
	realRel string // resolved, relative to the root
	fi      os.FileInfo
}

// files returns every file of the model folders that would be served (no
// hidden names, no symlink leading outside the root, regular files only),
// sorted by name. A directory reached twice (symlinks) is walked once.
func (h *handler) files() ([]storeFile, error) {
	models, _, err := h.models()
	if err != nil {
		return nil, err
	}
	var out []storeFile
	seen := map[string]bool{}
	for _, m := range models {
		h.walk(m, 0, seen, &out)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (h *handler) walk(rel string, depth int, seen map[string]bool, out *[]storeFile) {
	real, realRel, fi, err := h.resolve(rel)
	if err != nil || !fi.IsDir() {
		return
	}
	h.walkDir(rel, real, realRel, depth, seen, out)
}

// walkDir is walk of the resolved directory real (realRel below the
// root). Plain files and directories in it are taken as they are: a
// resolve (an lstat of every component of the path) of each of the
// half million files of a large store took seconds; symlinks are
// resolved and checked.
func (h *handler) walkDir(rel, real, realRel string, depth int, seen map[string]bool, out *[]storeFile) {
	if seen[realRel] || depth > maxWalkDepth {
		return
	}
	seen[realRel] = true
	des, err := os.ReadDir(real)
	if err != nil {
		return
	}
	for _, de := range des {
		name := de.Name()
		if name[0] == '.' {
			continue
		}
		child := filepath.Join(rel, name)
		switch {
		case de.Type().IsRegular():
			if cfi, err := de.Info(); err == nil && cfi.Mode().IsRegular() {
				*out = append(*out, storeFile{name: filepath.ToSlash(child), realRel: filepath.Join(realRel, name), fi: cfi})
			}
		case de.IsDir():
			h.walkDir(child, filepath.Join(real, name), filepath.Join(realRel, name), depth+1, seen, out)
		default:
			_, crr, cfi, err := h.resolve(child)
			switch {
			case err != nil:
			case cfi.IsDir():
				h.walk(child, depth+1, seen, out)
			case cfi.Mode().IsRegular():
				*out = append(*out, storeFile{name: filepath.ToSlash(child), realRel: crr, fi: cfi})
			}
		}
	}
}

// hasOwnSums reports whether the directory has its own SHA256SUMS (or
// anything by that name: it is served, or refused, as it is).
func (h *handler) hasOwnSums() bool {
	_, err := os.Lstat(filepath.Join(h.root, remote.SumsFile))
	return !errors.Is(err, fs.ErrNotExist)
}

// serveGeneratedSums answers /SHA256SUMS when the handler generates it,
// and reports whether it did.
func (h *handler) serveGeneratedSums(w http.ResponseWriter, r *http.Request) bool {
	if h.digests == nil || h.hasOwnSums() {
		return false
	}
	fi, err := os.Stat(h.root)
	if err != nil {
		h.fail(w, r, fsError(err))
		return true
	}
	// Made once for the mounts that list the store at once: it walks
	// every file of the store.
	b, mod, err := h.docs.get(remote.SumsFile, fi.ModTime(), h.generatedSums)
	if err != nil {
		h.fail(w, r, err)
		return true
	}
	serveBytes(w, r, "text/plain; charset=utf-8", mod, b)
	return true
}

// generatedSums lists the files whose digest is known. Its date is the
// newest of their modification times and of the times their digests were
// computed, so that it changes whenever the list does.
func (h *handler) generatedSums() ([]byte, time.Time, error) {
	files, err := h.files()
	if err != nil {
		return nil, time.Time{}, err
	}
	sums := map[string]remote.Digest{}
	var names []string
	var mod time.Time
	for _, f := range files {
		e, ok := h.digests.get(FileETag(f.fi), f.realRel)
		if !ok {
			continue
		}
		sums[f.name] = remote.Digest{Alg: remote.AlgSHA256, Sum: string(e.Sum[:])}
		names = append(names, f.name)
		for _, t := range []time.Time{f.fi.ModTime(), e.At} {
			if t.After(mod) {
				mod = t
			}
		}
	}
	return remote.FormatSums(sums, names), mod, nil
}

// withGeneratedSums adds the generated SHA256SUMS to the root's listing.
func (h *handler) withGeneratedSums(entries []entry) []entry {
	if h.digests == nil || h.hasOwnSums() {
		return entries
	}
	return append(entries, entry{name: remote.SumsFile})
}

// Sums hashes every file of the store directory dir's model folders, the
// files the SHA256SUMS NewServer generates lists, and returns that file's
// contents and how many files it lists.
func Sums(ctx context.Context, dir string) ([]byte, int, error) {
	h, err := newHandler(dir, nil, configOf(nil))
	if err != nil {
		return nil, 0, err
	}
	files, err := h.files()
	if err != nil {
		return nil, 0, err
	}
	sums := map[string]remote.Digest{}
	names := make([]string, 0, len(files))
	for _, f := range files {
		_, sum, err := hashFile(ctx, h.root, f.realRel)
		if err != nil {
			return nil, 0, fmt.Errorf("hash %s: %w", filepath.Join(h.root, f.name), err)
		}
		sums[f.name] = remote.Digest{Alg: remote.AlgSHA256, Sum: string(sum[:])}
		names = append(names, f.name)
	}
	return remote.FormatSums(sums, names), len(names), nil
}

// WriteSums writes dir/SHA256SUMS (atomically) from Sums, and returns its
// path and how many files it lists.
func WriteSums(ctx context.Context, dir string) (string, int, error) {
	b, n, err := Sums(ctx, dir)
	if err != nil {
		return "", 0, err
	}
	file := filepath.Join(dir, remote.SumsFile)
	if err := writeAtomic(file, b); err != nil {
		return "", 0, err
	}
	return file, n, nil
}
