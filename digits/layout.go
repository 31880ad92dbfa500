package digits

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Job file names, as the DIGITS upload tasks name them
// (digits/pretrained_model/tasks/*_upload.py).
const (
	CaffeWeights     = "model.caffemodel"
	CaffeModelDef    = "original.prototxt"
	CaffePythonLayer = "digits_python_layers.py"
	TorchWeights     = "_Model.t7"
	TorchModelDef    = "original.lua"
	// TensorflowWeights is the checkpoint prefix; the job holds its three parts.
	TensorflowWeights  = "snapshot.ckpt"
	TensorflowModelDef = "network.py"
	LabelsFile         = "labels.txt"
	StatusFile         = "status.pickle"
)

// TensorflowSuffixes are the parts of a TensorFlow checkpoint DIGITS copies
// (TensorflowUploadTask.run), appended to the checkpoint prefix.
var TensorflowSuffixes = []string{".data-00000-of-00001", ".index", ".meta"}

// WeightsName returns the job name of the weights for framework fw
// ("snapshot.ckpt", the checkpoint prefix, for tensorflow), "" if unknown.
func WeightsName(fw string) string {
	switch fw {
	case Caffe:
		return CaffeWeights
	case Torch:
		return TorchWeights
	case Tensorflow:
		return TensorflowWeights
	}
	return ""
}

// ModelDefName returns the job name of the model definition for framework fw, "" if unknown.
func ModelDefName(fw string) string {
	switch fw {
	case Caffe:
		return CaffeModelDef
	case Torch:
		return TorchModelDef
	case Tensorflow:
		return TensorflowModelDef
	}
	return ""
}

// JobFile is one file of the job folder.
type JobFile struct {
	JobName    string // name in the job folder, e.g. "model.caffemodel"
	RemoteName string // name relative to the model folder on the store, e.g. "snapshot_iter_28140.caffemodel"
	Required   bool   // import impossible without it (weights, model definition)
}

// ErrUnsafeName is wrapped by every error of SafeRelName.
var ErrUnsafeName = errors.New("unsafe file name")

// SafeRelName reports whether a remote file name taken from info.json or
// aux.json is safe to use, both as a file name in the mounted folder and as
// one path segment of a store URL. It accepts only a single segment: non-empty,
// not "." or "..", no "/" or "\", no NUL or other control character (C0, DEL,
// C1), valid UTF-8, at most 255 bytes, and not starting like an absolute URL
// or a drive ("http:", "file:", "C:": a letter, then letters, digits, "+",
// "-" or ".", then ':'). The error wraps ErrUnsafeName and says why.
//
// Accepted names may still hold characters that are special in URLs
// ('%', '?', '#'): escape them when building a URL.
func SafeRelName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrUnsafeName, truncateForMessage(name), why)
	}
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrUnsafeName)
	case name == "." || name == "..":
		return bad("is a relative directory reference")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("is %d bytes long, more than %d", len(name), MaxNameLen))
	case !utf8.ValidString(name):
		return bad("is not valid UTF-8")
	case hasURLScheme(name):
		return bad("looks like an absolute URL or drive")
	case strings.Contains(name, "/"):
		return bad(`contains "/"`)
	case strings.Contains(name, `\`):
		return bad(`contains "\"`)
	}
	for _, r := range name {
		if r == 0 {
			return bad("contains NUL")
		}
		if unicode.IsControl(r) {
			return bad("contains a control character")
		}
	}
	return nil
}

