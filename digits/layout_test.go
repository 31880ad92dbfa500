package digits

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// layoutCase is a row of TestLayout: an info.json and the job files its
// Layout must give, and what it must drop (substrings, one per dropped
// entry).
type layoutCase struct {
	name        string
	info        Info
	want        []JobFile
	wantDropped []string
}

func TestLayout(t *testing.T) {
	tests := slices.Concat(layoutFrameworkCases(), layoutTensorflowSuffixCases(), layoutOddNameCases())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := tc.info
			files, dropped, err := Layout(&info)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(files, tc.want) {
				t.Errorf("files =\n%v\nwant\n%v", files, tc.want)
			}
			if len(dropped) != len(tc.wantDropped) {
				t.Fatalf("dropped = %q, want %d entries", dropped, len(tc.wantDropped))
			}
			for i, d := range tc.wantDropped {
				if !strings.Contains(dropped[i].Msg, d) {
					t.Errorf("dropped[%d] = %q, want it to contain %q", i, dropped[i], d)
				}
			}
		})
	}
}

// layoutFrameworkCases are each framework's layouts, full and minimal.
func layoutFrameworkCases() []layoutCase {
	return []layoutCase{
		{
			name: "caffe lenet",
			info: Info{Framework: Caffe, SnapshotFile: "snapshot_iter_28140.caffemodel", ModelFile: "original.prototxt",
				LabelsFile: "labels.txt", PythonLayerFile: "my_layers.py",
				Extra: map[string]string{"train_val file": "train_val.prototxt", "deploy file": "deploy.prototxt",
					"mean file": "mean.binaryproto", "solver file": "solver.prototxt"}},
			want: []JobFile{
				{"model.caffemodel", "snapshot_iter_28140.caffemodel", true},
				{"original.prototxt", "original.prototxt", true},
				{"labels.txt", "labels.txt", false},
				{"digits_python_layers.py", "my_layers.py", false},
				{"deploy.prototxt", "deploy.prototxt", false},
				{"mean.binaryproto", "mean.binaryproto", false},
				{"solver.prototxt", "solver.prototxt", false},
				{"train_val.prototxt", "train_val.prototxt", false},
			},
		},
		{
			name: "caffe minimal",
			info: Info{Framework: Caffe, SnapshotFile: "w.caffemodel", ModelFile: "net.prototxt"},
			want: []JobFile{
				{"model.caffemodel", "w.caffemodel", true},
				{"original.prototxt", "net.prototxt", true},
			},
		},
		{
			name: "caffe pyc python layer",
			info: Info{Framework: Caffe, SnapshotFile: "w", ModelFile: "m", PythonLayerFile: "digits_python_layers.pyc"},
			want: []JobFile{
				{"model.caffemodel", "w", true},
				{"original.prototxt", "m", true},
				{"digits_python_layers.pyc", "digits_python_layers.pyc", false},
			},
		},
		{
			name: "torch",
			info: Info{Framework: Torch, SnapshotFile: "snapshot_30_Model.t7", ModelFile: "model.lua", LabelsFile: "labels.txt",
				PythonLayerFile: "ignored.py", Extra: map[string]string{"mean file": "mean.jpg"}},
			want: []JobFile{
				{"_Model.t7", "snapshot_30_Model.t7", true},
				{"original.lua", "model.lua", true},
				{"labels.txt", "labels.txt", false},
				{"mean.jpg", "mean.jpg", false},
			},
		},
		{
			name: "torch no labels",
			info: Info{Framework: Torch, SnapshotFile: "s.t7", ModelFile: "m.lua"},
			want: []JobFile{{"_Model.t7", "s.t7", true}, {"original.lua", "m.lua", true}},
		},
		{
			name: "tensorflow prefix",
			info: Info{Framework: Tensorflow, SnapshotFile: "snapshot_30.ckpt", ModelFile: "network.py", LabelsFile: "labels.txt"},
			want: []JobFile{
				{"snapshot.ckpt.data-00000-of-00001", "snapshot_30.ckpt.data-00000-of-00001", true},
				{"snapshot.ckpt.index", "snapshot_30.ckpt.index", true},
				{"snapshot.ckpt.meta", "snapshot_30.ckpt.meta", true},
				{"network.py", "network.py", true},
				{"labels.txt", "labels.txt", false},
			},
		},
	}
}

