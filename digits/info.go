package digits

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotImportable is wrapped by every error saying that a store model cannot
// become a DIGITS Pretrained Model job (missing or malformed required keys,
// unknown framework, unsafe required file names).
var ErrNotImportable = errors.New("not importable")

// info.json keys.
const (
	KeyName            = "name"
	KeyFramework       = "framework"
	KeyUsername        = "username"
	KeyNote            = "note"
	KeyLicense         = "license"
	KeySnapshotFile    = "snapshot file"
	KeyModelFile       = "model file"
	KeyNetworkFile     = "network file"
	KeyLabelsFile      = "labels file"
	KeyPythonLayerFile = "python layer file"
	KeyCreationTime    = "creation time"
	KeyImageDimensions = "image dimensions"
)

// ExtraKeys are the info.json keys naming further files of a model that
// DIGITS ignores on import but that are worth keeping in the job folder.
// Sorted, so that iterating over them is deterministic.
var ExtraKeys = []string{"deploy file", "mean file", "solver file", "train_val file"}

// Frameworks DIGITS 6.x can import ("framework" values, lowercase).
const (
	Caffe      = "caffe"
	Torch      = "torch"
	Tensorflow = "tensorflow"
)

// KnownFramework reports whether fw (already lowercased) is one DIGITS can import.
func KnownFramework(fw string) bool {
	return fw == Caffe || fw == Torch || fw == Tensorflow
}

// Info is the parsed part of a store model's info.json that matters for import and listing.
type Info struct {
	Name, Framework string // Framework lowercased (and trimmed)
	Username        string // "" when absent
	Note, License   string // curator fields, "" when absent
	// Remote names ("" when absent); ModelFile falls back to "network file".
	SnapshotFile, ModelFile, LabelsFile, PythonLayerFile string
	// "deploy file", "mean file", "solver file", "train_val file" -> remote name, when present.
	Extra map[string]string
	// Parsed "creation time" ("2017-01-24 10:10:10.123456", also without
	// fraction), read as UTC since DIGITS writes a naive local time; zero if
	// absent or unparsable.
	CreationTime time.Time
	ImageDims    []int // "image dimensions" if a list of ints
}

// creationTimeLayouts are tried in order. Go's parser accepts a fractional
// second after the seconds field even when the layout has none.
var creationTimeLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	time.RFC3339Nano,
}

// ParseCreationTime parses a DIGITS "creation time" value (str(datetime),
// e.g. "2017-01-24 10:10:10.123456" or "2017-01-24 10:10:10"). Values
// without a zone are read as UTC.
func ParseCreationTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range creationTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// jsonType names the JSON type of a raw value, for error messages.
func jsonType(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// decodeObject unmarshals a JSON object into its raw members.
func decodeObject(data []byte, file string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, fmt.Errorf("%s is %s, want a JSON object", file, ute.Value)
		}
		return nil, fmt.Errorf("%s is not valid JSON: %v", file, err)
	}
	if m == nil { // the document was "null"
		return nil, fmt.Errorf("%s is null, want a JSON object", file)
	}
	return m, nil
}

// stringField reads key from m. present is false when the key is absent or
// null; err names the key when it holds something other than a string.
func stringField(m map[string]json.RawMessage, file, key string) (s string, present bool, err error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%s %q is %s, want a string", file, key, jsonType(raw))
	}
	return s, true, nil
}

// intList reads a JSON list of integers; ok is false for anything else.
func intList(raw json.RawMessage) ([]int, bool) {
	var items []json.RawMessage
	if jsonType(raw) != "a list" {
		return nil, false
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, false
	}
	out := make([]int, 0, len(items))
	for _, it := range items {
		if jsonType(it) != "a number" {
			return nil, false
		}
		v, err := json.Number(bytes.TrimSpace(it)).Int64()
		if err != nil || int64(int(v)) != v {
			return nil, false
		}
		out = append(out, int(v))
	}
	return out, true
}

// ParseInfo parses info.json. It never panics on hostile input; wrong types
// are errors naming the key.
//
// Invalid JSON, or JSON that is not an object, gives an error wrapping
// ErrNotImportable and a nil *Info. Otherwise the returned *Info is never
// nil: when a required key ("name", "framework", "snapshot file", "model
// file"/"network file") is missing, empty or has the wrong type, when the
// framework is not caffe/torch/tensorflow, or when any other key ParseInfo
// reads has the wrong type, the error wraps ErrNotImportable, its message
// lists every problem, and the *Info carries whatever fields were readable,
// for listing. A null value counts as absent. "creation time" and "image
// dimensions" are informational: a value that cannot be used is ignored.
func ParseInfo(data []byte) (*Info, error) {
	info, _, err := parseInfo(data)
	return info, err
}

