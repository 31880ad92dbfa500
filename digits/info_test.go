package digits

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseInfoLeNet(t *testing.T) {
	info, err := ParseInfo([]byte(lenetInfoJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := &Info{
		Name: "LeNet (MNIST)", Framework: "caffe", Username: "luke",
		Note: "LeNet-5 trained 30 epochs", License: "",
		SnapshotFile: "snapshot_iter_28140.caffemodel", ModelFile: "original.prototxt", LabelsFile: "labels.txt",
		Extra: map[string]string{
			"deploy file": "deploy.prototxt", "mean file": "mean.binaryproto",
			"solver file": "solver.prototxt", "train_val file": "train_val.prototxt",
		},
		CreationTime: time.Date(2017, 1, 24, 10, 10, 10, 123456000, time.UTC),
		ImageDims:    []int{28, 28, 1},
	}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("ParseInfo =\n%+v\nwant\n%+v", info, want)
	}
}

// parseInfoCase is a row of TestParseInfo: an info.json and what ParseInfo
// must make of it.
type parseInfoCase struct {
	name string
	json string
	// notImportable: err must wrap ErrNotImportable and mention every wantMsg.
	notImportable bool
	nilInfo       bool
	wantMsg       []string
	check         func(t *testing.T, info *Info)
}

// infoBase are the keys of a minimal importable info.json, without braces.
const infoBase = `"name":"n","framework":"caffe","snapshot file":"s","model file":"m"`

func TestParseInfo(t *testing.T) {
	tests := slices.Concat(parseInfoImportable(), parseInfoNotImportable(), parseInfoNotAnObject())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseInfo([]byte(tc.json))
			switch {
			case tc.notImportable && !errors.Is(err, ErrNotImportable):
				t.Fatalf("err = %v, want ErrNotImportable", err)
			case !tc.notImportable && err != nil:
				t.Fatalf("err = %v", err)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if (info == nil) != tc.nilInfo {
				t.Fatalf("info = %+v, want nil: %v", info, tc.nilInfo)
			}
			if tc.check != nil && info != nil {
				tc.check(t, info)
			}
		})
	}
}

// parseInfoImportable are info.jsons ParseInfo accepts.
func parseInfoImportable() []parseInfoCase {
	return []parseInfoCase{
		{name: "minimal", json: `{` + infoBase + `}`, check: func(t *testing.T, info *Info) {
			if info.Name != "n" || info.Framework != "caffe" || info.SnapshotFile != "s" || info.ModelFile != "m" ||
				info.LabelsFile != "" || info.PythonLayerFile != "" || info.Username != "" || info.Extra != nil ||
				!info.CreationTime.IsZero() || info.ImageDims != nil {
				t.Errorf("%+v", info)
			}
		}},
		{name: "network file fallback", json: `{"name":"n","framework":"caffe","snapshot file":"s","network file":"net.prototxt"}`,
			check: func(t *testing.T, info *Info) {
				if info.ModelFile != "net.prototxt" {
					t.Errorf("ModelFile %q", info.ModelFile)
				}
			}},
		{name: "model file wins over network file", json: `{"name":"n","framework":"caffe","snapshot file":"s","model file":"a","network file":"b"}`,
			check: func(t *testing.T, info *Info) {
				if info.ModelFile != "a" {
					t.Errorf("ModelFile %q", info.ModelFile)
				}
			}},
		{name: "null model file falls back", json: `{"name":"n","framework":"caffe","snapshot file":"s","model file":null,"network file":"b"}`,
			check: func(t *testing.T, info *Info) {
				if info.ModelFile != "b" {
					t.Errorf("ModelFile %q", info.ModelFile)
				}
			}},
		{name: "uppercase framework", json: `{"name":"n","framework":" TensorFlow ","snapshot file":"s","model file":"m"}`,
			check: func(t *testing.T, info *Info) {
				if info.Framework != "tensorflow" {
					t.Errorf("Framework %q", info.Framework)
				}
			}},
		{name: "torch", json: `{"name":"n","framework":"Torch","snapshot file":"s","model file":"m","labels file":"l"}`,
			check: func(t *testing.T, info *Info) {
				if info.Framework != "torch" || info.LabelsFile != "l" {
					t.Errorf("%+v", info)
				}
			}},
		{name: "python layer and curator fields", json: `{` + infoBase + `,"python layer file":"digits_python_layers.py","license":"BSD","note":"hi","username":"ü"}`,
			check: func(t *testing.T, info *Info) {
				if info.PythonLayerFile != "digits_python_layers.py" || info.License != "BSD" || info.Note != "hi" || info.Username != "ü" {
					t.Errorf("%+v", info)
				}
			}},
		{name: "nulls count as absent", json: `{` + infoBase + `,"labels file":null,"username":null,"deploy file":null,"note":null}`,
			check: func(t *testing.T, info *Info) {
				if info.LabelsFile != "" || info.Username != "" || info.Extra != nil {
					t.Errorf("%+v", info)
				}
			}},
		{name: "unknown keys ignored", json: `{` + infoBase + `,"children":[1,{"a":[]}],"status":5,"caffe flavor":{}}`},
	}
}

