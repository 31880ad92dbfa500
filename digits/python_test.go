package digits

// Load tests: real Python 2.7 (pickle and cPickle) and Python 3 unpickle
// the synthesized status.pickle against stand-in modules that mirror the
// DIGITS classes (old-style digits.status.Status in Python 2, new-style
// job and task classes with DIGITS's __getstate__/__setstate__), then
// re-pickle the job the way DIGITS's load_past_jobs does with job.save().

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// stubDir holds stand-in modules digits.status, digits.job, digits.task,
// digits.pretrained_model.job and digits.pretrained_model.tasks.* that
// mirror the attributes and (get|set)state behaviour described in
// reference section 3 (an old-style Status in Python 2, new-style job and
// task classes). The integration tests load copied job folders with them
// too (integration/testdata/load_jobs.py).
const stubDir = "testdata/digitsstub"

// loadScript loads every pickle named on the command line with every
// loader of the running Python and prints a JSON description.
const loadScript = `
from __future__ import print_function
import io, json, pickle, pickletools, sys, traceback
PY2 = sys.version_info[0] == 2
if PY2:
    import cPickle
    loaders = [('pickle', pickle.load), ('cPickle', cPickle.load)]
else:
    loaders = [('pickle', pickle.load), ('pickle._Unpickler', lambda f: pickle._Unpickler(f).load())]

def tname(v):
    return type(v).__name__

def hist(h):
    return [{'val': s.val, 'name': s.name, 'running': s.is_running(), 'type': tname(s),
             'class': s.__class__.__module__ + '.' + s.__class__.__name__,
             'time': t, 'time_type': tname(t)} for s, t in h]

def describe(job):
    task = job.tasks[0]
    d = {
        'job_class': type(job).__module__ + '.' + type(job).__name__,
        'job_state_keys': job._stub_state_keys,
        'job_status': job.status.name, 'job_running': job.status.is_running(),
        'id': job._id, 'id_type': tname(job._id),
        'name': job._name, 'name_type': tname(job._name),
        'username': job.username, 'username_type': tname(job.username),
        'framework': job.framework, 'framework_type': tname(job.framework),
        'image_info': job.image_info,
        'image_info_types': dict((k, tname(v)) for k, v in job.image_info.items()),
        'image_info_same': job.image_info is task.image_info,
        'job_history': hist(job.status_history),
        'persistent': job.persistent,
        'ntasks': len(job.tasks),
        'task_class': type(task).__module__ + '.' + type(task).__name__,
        'task_state_keys': task._stub_state_keys,
        'task_status': task.status.name, 'task_running': task.status.is_running(),
        'job_id': task.job_id, 'job_id_type': tname(task.job_id),
        'job_dir': task.job_dir, 'weights_path': task.weights_path,
        'model_def_path': task.model_def_path, 'labels_path': task.labels_path,
        'path_type': tname(task.weights_path),
        'progress': task.progress, 'progress_type': tname(task.progress),
        'pickver_task': task.pickver_task,
        'task_framework': task.framework,
        'task_nones': [k for k in ('parents', 'exception', 'traceback', 'framework', 'gpu', 'current_resources')
                       if getattr(task, k, 'missing') is None],
        'task_history': hist(task.status_history),
        'logger': task.logger,
    }
    # What DIGITS's load_past_jobs does next: job.save(), i.e. pickle.dump with
    # the default protocol, then a later load.
    again = pickle.loads(pickle.dumps(job))
    d['resave'] = [again._id, again.status.name, again.tasks[0].status.name, again._stub_state_keys]
    return d

class Null(object):
    def write(self, s):
        pass

out = {'python': sys.version.split()[0]}
for path in sys.argv[1:]:
    res = {}
    with open(path, 'rb') as f:
        data = f.read()
    try:
        pickletools.dis(data, out=Null())
        res['dis_ok'] = True
        res['proto_max'] = max(op.proto for op, arg, pos in pickletools.genops(data))
    except Exception:
        res['dis_ok'] = traceback.format_exc()
    for name, load in loaders:
        try:
            res[name] = describe(load(io.BytesIO(data)))
        except Exception:
            res[name] = {'error': traceback.format_exc()}
    out[path] = res
print(json.dumps(out))
`

// pyHist is one decoded status_history entry.
type pyHist struct {
	Val      string  `json:"val"`
	Name     string  `json:"name"`
	Running  bool    `json:"running"`
	Type     string  `json:"type"`
	Class    string  `json:"class"`
	Time     float64 `json:"time"`
	TimeType string  `json:"time_type"`
}