// layoutTensorflowSuffixCases: a TensorFlow snapshot named by one of its
// files (TensorflowSuffixes) is the checkpoint's prefix.
func layoutTensorflowSuffixCases() []layoutCase {
	var tests []layoutCase
	for _, suffix := range TensorflowSuffixes {
		tests = append(tests, layoutCase{
			name: "tensorflow strips " + suffix,
			info: Info{Framework: Tensorflow, SnapshotFile: "snap_7.ckpt" + suffix, ModelFile: "net.py"},
			want: []JobFile{
				{"snapshot.ckpt.data-00000-of-00001", "snap_7.ckpt.data-00000-of-00001", true},
				{"snapshot.ckpt.index", "snap_7.ckpt.index", true},
				{"snapshot.ckpt.meta", "snap_7.ckpt.meta", true},
				{"network.py", "net.py", true},
			},
		})
	}
	return tests
}

// layoutOddNameCases: extras whose names collide with job or remote names
// or with each other, and unsafe optional names.
func layoutOddNameCases() []layoutCase {
	return []layoutCase{
		{
			name: "extras colliding with job and remote names",
			info: Info{Framework: Caffe, SnapshotFile: "snap.caffemodel", ModelFile: "train_val.prototxt", LabelsFile: "labels.txt",
				Extra: map[string]string{
					"deploy file":    "model.caffemodel",   // a job name, different remote: dropped with a reason
					"mean file":      "labels.txt",         // same file as labels: silently skipped
					"solver file":    "snap.caffemodel",    // remote name of the weights (a symlink): skipped
					"train_val file": "train_val.prototxt", // the model file itself: skipped
				}},
			want: []JobFile{
				{"model.caffemodel", "snap.caffemodel", true},
				{"original.prototxt", "train_val.prototxt", true},
				{"labels.txt", "labels.txt", false},
			},
			wantDropped: []string{`"deploy file": "model.caffemodel" is the job file made from "snap.caffemodel"`},
		},
		{
			name: "two extras with one name",
			info: Info{Framework: Caffe, SnapshotFile: "s", ModelFile: "m",
				Extra: map[string]string{"deploy file": "x.prototxt", "solver file": "x.prototxt"}},
			want: []JobFile{{"model.caffemodel", "s", true}, {"original.prototxt", "m", true}, {"x.prototxt", "x.prototxt", false}},
		},
		{
			name: "unsafe optional names dropped",
			info: Info{Framework: Caffe, SnapshotFile: "s", ModelFile: "m", LabelsFile: "../labels.txt",
				PythonLayerFile: "/etc/passwd",
				Extra:           map[string]string{"mean file": "http://other-host/x", "deploy file": "a\nb", "solver file": ".."}},
			want:        []JobFile{{"model.caffemodel", "s", true}, {"original.prototxt", "m", true}},
			wantDropped: []string{`"labels file"`, `"python layer file"`, `"deploy file"`, `"mean file"`, `"solver file"`},
		},
	}
}