// parseInfoNotImportable are JSON objects that are no importable
// info.json: ParseInfo says why, and keeps what can be listed.
func parseInfoNotImportable() []parseInfoCase {
	return []parseInfoCase{
		{name: "unknown framework", json: `{"name":"n","framework":"mxnet","snapshot file":"s","model file":"m","note":"x"}`,
			notImportable: true, wantMsg: []string{`"framework"`, `"mxnet"`},
			check: func(t *testing.T, info *Info) {
				if info.Framework != "mxnet" || info.Name != "n" || info.Note != "x" {
					t.Errorf("%+v", info)
				}
			}},
		{name: "missing everything", json: `{}`, notImportable: true,
			wantMsg: []string{`no "name"`, `no "framework"`, `no "snapshot file"`, `no "model file" (nor "network file")`}},
		{name: "missing snapshot keeps listing fields", json: `{"name":"LeNet","framework":"caffe","model file":"m","note":"n","license":"l","username":"u","aux":1}`,
			notImportable: true, wantMsg: []string{`info.json has no "snapshot file"`},
			check: func(t *testing.T, info *Info) {
				if info.Name != "LeNet" || info.Note != "n" || info.License != "l" || info.Username != "u" || info.Framework != "caffe" {
					t.Errorf("%+v", info)
				}
			}},
		{name: "missing model file", json: `{"name":"n","framework":"caffe","snapshot file":"s"}`,
			notImportable: true, wantMsg: []string{`no "model file" (nor "network file")`}},
		{name: "empty name", json: `{"name":"  ","framework":"caffe","snapshot file":"s","model file":"m"}`,
			notImportable: true, wantMsg: []string{`"name" is empty`}},
		{name: "empty snapshot", json: `{"name":"n","framework":"caffe","snapshot file":"","model file":"m"}`,
			notImportable: true, wantMsg: []string{`"snapshot file" is empty`}},
		{name: "number name", json: `{"name":42,"framework":"caffe","snapshot file":"s","model file":"m"}`,
			notImportable: true, wantMsg: []string{`"name" is a number, want a string`}},
		{name: "list framework", json: `{"name":"n","framework":["caffe"],"snapshot file":"s","model file":"m"}`,
			notImportable: true, wantMsg: []string{`"framework" is a list`}},
		{name: "object snapshot", json: `{"name":"n","framework":"caffe","snapshot file":{"a":1},"model file":"m"}`,
			notImportable: true, wantMsg: []string{`"snapshot file" is an object`}},
		{name: "bool model file", json: `{"name":"n","framework":"caffe","snapshot file":"s","model file":true}`,
			notImportable: true, wantMsg: []string{`"model file" is a boolean`}},
		{name: "number network file", json: `{"name":"n","framework":"caffe","snapshot file":"s","network file":3}`,
			notImportable: true, wantMsg: []string{`"network file" is a number`}},
		{name: "null required key", json: `{"name":null,"framework":"caffe","snapshot file":"s","model file":"m"}`,
			notImportable: true, wantMsg: []string{`no "name"`}},
		{name: "wrong optional types", json: `{` + infoBase + `,"labels file":7,"python layer file":[],"username":1,"note":{},"license":false,"deploy file":["children"]}`,
			notImportable: true,
			wantMsg: []string{`"labels file" is a number`, `"python layer file" is a list`, `"username" is a number`,
				`"note" is an object`, `"license" is a boolean`, `"deploy file" is a list`},
			check: func(t *testing.T, info *Info) {
				if info.Name != "n" || info.SnapshotFile != "s" {
					t.Errorf("%+v", info)
				}
			}},
		{name: "children-like garbage", json: `{"msg":"store","children":["lenet","alexnet"]}`, notImportable: true,
			wantMsg: []string{`no "name"`}},
	}
}

// parseInfoNotAnObject are bodies that are not a JSON object: no Info.
func parseInfoNotAnObject() []parseInfoCase {
	return []parseInfoCase{
		{name: "invalid JSON", json: `{"name": "n",`, notImportable: true, nilInfo: true, wantMsg: []string{"not valid JSON"}},
		{name: "empty body", json: ``, notImportable: true, nilInfo: true},
		{name: "HTML 404 page", json: `<html><body>404 Not Found</body></html>`, notImportable: true, nilInfo: true},
		{name: "list", json: `["name","framework"]`, notImportable: true, nilInfo: true, wantMsg: []string{"want a JSON object"}},
		{name: "string", json: `"x"`, notImportable: true, nilInfo: true, wantMsg: []string{"want a JSON object"}},
		{name: "null", json: `null`, notImportable: true, nilInfo: true, wantMsg: []string{"null"}},
		{name: "deep nesting", json: `{"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`,
			notImportable: true, nilInfo: true},
	}
}

