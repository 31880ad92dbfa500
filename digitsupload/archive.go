package digitsupload

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/digits"
)

// Tar framing: every member is a header, its content padded to a whole
// block, and the archive ends with two zero blocks.
const (
	tarBlock = 512
	tarEnd   = 2 * tarBlock
)

// member is one file of the archive, at its root.
type member struct {
	name string
	head []byte // the member's header block(s), as archive/tar writes them
	size int64
	data []byte    // in-memory content (info.json), or else
	ref  cache.Ref // a store file, read through the content cache
}

// archive is a model's tar, planned before a byte is sent.
type archive struct {
	members []member
	jobName string // the "name" info.json gives the job
}

// size is the exact length of the tar stream.
func (a *archive) size() int64 {
	n := int64(tarEnd)
	for _, m := range a.members {
		n += int64(len(m.head)) + m.size + padding(m.size)
	}
	return n
}

// padding fills a member's content up to a whole block.
func padding(size int64) int64 { return (tarBlock - size%tarBlock) % tarBlock }

// planArchive lays out model m as upload_archive needs it: the job files
// under their job names (model.caffemodel, snapshot.ckpt.index, ...), and
// an info.json naming exactly those. name, if set, replaces the job name.
func planArchive(m *cache.Model, name string) (*archive, error) {
	infoFile, ok := m.File(digits.InfoFile)
	if !ok || infoFile.Kind != cache.KindData || m.Info == nil {
		return nil, errors.New("the model has no info.json in memory")
	}
	layout, _, err := digits.Layout(m.Info)
	if err != nil {
		return nil, err
	}
	a := &archive{jobName: m.Info.Name}
	if name != "" {
		a.jobName = name
	}
	own := jobNames(m.Info.Framework)
	var shipped []string
	var files []member
	for _, jf := range layout {
		if !own[jf.JobName] {
			continue // an extra file (mean, deploy, ...): the upload ignores it
		}
		f, ok := m.File(jf.JobName)
		if !ok || f.Kind != cache.KindRemote {
			if jf.Required {
				return nil, fmt.Errorf("%s is not in the model folder", jf.JobName)
			}
			continue
		}
		shipped = append(shipped, jf.JobName)
		fm, err := newMember(jf.JobName, f.Size(), f.ModTime)
		if err != nil {
			return nil, err
		}
		fm.ref = cache.Ref{Store: m.Store, Model: m.Name, Name: f.Remote, Meta: f.Meta}
		files = append(files, fm)
	}
	info, err := archiveInfo(infoFile.Data, m.Info.Framework, a.jobName, shipped)
	if err != nil {
		return nil, err
	}
	im, err := newMember(digits.InfoFile, int64(len(info)), infoFile.ModTime)
	if err != nil {
		return nil, err
	}
	im.data = info
	a.members = append([]member{im}, files...)
	return a, nil
}

// jobNames are the file names DIGITS' upload task of framework fw takes.
func jobNames(fw string) map[string]bool {
	names := map[string]bool{digits.LabelsFile: true, digits.ModelDefName(fw): true}
	switch fw {
	case digits.Tensorflow:
		for _, suf := range digits.TensorflowSuffixes {
			names[digits.TensorflowWeights+suf] = true
		}
	case digits.Caffe:
		names[digits.CaffeWeights] = true
		names[digits.CaffePythonLayer] = true
		names[digits.CaffePythonLayer+"c"] = true
	default:
		names[digits.WeightsName(fw)] = true
	}
	return names
}