// pyDesc is what loadScript prints for one loaded pickle.
type pyDesc struct {
	Error          string            `json:"error"`
	JobClass       string            `json:"job_class"`
	JobStateKeys   []string          `json:"job_state_keys"`
	JobStatus      string            `json:"job_status"`
	JobRunning     bool              `json:"job_running"`
	ID             string            `json:"id"`
	IDType         string            `json:"id_type"`
	Name           string            `json:"name"`
	NameType       string            `json:"name_type"`
	Username       *string           `json:"username"`
	UsernameType   string            `json:"username_type"`
	Framework      string            `json:"framework"`
	FrameworkType  string            `json:"framework_type"`
	ImageInfo      map[string]any    `json:"image_info"`
	ImageInfoTypes map[string]string `json:"image_info_types"`
	ImageInfoSame  bool              `json:"image_info_same"`
	JobHistory     []pyHist          `json:"job_history"`
	Persistent     bool              `json:"persistent"`
	NTasks         int               `json:"ntasks"`
	TaskClass      string            `json:"task_class"`
	TaskStateKeys  []string          `json:"task_state_keys"`
	TaskStatus     string            `json:"task_status"`
	TaskRunning    bool              `json:"task_running"`
	JobID          string            `json:"job_id"`
	JobIDType      string            `json:"job_id_type"`
	JobDir         string            `json:"job_dir"`
	WeightsPath    string            `json:"weights_path"`
	ModelDefPath   string            `json:"model_def_path"`
	LabelsPath     *string           `json:"labels_path"`
	PathType       string            `json:"path_type"`
	Progress       float64           `json:"progress"`
	ProgressType   string            `json:"progress_type"`
	PickverTask    int               `json:"pickver_task"`
	TaskFramework  *string           `json:"task_framework"`
	TaskNones      []string          `json:"task_nones"`
	TaskHistory    []pyHist          `json:"task_history"`
	Logger         string            `json:"logger"`
	Resave         []any             `json:"resave"`
}

type loadCase struct {
	id       string
	info     *Info
	labels   bool
	taskPath string
	weights  string
	modelDef string
}

func loadCases(t *testing.T) []loadCase {
	lenet, err := ParseInfo([]byte(lenetInfoJSON))
	if err != nil {
		t.Fatal(err)
	}
	return []loadCase{
		{"lenet", lenet, true, "digits.pretrained_model.tasks.caffe_upload.CaffeUploadTask", "model.caffemodel", "original.prototxt"},
		{"alexnet", &Info{Name: "AlexNet", Framework: Torch, SnapshotFile: "s.t7", ModelFile: "model.lua"}, false,
			"digits.pretrained_model.tasks.torch_upload.TorchUploadTask", "_Model.t7", "original.lua"},
		{"inception", &Info{Name: "Inception v3", Framework: Tensorflow, SnapshotFile: "snapshot_1.ckpt", ModelFile: "network.py", LabelsFile: "l.txt", Username: "tf"}, true,
			"digits.pretrained_model.tasks.tensorflow_upload.TensorflowUploadTask", "snapshot.ckpt", "network.py"},
		{"20170124-101010-ab12", &Info{Name: "Réseau ü 日本語 🚀", Framework: Caffe, SnapshotFile: "w", ModelFile: "m", Username: "jürgen"}, false,
			"digits.pretrained_model.tasks.caffe_upload.CaffeUploadTask", "model.caffemodel", "original.prototxt"},
		{"long", &Info{Name: strings.Repeat("N", 300), Framework: Caffe, SnapshotFile: "w", ModelFile: "m", Username: strings.Repeat("u", 256)}, false,
			"digits.pretrained_model.tasks.caffe_upload.CaffeUploadTask", "model.caffemodel", "original.prototxt"},
	}
}