func TestLayoutNotImportable(t *testing.T) {
	tests := []struct {
		name    string
		info    *Info
		wantMsg []string
	}{
		{"nil info", nil, []string{"no info.json"}},
		{"no framework", &Info{SnapshotFile: "s", ModelFile: "m"}, []string{`no "framework"`}},
		{"unknown framework", &Info{Framework: "mxnet", SnapshotFile: "s", ModelFile: "m"}, []string{`"mxnet"`}},
		{"uppercase framework not normalized here", &Info{Framework: "Caffe", SnapshotFile: "s", ModelFile: "m"}, []string{`"Caffe"`}},
		{"no snapshot", &Info{Framework: Caffe, ModelFile: "m"}, []string{`no "snapshot file"`}},
		{"no model", &Info{Framework: Torch, SnapshotFile: "s"}, []string{`no "model file"`}},
		{"tf no snapshot", &Info{Framework: Tensorflow, ModelFile: "m"}, []string{`no "snapshot file"`}},
		{"dotdot snapshot", &Info{Framework: Caffe, SnapshotFile: "..", ModelFile: "m"}, []string{`"snapshot file"`, "relative directory"}},
		{"traversal snapshot", &Info{Framework: Caffe, SnapshotFile: "../../etc/passwd", ModelFile: "m"}, []string{`contains "/"`}},
		{"absolute model", &Info{Framework: Torch, SnapshotFile: "s", ModelFile: "/etc/passwd"}, []string{`"model file"`, `contains "/"`}},
		{"url model", &Info{Framework: Caffe, SnapshotFile: "s", ModelFile: "http://other-host/x"}, []string{"absolute URL"}},
		{"tf traversal", &Info{Framework: Tensorflow, SnapshotFile: "../ckpt", ModelFile: "n.py"}, []string{`"snapshot file"`}},
		{"tf prefix too long with suffix", &Info{Framework: Tensorflow, SnapshotFile: strings.Repeat("x", 250), ModelFile: "n.py"},
			[]string{"more than 255"}},
		{"both bad", &Info{Framework: Caffe, SnapshotFile: "a/b", ModelFile: "c\x00d"}, []string{`"snapshot file"`, `"model file"`, "NUL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, _, err := Layout(tc.info)
			if !errors.Is(err, ErrNotImportable) {
				t.Fatalf("err = %v, want ErrNotImportable", err)
			}
			if files != nil {
				t.Errorf("files = %v, want none", files)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestSafeRelName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		why  string
	}{
		{"snapshot_iter_28140.caffemodel", true, ""},
		{"labels.txt", true, ""},
		{"%2e%2e", true, ""}, // literally these characters: a safe single segment (escape '%' in URLs)
		{"...", true, ""},
		{".hidden", true, ""},
		{"with space.txt", true, ""},
		{"réseau-日本.caffemodel", true, ""},
		{"a?b#c", true, ""},
		{"snap_iter:1", true, ""}, // '_' ends the would-be scheme
		{strings.Repeat("a", 255), true, ""},

		{"", false, "empty"},
		{".", false, "relative directory"},
		{"..", false, "relative directory"},
		{"../../etc/passwd", false, `"/"`},
		{"/etc/passwd", false, `"/"`},
		{"a/b", false, `"/"`},
		{"%2e%2e/x", false, `"/"`},
		{"a/", false, `"/"`},
		{`..\..\win.ini`, false, `"\"`},
		{`a\b`, false, `"\"`},
		{"a\x00b", false, "NUL"},
		{"a\nb", false, "control"},
		{"a\rb", false, "control"},
		{"tab\there", false, "control"},
		{"del\x7f", false, "control"},
		{"c1\u0085", false, "control"},
		{"bad\xffutf8", false, "UTF-8"},
		{strings.Repeat("a", 256), false, "more than 255"},
		{strings.Repeat("é", 150), false, "300 bytes"},
		{strings.Repeat("a", 300), false, "more than 255"},
		{"http://other-host/x", false, "absolute URL"},
		{"https:x", false, "absolute URL"},
		{"file:etc", false, "absolute URL"},
		{"C:evil", false, "absolute URL"},
		{"git+ssh:x", false, "absolute URL"},
	}
	for _, tc := range tests {
		err := SafeRelName(tc.name)
		if tc.ok {
			if err != nil {
				t.Errorf("SafeRelName(%q) = %v, want nil", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafeName) {
			t.Errorf("SafeRelName(%q) = %v, want ErrUnsafeName", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.why) {
			t.Errorf("SafeRelName(%q) = %q, want it to say %q", tc.name, err, tc.why)
		}
		if len(err.Error()) > 200 {
			t.Errorf("SafeRelName(%.20q...) error is %d bytes long", tc.name, len(err.Error()))
		}
	}
}