func TestParseInfoHuge(t *testing.T) {
	big := strings.Repeat("A", 10<<20)
	info, err := ParseInfo([]byte(`{"name":"` + big + `","framework":"caffe","snapshot file":"s","model file":"m","note":"` + big + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Name) != 10<<20 || len(info.Note) != 10<<20 {
		t.Errorf("lengths %d %d", len(info.Name), len(info.Note))
	}
	// A 10 MB snapshot name parses, but Layout refuses it (required, too long).
	info, err = ParseInfo([]byte(`{"name":"n","framework":"caffe","snapshot file":"` + big + `","model file":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Layout(info)
	if !errors.Is(err, ErrNotImportable) || len(err.Error()) > 1000 {
		t.Errorf("Layout: %.200v", err)
	}
	// The pickle of a job with a 10 MB name is valid (BINUNICODE, 32-bit length).
	info.SnapshotFile = "s"
	files, _, err := Layout(&Info{Name: big, Framework: Caffe, SnapshotFile: "s", ModelFile: "m"})
	if err != nil {
		t.Fatal(err)
	}
	b := mustPickle(t, NewJob("big", &Info{Name: big, Framework: Caffe}, files, "/jobs", time.Unix(1, 0)))
	_, js, _, _ := decodeJob(t, b)
	if js["_name"] != (pyStr{S: big, Unicode: true}) {
		t.Error("10 MB _name did not round-trip")
	}
}

func TestParseInfoCreationTime(t *testing.T) {
	tests := []struct {
		raw  string
		want time.Time
	}{
		{`"2017-01-24 10:10:10.123456"`, time.Date(2017, 1, 24, 10, 10, 10, 123456000, time.UTC)},
		{`"2017-01-24 10:10:10"`, time.Date(2017, 1, 24, 10, 10, 10, 0, time.UTC)},
		{`"2017-01-24T10:10:10.5"`, time.Date(2017, 1, 24, 10, 10, 10, 500000000, time.UTC)},
		{`"2017-01-24T10:10:10+01:00"`, time.Date(2017, 1, 24, 9, 10, 10, 0, time.UTC)},
		{`" 2017-01-24 10:10:10 "`, time.Date(2017, 1, 24, 10, 10, 10, 0, time.UTC)},
		{`"24/01/2017"`, time.Time{}},
		{`"2017-13-45 99:99:99"`, time.Time{}},
		{`""`, time.Time{}},
		{`1485252610`, time.Time{}},
		{`null`, time.Time{}},
		{`["2017-01-24 10:10:10"]`, time.Time{}},
	}
	for _, tc := range tests {
		info, err := ParseInfo([]byte(`{"name":"n","framework":"caffe","snapshot file":"s","model file":"m","creation time":` + tc.raw + `}`))
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if !info.CreationTime.Equal(tc.want) {
			t.Errorf("%s: CreationTime %v, want %v", tc.raw, info.CreationTime, tc.want)
		}
	}
}

func TestParseInfoImageDims(t *testing.T) {
	tests := []struct {
		raw  string
		want []int
	}{
		{`[28, 28, 1]`, []int{28, 28, 1}},
		{`[224,224,3]`, []int{224, 224, 3}},
		{`[]`, []int{}},
		{`[28.5, 28, 1]`, nil},
		{`["28", 28, 1]`, nil},
		{`[1e3]`, nil},
		{`[99999999999999999999999]`, nil},
		{`"28x28"`, nil},
		{`{"h":28}`, nil},
		{`null`, nil},
		{`[[28]]`, nil},
	}
	for _, tc := range tests {
		info, err := ParseInfo([]byte(`{"name":"n","framework":"caffe","snapshot file":"s","model file":"m","image dimensions":` + tc.raw + `}`))
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if !reflect.DeepEqual(info.ImageDims, tc.want) {
			t.Errorf("%s: ImageDims %#v, want %#v", tc.raw, info.ImageDims, tc.want)
		}
	}
}

func TestParseAux(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    *Aux
		wantErr []string
	}{
		{"reference", `{"license": "3-clause BSD license", "logo": "logo.png", "dataset": "MNIST"}`,
			&Aux{License: "3-clause BSD license", Logo: "logo.png", Dataset: "MNIST"}, nil},
		{"empty", `{}`, &Aux{}, nil},
		{"partial and extra keys", `{"logo":"l.png","affiliate":"NVIDIA","children":[1]}`, &Aux{Logo: "l.png"}, nil},
		{"nulls", `{"logo":null,"license":null}`, &Aux{}, nil},
		{"wrong types", `{"license":3,"logo":["a"],"dataset":"MNIST"}`, &Aux{Dataset: "MNIST"},
			[]string{`"license" is a number`, `"logo" is a list`}},
		{"invalid", `{"logo":`, nil, []string{"not valid JSON"}},
		{"not an object", `[1,2]`, nil, []string{"want a JSON object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			aux, err := ParseAux([]byte(tc.json))
			if (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("err = %v", err)
			}
			for _, m := range tc.wantErr {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if !reflect.DeepEqual(aux, tc.want) {
				t.Errorf("aux = %+v, want %+v", aux, tc.want)
			}
		})
	}
}