// hasURLScheme reports whether name starts with scheme ":" (RFC 3986:
// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":").
func hasURLScheme(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// truncateForMessage keeps error messages short for hostile names.
func truncateForMessage(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Layout returns the job files for info, per framework:
//
//   - caffe: model.caffemodel <- "snapshot file" (required), original.prototxt
//     <- "model file" (required), labels.txt <- "labels file",
//     digits_python_layers.py <- "python layer file" (digits_python_layers.pyc
//     when the remote name ends in ".pyc", as DIGITS copies either);
//   - torch: _Model.t7 (required), original.lua (required), labels.txt;
//   - tensorflow: snapshot.ckpt.data-00000-of-00001, snapshot.ckpt.index,
//     snapshot.ckpt.meta (all required), fetched as <snapshot file> plus the
//     same suffix (a "snapshot file" already ending in one of the three
//     suffixes is stripped first), network.py <- "model file" (required),
//     labels.txt.
//
// Then the Extra files, in sorted key order, under their own remote names
// (JobName == RemoteName, Required false), skipping any whose name is
// already used in the list, either as a job name or as a remote name (which
// the mount shows as a symlink to the job-named file).
//
// Remote names are validated with SafeRelName: an unsafe required name is a
// Blocker problem (the error is a Problems wrapping ErrNotImportable); an
// unsafe optional one is left out and described in dropped (a Warning with
// LeftOut set), as is, without LeftOut, an extra file hidden by a job file of
// the same name but a different remote file.
func Layout(info *Info) (files []JobFile, dropped []*Problem, err error) {
	if info == nil {
		return nil, nil, Problems{{Severity: Blocker, File: InfoFile, Msg: "no info.json"}}
	}
	var problems Problems
	block := func(key, msg string) {
		problems = append(problems, &Problem{Severity: Blocker, File: InfoFile, Key: key, Msg: msg})
	}
	unsafe := func(key, remote string, err error) *Problem {
		return &Problem{Severity: Blocker, Code: CodeUnsafeName, File: remote, Key: key, LeftOut: true,
			Msg: fmt.Sprintf("info.json %q: %v", key, err)}
	}
	add := func(key, jobName, remote string, required bool) {
		if remote == "" {
			if required {
				block(key, fmt.Sprintf("info.json has no %q", key))
			}
			return
		}
		if err := SafeRelName(remote); err != nil {
			p := unsafe(key, remote, err)
			if required {
				problems = append(problems, p)
			} else {
				p.Severity = Warning
				dropped = append(dropped, p)
			}
			return
		}
		files = append(files, JobFile{JobName: jobName, RemoteName: remote, Required: required})
	}

	switch info.Framework {
	case Caffe:
		add(KeySnapshotFile, CaffeWeights, info.SnapshotFile, true)
		add(KeyModelFile, CaffeModelDef, info.ModelFile, true)
		add(KeyLabelsFile, LabelsFile, info.LabelsFile, false)
		pl := CaffePythonLayer
		if strings.HasSuffix(info.PythonLayerFile, ".pyc") {
			pl += "c"
		}
		add(KeyPythonLayerFile, pl, info.PythonLayerFile, false)
	case Torch:
		add(KeySnapshotFile, TorchWeights, info.SnapshotFile, true)
		add(KeyModelFile, TorchModelDef, info.ModelFile, true)
		add(KeyLabelsFile, LabelsFile, info.LabelsFile, false)
	case Tensorflow:
		prefix := info.SnapshotFile
		for _, suf := range TensorflowSuffixes {
			if strings.HasSuffix(prefix, suf) && len(prefix) > len(suf) {
				prefix = strings.TrimSuffix(prefix, suf)
				break
			}
		}
		if prefix == "" {
			add(KeySnapshotFile, TensorflowWeights, "", true)
		} else if err := SafeRelName(prefix); err != nil {
			problems = append(problems, unsafe(KeySnapshotFile, prefix, err))
		} else {
			for _, suf := range TensorflowSuffixes {
				add(KeySnapshotFile, TensorflowWeights+suf, prefix+suf, true)
			}
		}
		add(KeyModelFile, TensorflowModelDef, info.ModelFile, true)
		add(KeyLabelsFile, LabelsFile, info.LabelsFile, false)
	case "":
		block(KeyFramework, fmt.Sprintf("info.json has no %q", KeyFramework))
	default:
		block(KeyFramework, fmt.Sprintf("framework %q is not one of caffe, torch, tensorflow", info.Framework))
	}
	if len(problems) > 0 {
		return nil, dropped, problems
	}

	keys := make([]string, 0, len(info.Extra))
	for k := range info.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		remote := info.Extra[key]
		if err := SafeRelName(remote); err != nil {
			p := unsafe(key, remote, err)
			p.Severity = Warning
			dropped = append(dropped, p)
			continue
		}
		if f, clash := nameInUse(files, remote); clash {
			if f.RemoteName != remote {
				// The folder shows a file of that name (the job file), so
				// this is not "left out" but "not shown under its name".
				dropped = append(dropped, &Problem{Severity: Warning, Code: CodeNameTaken, File: remote, Key: key,
					Msg: fmt.Sprintf("info.json %q: %q is the job file made from %q, not this file", key, remote, f.RemoteName)})
			}
			continue
		}
		files = append(files, JobFile{JobName: remote, RemoteName: remote})
	}
	return files, dropped, nil
}

// nameInUse returns the file whose job or remote name is name.
func nameInUse(files []JobFile, name string) (JobFile, bool) {
	for _, f := range files {
		if f.JobName == name || f.RemoteName == name {
			return f, true
		}
	}
	return JobFile{}, false
}