// archiveInfo rewrites the store's info.json for the archive: the keys
// upload_archive reads name the files as the archive holds them, the
// framework is in lower case (DIGITS refuses "Caffe" and leaves an empty
// job folder behind), keys naming files left out are dropped; the other
// keys are kept as they are (DIGITS ignores them).
func archiveInfo(raw []byte, fw, name string, shipped []string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("info.json: %w", err)
	}
	for _, k := range append([]string{digits.KeyNetworkFile, digits.KeyLabelsFile, digits.KeyPythonLayerFile}, digits.ExtraKeys...) {
		delete(obj, k)
	}
	set := func(key, value string) {
		obj[key], _ = json.Marshal(value) // a string always marshals
	}
	set(digits.KeyName, name)
	set(digits.KeyFramework, fw)
	// TensorFlow: the checkpoint prefix; DIGITS appends the three suffixes.
	set(digits.KeySnapshotFile, digits.WeightsName(fw))
	set(digits.KeyModelFile, digits.ModelDefName(fw))
	for _, n := range shipped {
		switch n {
		case digits.LabelsFile:
			set(digits.KeyLabelsFile, n)
		case digits.CaffePythonLayer, digits.CaffePythonLayer + "c":
			// DIGITS takes the layer by this name, next to the weights; the
			// key only tells a reader of the archive.
			set(digits.KeyPythonLayerFile, n)
		}
	}
	out, err := json.MarshalIndent(obj, "", "    ")
	if err != nil {
		return nil, fmt.Errorf("info.json: %w", err)
	}
	return append(out, '\n'), nil
}

// newMember computes a member's tar header blocks once, so the planned
// length and the bytes sent cannot differ.
func newMember(name string, size int64, mtime time.Time) (member, error) {
	if mtime.Before(time.Unix(1, 0)) {
		mtime = time.Now()
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644,
		ModTime: mtime.Truncate(time.Second),
	})
	if err != nil {
		return member{}, fmt.Errorf("tar header of %s: %w", name, err)
	}
	// Not closed: that would add the end blocks, written once for all.
	return member{name: name, size: size, head: b.Bytes()}, nil
}

// zeros pads members and ends the archive.
var zeros [tarEnd]byte

// writeTo streams the tar to w, reading store files through content.
func (a *archive) writeTo(ctx context.Context, w io.Writer, content cache.Content) error {
	buf := make([]byte, copyBuffer)
	for _, m := range a.members {
		if _, err := w.Write(m.head); err != nil {
			return err
		}
		var err error
		if m.data != nil {
			_, err = w.Write(m.data)
		} else {
			err = copyFile(ctx, content, m.ref, m.size, w, buf)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if _, err := w.Write(zeros[:padding(m.size)]); err != nil {
			return err
		}
	}
	_, err := w.Write(zeros[:tarEnd])
	return err
}

// confirm has every store file's version named by the store's
// validators (a listing may give a size alone): the cache checks the bytes
// sent against them.
func (a *archive) confirm(ctx context.Context, cat *cache.Catalog) error {
	for i, m := range a.members {
		if m.data != nil {
			continue
		}
		ref, err := cat.Confirm(ctx, m.ref)
		if err != nil {
			return err
		}
		a.members[i].ref = ref
	}
	return nil
}

// copyBuffer is how much of a file is read from the cache at once.
const copyBuffer = 1 << 20

// errSizeChanged: the store's file is not the size the plan was made with.
var errSizeChanged = errors.New("the store's file changed size since the model was listed")

// copyFile copies exactly size bytes of ref to w.
func copyFile(ctx context.Context, content cache.Content, ref cache.Ref, size int64, w io.Writer, buf []byte) error {
	h, err := content.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer h.Close()
	if h.Size() != size {
		return fmt.Errorf("%w (%d bytes, then %d): touch the store's .refresh or run ls --refresh", errSizeChanged, size, h.Size())
	}
	var off int64
	for off < size {
		n, err := h.ReadAt(ctx, buf[:min(int64(len(buf)), size-off)], off)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			off += int64(n)
		}
		switch {
		case err != nil && !(errors.Is(err, io.EOF) && off == size):
			return err
		case n == 0 && err == nil:
			return io.ErrUnexpectedEOF
		}
	}
	return nil
}
