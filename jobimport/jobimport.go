// Package jobimport writes a store model into a new DIGITS job directory,
// as DIGITS' own "Import" button does, without a mount: the job-named
// files, the other files of the folder, and a status.pickle whose id is the
// new directory's name. The job appears atomically: it is assembled in a
// temporary directory inside the jobs directory and renamed at the end, so
// DIGITS never sees half a job; an interrupted import removes it, and what a
// killed one left is removed by the next import.
package jobimport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
)

// Options tune an import.
type Options struct {
	JobsDir string // DIGITS jobs directory (must exist)
	Name    string // job name; "" keeps info.json "name"
	// Progress, if set, is called as bytes arrive (done of total).
	Progress func(done, total int64)
	Now      func() time.Time // clock for the job id (tests)
}

// Result describes the new job.
type Result struct {
	ID    string // job id = directory name
	Dir   string // the job directory
	Bytes int64  // bytes of the files written
}

// ErrNotImportable is returned for models the store cannot give DIGITS.
var ErrNotImportable = errors.New("model cannot be imported")

// Import resolves model in store st and writes it as a new job: the
// folder is assembled in a temporary directory of the jobs directory,
// locked while in use, then renamed to a fresh job id (nothing partial is
// ever left under a job's name).
func Import(ctx context.Context, cat *cache.Catalog, st *cache.Store, model string, opt Options) (*Result, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if fi, err := os.Stat(opt.JobsDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("jobs directory %s: not a directory (%v)", opt.JobsDir, err)
	}
	// Sized: the verdict settled by every file's size (an empty weights
	// file), as the mount's status.pickle follows it.
	m, err := cat.Sized(ctx, st, model)
	if err != nil {
		return nil, err
	}
	if !m.Importable {
		// The same verdict as the mount's (no status.pickle) and ls's.
		return nil, fmt.Errorf("%s/%s: %w:\n  %s", st.Name, model, ErrNotImportable, strings.Join(m.ProblemLines(), "\n  "))
	}
	clearStaleImports(opt.JobsDir)
	tmp, err := os.MkdirTemp(opt.JobsDir, tmpPrefix)
	if err != nil {
		return nil, fmt.Errorf("jobs directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	// Held while importing: a later import clears only unlocked leftovers
	// (of an import that was killed).
	lock, err := lockDir(tmp)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	written, err := writeFiles(ctx, cat, m, tmp, opt.Progress)
	if err != nil {
		return nil, err
	}
	id, final, err := commit(tmp, m, opt)
	if err != nil {
		return nil, err
	}
	ok = true
	return &Result{ID: id, Dir: final, Bytes: written}, nil
}

// writeFiles writes the model's folder into dir, all but status.pickle
// (commit writes it, with the job's id): the store's files through the
// content cache, reporting progress, the in-memory ones and the symlinks.
// It returns the bytes of the store's files written.
func writeFiles(ctx context.Context, cat *cache.Catalog, m *cache.Model, dir string, report func(done, total int64)) (int64, error) {
	var total, done int64
	files := m.Files()
	for _, f := range files {
		if f.Kind == cache.KindRemote {
			total += f.Size()
		}
	}
	progress := func(n int64) {
		done += n
		if report != nil {
			report(done, total)
		}
	}
	progress(0)
	for i := range files {
		f := &files[i]
		path := filepath.Join(dir, f.Name)
		var err error
		switch {
		case f.Name == digits.StatusFile:
			// Written by commit, with the new id.
		case f.Kind == cache.KindSymlink:
			err = os.Symlink(f.Target, path)
		case f.Kind == cache.KindData:
			err = writeFile(path, f.Bytes())
		default:
			ref := cache.Ref{Store: m.Store, Model: m.Name, Name: f.Remote, Meta: f.Meta}
			err = copyRemote(ctx, cat, ref, path, progress)
		}
		if err != nil {
			return done, fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return done, nil
}

// commit gives the assembled folder tmp a job id: it writes the
// status.pickle of that id and takes the id by a rename that never
// replaces an existing job, trying another id when one is taken meanwhile.
func commit(tmp string, m *cache.Model, opt Options) (id, final string, err error) {
	for range 16 {
		id, err := newJobID(opt.JobsDir, opt.Now())
		if err != nil {
			return "", "", err
		}
		final := filepath.Join(opt.JobsDir, id)
		pickle, err := jobPickle(m, id, final, opt)
		if err != nil {
			return "", "", err
		}
		path := filepath.Join(tmp, digits.StatusFile)
		os.Remove(path)
		if err := writeFile(path, pickle); err != nil {
			return "", "", err
		}
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			continue // another job took the id in the meantime
		}
		if err != nil {
			return "", "", fmt.Errorf("jobs directory: %w", err)
		}
		return id, final, nil
	}
	return "", "", errors.New("jobs directory: no free job id")
}

// tmpPrefix names the directories imports assemble jobs in.
const tmpPrefix = ".modelstorefs-import-"

// lockDir holds an exclusive lock on directory dir until closed.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return f, nil
}

// clearStaleImports removes what killed imports left in jobsDir: their
// directories are no longer locked.
func clearStaleImports(jobsDir string) {
	dirs, _ := filepath.Glob(filepath.Join(jobsDir, tmpPrefix+"*"))
	for _, dir := range dirs {
		if l, err := lockDir(dir); err == nil {
			os.RemoveAll(dir)
			l.Close()
		}
	}
}

// jobPickle builds status.pickle for the new id from the model's layout.
func jobPickle(m *cache.Model, id, dir string, opt Options) ([]byte, error) {
	layout, _, err := digits.Layout(m.Info)
	if err != nil {
		return nil, err
	}
	var present []digits.JobFile
	for _, jf := range layout {
		if _, ok := m.File(jf.JobName); ok {
			present = append(present, jf)
		}
	}
	job := digits.NewJob(id, m.Info, present, filepath.Dir(dir), opt.Now())
	if opt.Name != "" {
		job.Name = opt.Name
	}
	return digits.StatusPickle(job)
}

// newJobID names a job as DIGITS does: local time and 4 hex digits,
// e.g. 20170124-101010-ab12; never one that exists.
func newJobID(jobsDir string, now time.Time) (string, error) {
	for range 16 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		id := now.Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
		if _, err := os.Lstat(filepath.Join(jobsDir, id)); errors.Is(err, os.ErrNotExist) {
			return id, nil
		}
	}
	return "", errors.New("no free job id")
}

func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyRemote copies a remote file through the content cache into path.
func copyRemote(ctx context.Context, cat *cache.Catalog, ref cache.Ref, path string, progress func(int64)) error {
	h, _, err := cat.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer h.Close()
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var off int64
	for off < h.Size() {
		n, err := h.ReadAt(ctx, buf[:min(int64(len(buf)), h.Size()-off)], off)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				out.Close()
				return werr
			}
			off += int64(n)
			progress(int64(n))
		}
		if err != nil && !(errors.Is(err, io.EOF) && off == h.Size()) {
			out.Close()
			return err
		}
		if n == 0 && err == nil {
			out.Close()
			return io.ErrUnexpectedEOF
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