// parseInfo is ParseInfo, also returning "framework" as written.
func parseInfo(data []byte) (_ *Info, rawFw string, _ error) {
	m, err := decodeObject(data, InfoFile)
	if err != nil {
		return nil, "", Problems{{Severity: Blocker, Code: CodeInfoNotJSON, File: InfoFile, Msg: err.Error()}}
	}
	p := &infoParser{m: m}
	info := &Info{}
	info.Name = p.get(KeyName, true)
	rawFw = p.get(KeyFramework, true)
	info.Framework = strings.ToLower(strings.TrimSpace(rawFw))
	if info.Framework != "" && !KnownFramework(info.Framework) {
		p.add(KeyFramework, fmt.Sprintf("%s %q is %q, want one of caffe, torch, tensorflow", InfoFile, KeyFramework, rawFw))
	}
	info.SnapshotFile = p.get(KeySnapshotFile, true)
	info.ModelFile = p.modelFile()
	info.LabelsFile = p.get(KeyLabelsFile, false)
	info.PythonLayerFile = p.get(KeyPythonLayerFile, false)
	info.Username = p.get(KeyUsername, false)
	info.Note = p.get(KeyNote, false)
	info.License = p.get(KeyLicense, false)
	info.Extra = p.extra()
	if s, present, err := stringField(m, InfoFile, KeyCreationTime); err == nil && present {
		if t, ok := ParseCreationTime(s); ok {
			info.CreationTime = t
		}
	}
	if raw, ok := m[KeyImageDimensions]; ok {
		if dims, ok := intList(raw); ok {
			info.ImageDims = dims
		}
	}
	return info, rawFw, p.problems.err()
}

// infoParser reads info.json's keys, collecting what is wrong with them.
type infoParser struct {
	m        map[string]json.RawMessage
	problems Problems
}

func (p *infoParser) add(key, msg string) {
	p.problems = append(p.problems, &Problem{Severity: Blocker, File: InfoFile, Key: key, Msg: msg})
}

// get reads a string key; a required one must be there and not blank.
func (p *infoParser) get(key string, required bool) string {
	s, present, err := stringField(p.m, InfoFile, key)
	switch {
	case err != nil:
		p.add(key, err.Error())
	case required && !present:
		p.add(key, fmt.Sprintf("%s has no %q", InfoFile, key))
	case required && strings.TrimSpace(s) == "":
		p.add(key, fmt.Sprintf("%s %q is empty", InfoFile, key))
	}
	return s
}

// modelFile reads the model definition's name: "model file" wins when
// present (as in DIGITS); "network file" is the DIGITS 4.x name of the
// same thing.
func (p *infoParser) modelFile() string {
	mf, mfPresent, mfErr := stringField(p.m, InfoFile, KeyModelFile)
	nf, nfPresent, nfErr := stringField(p.m, InfoFile, KeyNetworkFile)
	switch {
	case mfErr != nil:
		p.add(KeyModelFile, mfErr.Error())
	case mfPresent:
		if strings.TrimSpace(mf) == "" {
			p.add(KeyModelFile, fmt.Sprintf("%s %q is empty", InfoFile, KeyModelFile))
		}
		return mf
	case nfErr != nil:
		p.add(KeyNetworkFile, nfErr.Error())
	case nfPresent:
		if strings.TrimSpace(nf) == "" {
			p.add(KeyNetworkFile, fmt.Sprintf("%s %q is empty", InfoFile, KeyNetworkFile))
		}
		return nf
	default:
		p.add(KeyModelFile, fmt.Sprintf("%s has no %q (nor %q)", InfoFile, KeyModelFile, KeyNetworkFile))
	}
	return ""
}

// extra reads the optional file keys DIGITS knows beyond the required ones.
func (p *infoParser) extra() map[string]string {
	var out map[string]string
	for _, key := range ExtraKeys {
		s, present, err := stringField(p.m, InfoFile, key)
		if err != nil {
			p.add(key, err.Error())
			continue
		}
		if present {
			if out == nil {
				out = make(map[string]string)
			}
			out[key] = s
		}
	}
	return out
}

// Aux is aux.json.
type Aux struct{ License, Logo, Dataset string }

// ParseAux parses aux.json ({"license", "logo", "dataset"}, all optional
// strings; null counts as absent; other keys are ignored). Invalid JSON gives
// a nil *Aux. A key of the wrong type gives an error naming it, together with
// an *Aux holding the readable fields. The logo is a remote file name: check
// it with SafeRelName before use.
func ParseAux(data []byte) (*Aux, error) {
	const file = AuxFile
	m, err := decodeObject(data, file)
	if err != nil {
		return nil, Problems{{Severity: Warning, Code: CodeAuxNotJSON, File: file, Msg: err.Error()}}
	}
	aux := &Aux{}
	var problems Problems
	for _, f := range []struct {
		key string
		dst *string
	}{{"license", &aux.License}, {"logo", &aux.Logo}, {"dataset", &aux.Dataset}} {
		s, _, err := stringField(m, file, f.key)
		if err != nil {
			problems = append(problems, &Problem{Severity: Warning, File: file, Key: f.key, Msg: err.Error()})
			continue
		}
		*f.dst = s
	}
	return aux, problems.err()
}