func TestPythonLoad(t *testing.T) {
	interpreters := []struct {
		version string
		py2     bool
		loaders []string
	}{
		{"2.7", true, []string{"pickle", "cPickle"}}, // the Python DIGITS runs on
		{"3", false, []string{"pickle", "pickle._Unpickler"}},
	}

	stubs, err := filepath.Abs(stubDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(stubs, "digits", "status.py")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t0 := time.Date(2017, 1, 24, 10, 10, 10, 123456000, time.UTC)
	want0 := 1485252610.123456
	cases := loadCases(t)
	args := writeLoadScript(t, dir, cases, t0)

	for _, py := range interpreters {
		t.Run("python"+py.version, func(t *testing.T) {
			path, err := testutil.Python(py.version)
			if err != nil {
				testutil.SkipOrFail(t, "%v", err)
			}
			res := runLoadScript(t, path, dir, stubs, args)
			for i, c := range cases {
				var perLoader map[string]json.RawMessage
				if err := json.Unmarshal(res[args[i+1]], &perLoader); err != nil {
					t.Fatalf("%s: %v", c.id, err)
				}
				if string(perLoader["dis_ok"]) != "true" || string(perLoader["proto_max"]) != "2" {
					t.Errorf("%s: pickletools: dis_ok=%s proto_max=%s", c.id, perLoader["dis_ok"], perLoader["proto_max"])
				}
				for _, loader := range py.loaders {
					var d pyDesc
					if err := json.Unmarshal(perLoader[loader], &d); err != nil {
						t.Fatalf("%s %s: %v: %s", c.id, loader, err, perLoader[loader])
					}
					if d.Error != "" {
						t.Errorf("%s %s: load failed:\n%s", c.id, loader, d.Error)
						continue
					}
					checkLoaded(t, c.id+" "+loader, py.py2, c, d, want0)
				}
			}
		})
	}
}

// writeLoadScript writes load.py and each case's status.pickle (created
// at t0) into dir, and returns the script's arguments: the script, then
// the pickles, in the order of cases.
func writeLoadScript(t *testing.T, dir string, cases []loadCase, t0 time.Time) []string {
	t.Helper()
	script := filepath.Join(dir, "load.py")
	if err := os.WriteFile(script, []byte(loadScript), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{script}
	for i, c := range cases {
		files, _, err := Layout(c.info)
		if err != nil {
			t.Fatal(err)
		}
		b := mustPickle(t, NewJob(c.id, c.info, files, "/jobs", t0))
		p := filepath.Join(dir, "case"+string(rune('0'+i))+".pickle")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	return args
}

// runLoadScript runs the interpreter at path on args in dir, with the
// DIGITS stubs on PYTHONPATH, and returns its JSON report: per pickle, per
// loader, what was loaded.
func runLoadScript(t *testing.T, path, dir, stubs string, args []string) map[string]json.RawMessage {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+stubs, "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s%s", path, err, out, stderr)
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("output: %v\n%s", err, out)
	}
	var version string
	_ = json.Unmarshal(res["python"], &version)
	t.Logf("%s is Python %s", path, version)
	return res
}

func checkLoaded(t *testing.T, what string, py2 bool, c loadCase, d pyDesc, want0 float64) {
	t.Helper()
	// Python 2 type names: ASCII SHORT_BINSTRING -> str, BINUNICODE -> unicode.
	l := &loadedCheck{t: t, what: what, py2: py2, want0: want0, str: "str", uni: "str"}
	if py2 {
		l.uni = "unicode"
	}
	l.job(c, d)
	l.histories(d)
	l.task(c, d)
}

// loadedCheck checks what a Python loaded (pyDesc) against the case it
// was written from; what names the case and loader in its errors.
type loadedCheck struct {
	t     *testing.T
	what  string
	py2   bool
	want0 float64 // the jobs' creation time
	// str and uni are the type names of SHORT_BINSTRING and BINUNICODE.
	str, uni string
}

func (l *loadedCheck) errorf(format string, args ...any) {
	l.t.Helper()
	l.t.Errorf(l.what+": "+format, args...)
}

// textType is the type a string of the job loads as: ASCII and short is
// written as a str.
func (l *loadedCheck) textType(s string) string {
	if len(s) < 256 && isASCII(s) {
		return l.str
	}
	return l.uni
}

// job checks the job's class, state keys, status, id, name, username,
// framework and image_info.
func (l *loadedCheck) job(c loadCase, d pyDesc) {
	l.t.Helper()
	if d.JobClass != "digits.pretrained_model.job.PretrainedModelJob" {
		l.errorf("job class %s", d.JobClass)
	}
	wantJobKeys := strings.Split(jobKeys, ",")
	if !reflect.DeepEqual(d.JobStateKeys, wantJobKeys) {
		l.errorf("job state keys %v, want %v", d.JobStateKeys, wantJobKeys)
	}
	if d.JobStatus != "Done" || d.JobRunning || d.TaskStatus != "Done" || d.TaskRunning {
		l.errorf("status job %s running=%v, task %s running=%v", d.JobStatus, d.JobRunning, d.TaskStatus, d.TaskRunning)
	}
	if d.ID != c.id || d.IDType != l.textType(c.id) || d.JobID != c.id || d.JobIDType != d.IDType {
		l.errorf("_id %q (%s), job_id %q (%s)", d.ID, d.IDType, d.JobID, d.JobIDType)
	}
	if d.Name != c.info.Name || d.NameType != l.uni {
		l.errorf("_name %.40q (%s)", d.Name, d.NameType)
	}
	if c.info.Username == "" {
		if d.Username != nil || d.UsernameType != "NoneType" {
			l.errorf("username %v (%s), want None", d.Username, d.UsernameType)
		}
	} else if d.Username == nil || *d.Username != c.info.Username || d.UsernameType != l.textType(c.info.Username) {
		l.errorf("username %v (%s)", d.Username, d.UsernameType)
	}
	if d.Framework != c.info.Framework || d.FrameworkType != l.str {
		l.errorf("framework %q (%s)", d.Framework, d.FrameworkType)
	}
	wantII := map[string]any{"image_type": "3", "resize_mode": "Squash", "width": 224.0, "height": 224.0}
	wantIIT := map[string]string{"image_type": l.str, "resize_mode": l.str, "width": "int", "height": "int"}
	if !reflect.DeepEqual(d.ImageInfo, wantII) || !reflect.DeepEqual(d.ImageInfoTypes, wantIIT) {
		l.errorf("image_info %v %v", d.ImageInfo, d.ImageInfoTypes)
	}
	if !d.ImageInfoSame {
		l.errorf("job.image_info is not task.image_info")
	}
}

// histories checks the job's and the task's status_history.
func (l *loadedCheck) histories(d pyDesc) {
	l.t.Helper()
	statusType := "Status"
	if l.py2 {
		statusType = "instance" // old-style class instance
	}
	checkHist := func(name string, h []pyHist, vals string, offsets []float64) {
		var got []string
		for i, e := range h {
			got = append(got, e.Val)
			wantName := map[string]string{"I": "Initialized", "R": "Running", "D": "Done"}[e.Val]
			if e.Name != wantName || e.Class != "digits.status.Status" || e.Type != statusType || e.TimeType != "float" {
				l.errorf("%s[%d] = %+v", name, i, e)
			}
			if i < len(offsets) && e.Time != l.want0+offsets[i] {
				l.errorf("%s[%d] time %v, want %v", name, i, e.Time, l.want0+offsets[i])
			}
		}
		if strings.Join(got, ",") != vals {
			l.errorf("%s %v, want %s", name, got, vals)
		}
	}
	checkHist("job history", d.JobHistory, "I,R,D", []float64{0, 1, 2})
	checkHist("task history", d.TaskHistory, "I,D", []float64{0, 1.5})
}

// task checks the task: class, state keys, paths, labels, progress, the
// None keys, the logger, and a re-save and reload.
func (l *loadedCheck) task(c loadCase, d pyDesc) {
	l.t.Helper()
	if !d.Persistent || d.NTasks != 1 {
		l.errorf("persistent %v ntasks %d", d.Persistent, d.NTasks)
	}
	if d.TaskClass != c.taskPath {
		l.errorf("task class %s, want %s", d.TaskClass, c.taskPath)
	}
	wantTaskKeys := strings.Split(taskKeys, ",")
	sort.Strings(wantTaskKeys)
	if !reflect.DeepEqual(d.TaskStateKeys, wantTaskKeys) {
		l.errorf("task state keys %v, want %v", d.TaskStateKeys, wantTaskKeys)
	}
	jobDir := "/jobs/" + c.id
	if d.JobDir != jobDir || d.WeightsPath != jobDir+"/"+c.weights || d.ModelDefPath != jobDir+"/"+c.modelDef || d.PathType != l.uni {
		l.errorf("paths %q %q %q (%s)", d.JobDir, d.WeightsPath, d.ModelDefPath, d.PathType)
	}
	if c.labels {
		if d.LabelsPath == nil || *d.LabelsPath != jobDir+"/labels.txt" {
			l.errorf("labels_path %v", d.LabelsPath)
		}
	} else if d.LabelsPath != nil {
		l.errorf("labels_path %q, want None", *d.LabelsPath)
	}
	if d.Progress != 1.0 || d.ProgressType != "float" || d.PickverTask != 1 || d.TaskFramework != nil {
		l.errorf("progress %v (%s) pickver %d framework %v", d.Progress, d.ProgressType, d.PickverTask, d.TaskFramework)
	}
	if len(d.TaskNones) != 6 {
		l.errorf("None task keys %v, want 6", d.TaskNones)
	}
	if d.Logger != "job "+c.id {
		l.errorf("logger %q", d.Logger)
	}
	wantResave := []any{c.id, "Done", "Done", strings.Split(jobKeys, ",")}
	resave, _ := json.Marshal(d.Resave)
	wantJSON, _ := json.Marshal(wantResave)
	if string(resave) != string(wantJSON) {
		l.errorf("re-save and reload gave %s, want %s", resave, wantJSON)
	}
}
