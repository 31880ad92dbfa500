package digits

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strings"
	"testing"
	"time"
)

// lenetInfoJSON is the info.json of reference section 6.
const lenetInfoJSON = `{"caffe flavor": "NVIDIA", "caffe version": "0.15.14", "creation time": "2017-01-24 10:10:10.123456",
 "dataset_id": "20170124-095000-1a2b", "deploy file": "deploy.prototxt", "digits version": "6.0.0",
 "framework": "caffe", "id": "20170124-100000-3c4d", "image dimensions": [28, 28, 1],
 "image resize mode": "squash", "job id": "20170124-100000-3c4d", "labels file": "labels.txt",
 "mean file": "mean.binaryproto", "model file": "original.prototxt", "name": "LeNet (MNIST)",
 "snapshot file": "snapshot_iter_28140.caffemodel", "solver file": "solver.prototxt", "status": "Done",
 "train_val file": "train_val.prototxt", "username": "luke", "note": "LeNet-5 trained 30 epochs"}`

// lenetJob builds the Job of the reference example for model folder "lenet".
func lenetJob(t testing.TB) Job {
	t.Helper()
	info, err := ParseInfo([]byte(lenetInfoJSON))
	if err != nil {
		t.Fatalf("ParseInfo: %v", err)
	}
	files, dropped, err := Layout(info)
	if err != nil || len(dropped) != 0 {
		t.Fatalf("Layout: %v %v", dropped, err)
	}
	return NewJob("lenet", info, files, "/jobs", info.CreationTime)
}

func mustPickle(t testing.TB, j Job) []byte {
	t.Helper()
	b, err := StatusPickle(j)
	if err != nil {
		t.Fatalf("StatusPickle: %v", err)
	}
	if err := checkOpcodes(b); err != nil {
		t.Fatalf("opcodes: %v", err)
	}
	return b
}

// pickleBuilder assembles a protocol-2 stream opcode by opcode.
type pickleBuilder struct {
	t testing.TB
	bytes.Buffer
}

func (g *pickleBuilder) op(b ...byte) { g.Write(b) }

// str is SHORT_BINSTRING.
func (g *pickleBuilder) str(s string) {
	g.op('U', byte(len(s)))
	g.WriteString(s)
}

// uni is BINUNICODE.
func (g *pickleBuilder) uni(s string) {
	g.op('X')
	_ = binary.Write(g, binary.LittleEndian, uint32(len(s)))
	g.WriteString(s)
}

func (g *pickleBuilder) global(m, c string) { g.op('c'); g.WriteString(m + "\n" + c + "\n") }

// float is BINFLOAT, a big-endian IEEE double given in hex.
func (g *pickleBuilder) float(hexBE string) {
	b, err := hex.DecodeString(hexBE)
	if err != nil || len(b) != 8 {
		g.t.Fatalf("bad float hex %q", hexBE)
	}
	g.op('G')
	g.op(b...)
}

// status is a status_history entry: (Status v, time).
func (g *pickleBuilder) status(v, tHex string) {
	g.op('(') // MARK
	g.global("digits.status", "Status")
	g.op('o') // OBJ
	g.str(v)
	g.op('b') // BUILD
	g.float(tHex)
	g.op(0x86) // TUPLE2
}

// The golden stream's times: t0 = 2017-01-24 10:10:10.123456 UTC =
// 1485252610.123456, as big-endian doubles in hex.
const (
	goldenT0     = "41d621ca0087e6b4"
	goldenT0p1   = "41d621ca00c7e6b4" // +1
	goldenT0p2   = "41d621ca0107e6b4" // +2
	goldenT0p15  = "41d621ca00e7e6b4" // +1.5
	goldenOneDot = "3ff0000000000000" // 1.0
)

// goldenLeNet is lenetJob's status.pickle, assembled from reference
// section 6: the job, then its one task.
func goldenLeNet(t testing.TB) []byte {
	g := &pickleBuilder{t: t}
	g.op(0x80, 2) // PROTO 2
	g.global("digits.pretrained_model.job", "PretrainedModelJob")
	g.op(')', 0x81) // EMPTY_TUPLE NEWOBJ
	g.op('}', '(')  // EMPTY_DICT MARK
	g.str("_id")
	g.str("lenet")
	g.str("_name")
	g.uni("LeNet (MNIST)")
	g.str("username")
	g.str("luke")
	g.str("framework")
	g.str("caffe")
	g.str("image_info")
	g.op('}', 'q', 0, '(') // EMPTY_DICT BINPUT 0 MARK
	g.str("image_type")
	g.str("3")
	g.str("resize_mode")
	g.str("Squash")
	g.str("width")
	g.op('K', 224)
	g.str("height")
	g.op('K', 224)
	g.op('u') // SETITEMS
	g.str("status_history")
	g.op(']', '(') // EMPTY_LIST MARK
	g.status("I", goldenT0)
	g.status("R", goldenT0p1)
	g.status("D", goldenT0p2)
	g.op('e') // APPENDS
	g.str("tasks")
	g.op(']', '(')
	goldenLeNetTask(g)
	g.op('e')      // APPENDS (tasks)
	g.op('u', 'b') // SETITEMS BUILD (job)
	g.op('.')      // STOP
	return g.Bytes()
}

// goldenLeNetTask is the task of goldenLeNet: a CaffeUploadTask whose
// image_info is the job's (BINGET 0).
func goldenLeNetTask(g *pickleBuilder) {
	g.global("digits.pretrained_model.tasks.caffe_upload", "CaffeUploadTask")
	g.op(')', 0x81, '}', '(')
	g.str("job_id")
	g.str("lenet")
	g.str("job_dir")
	g.uni("/jobs/lenet")
	g.str("pickver_task")
	g.op('K', 1)
	g.str("progress")
	g.float(goldenOneDot)
	g.str("status_history")
	g.op(']', '(')
	g.status("I", goldenT0)
	g.status("D", goldenT0p15)
	g.op('e')
	g.str("weights_path")
	g.uni("/jobs/lenet/model.caffemodel")
	g.str("model_def_path")
	g.uni("/jobs/lenet/original.prototxt")
	g.str("labels_path")
	g.uni("/jobs/lenet/labels.txt")
	g.str("image_info")
	g.op('h', 0) // BINGET 0
	for _, k := range []string{"parents", "exception", "traceback", "framework", "gpu", "current_resources"} {
		g.str(k)
		g.op('N')
	}
	g.op('u', 'b') // SETITEMS BUILD (task)
}

// TestStatusPickleGoldenLeNet compares the writer's output with a stream
// assembled here opcode by opcode from reference section 6.
func TestStatusPickleGoldenLeNet(t *testing.T) {
	got := mustPickle(t, lenetJob(t))
	want := goldenLeNet(t)
	if !bytes.Equal(got, want) {
		n := 0
		for n < len(got) && n < len(want) && got[n] == want[n] {
			n++
		}
		t.Fatalf("status.pickle differs from the golden stream at byte %d (len got %d, want %d)\ngot  %q\nwant %q",
			n, len(got), len(want), got[n:min(n+40, len(got))], want[n:min(n+40, len(want))])
	}
	prefix := "\x80\x02cdigits.pretrained_model.job\nPretrainedModelJob\n)\x81}(U\x03_idU\x05lenetU\x05_nameX\x0d\x00\x00\x00LeNet (MNIST)"
	if !strings.HasPrefix(string(got), prefix) {
		t.Errorf("prefix %q, want %q", got[:len(prefix)], prefix)
	}
	if len(got) != 802 {
		t.Errorf("len = %d, want 802", len(got))
	}
}

// decodeJob decodes b and returns the job object, its state and its task.
func decodeJob(t testing.TB, b []byte) (job *pyObj, js map[string]any, task *pyObj, ts map[string]any) {
	t.Helper()
	root, err := unpickle(b)
	if err != nil {
		t.Fatalf("unpickle: %v", err)
	}
	job, ok := root.(*pyObj)
	if !ok || !job.Built {
		t.Fatalf("root is %T, want a built object", root)
	}
	jd, ok := job.State.(*pyDict)
	if !ok {
		t.Fatalf("job state is %T", job.State)
	}
	tasks, ok := jd.M["tasks"].(*pyList)
	if !ok || len(tasks.Items) != 1 {
		t.Fatalf("tasks = %#v, want a list of one task", jd.M["tasks"])
	}
	task, ok = tasks.Items[0].(*pyObj)
	if !ok || !task.Built {
		t.Fatalf("task is %T", tasks.Items[0])
	}
	td, ok := task.State.(*pyDict)
	if !ok {
		t.Fatalf("task state is %T", task.State)
	}
	return job, jd.M, task, td.M
}

func sortedKeys(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return strings.Join(keys, ",")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// history checks a status_history list and returns "I,R,D" and the times.
func history(t testing.TB, v any) (string, []float64) {
	t.Helper()
	l, ok := v.(*pyList)
	if !ok || len(l.Items) == 0 {
		t.Fatalf("status_history = %#v, want a non-empty list", v)
	}
	var vals []string
	var times []float64
	for _, it := range l.Items {
		pair, ok := it.(pyTuple)
		if !ok || len(pair) != 2 {
			t.Fatalf("history item %#v, want a pair", it)
		}
		st, ok := pair[0].(*pyObj)
		if !ok || st.How != "OBJ" || st.Class != (pyGlobal{"digits.status", "Status"}) || len(st.NewArgs) != 0 || !st.Built {
			t.Fatalf("history status %#v, want digits.status.Status via OBJ", pair[0])
		}
		s, ok := st.State.(pyStr)
		if !ok || s.Unicode || len(s.S) != 1 {
			t.Fatalf("status state %#v, want a 1-char str", st.State)
		}
		f, ok := pair[1].(float64)
		if !ok {
			t.Fatalf("history time %#v is not a float", pair[1])
		}
		vals = append(vals, s.S)
		times = append(times, f)
	}
	return strings.Join(vals, ","), times
}

const (
	jobKeys  = "_id,_name,framework,image_info,status_history,tasks,username"
	taskKeys = "current_resources,exception,framework,gpu,image_info,job_dir,job_id,labels_path,model_def_path,parents,pickver_task,progress,status_history,traceback,weights_path"
)

// roundTripCase is a row of TestStatusPickleRoundTrip: a model, and what
// its job's status.pickle must decode to.
type roundTripCase struct {
	name                  string
	id, fw, title, user   string
	labels                bool
	taskModule, taskClass string
	weights, modelDef     string
	wantIDUnicode         bool
	wantUser              any
}

// roundTripT0 is the jobs' creation time in the round trip, as a Python
// timestamp: 2017-01-24 10:10:10.123456 UTC.
const roundTripT0 = 1485252610.123456

func TestStatusPickleRoundTrip(t *testing.T) {
	t0 := time.Date(2017, 1, 24, 10, 10, 10, 123456000, time.UTC)
	tests := []roundTripCase{
		{"caffe", "lenet", "caffe", "LeNet (MNIST)", "luke", true,
			"digits.pretrained_model.tasks.caffe_upload", "CaffeUploadTask",
			"/jobs/lenet/model.caffemodel", "/jobs/lenet/original.prototxt", false, pyStr{S: "luke"}},
		{"torch no labels no user", "alexnet", "torch", "AlexNet", "", false,
			"digits.pretrained_model.tasks.torch_upload", "TorchUploadTask",
			"/jobs/alexnet/_Model.t7", "/jobs/alexnet/original.lua", false, nil},
		{"tensorflow", "tf-net", "tensorflow", "TF net", "x", true,
			"digits.pretrained_model.tasks.tensorflow_upload", "TensorflowUploadTask",
			"/jobs/tf-net/snapshot.ckpt", "/jobs/tf-net/network.py", false, pyStr{S: "x"}},
		{"non-ascii", "réseau-日本", "caffe", "Réseau ü 日本語 🚀", "jürgen", false,
			"digits.pretrained_model.tasks.caffe_upload", "CaffeUploadTask",
			"/jobs/réseau-日本/model.caffemodel", "/jobs/réseau-日本/original.prototxt", false, pyStr{S: "jürgen", Unicode: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := &Info{Name: tc.title, Framework: tc.fw, Username: tc.user, SnapshotFile: "w", ModelFile: "m"}
			if tc.fw == Tensorflow {
				info.SnapshotFile = "snapshot_1.ckpt"
			}
			if tc.labels {
				info.LabelsFile = "labels.txt"
			}
			files, _, err := Layout(info)
			if err != nil {
				t.Fatal(err)
			}
			// A non-ASCII folder keeps its name in the paths, but the id is
			// ASCII (DIGITS' delete_job calls str() on it).
			id := tc.id
			if !isASCII(id) {
				id = "20170124-101010-ab12"
			}
			b := mustPickle(t, NewJobIn(id, "/jobs/"+tc.id, info, files, t0))
			job, js, task, ts := decodeJob(t, b)
			checkRoundTripJob(t, tc, id, job, js)
			checkRoundTripTask(t, tc, js, task, ts)
		})
	}
}

// checkRoundTripJob checks the decoded job of tc (whose id is id) and its
// state js.
func checkRoundTripJob(t *testing.T, tc roundTripCase, id string, job *pyObj, js map[string]any) {
	t.Helper()
	if job.How != "NEWOBJ" || job.Class != (pyGlobal{JobModule, JobClass}) || len(job.NewArgs) != 0 {
		t.Errorf("job = %v %v %v", job.How, job.Class, job.NewArgs)
	}
	if got := sortedKeys(js); got != jobKeys {
		t.Errorf("job keys %s, want %s", got, jobKeys)
	}
	if got := js["_id"]; got != (pyStr{S: id, Unicode: tc.wantIDUnicode}) {
		t.Errorf("_id = %#v", got)
	}
	if got := js["_name"]; got != (pyStr{S: tc.title, Unicode: true}) {
		t.Errorf("_name = %#v", got)
	}
	if got := js["username"]; got != tc.wantUser {
		t.Errorf("username = %#v, want %#v", got, tc.wantUser)
	}
	if got := js["framework"]; got != (pyStr{S: tc.fw}) {
		t.Errorf("framework = %#v", got)
	}
	checkImageInfo(t, js["image_info"])
	vals, times := history(t, js["status_history"])
	if vals != "I,R,D" || times[0] != roundTripT0 || times[1] != roundTripT0+1 || times[2] != roundTripT0+2 {
		t.Errorf("job history %s %v", vals, times)
	}
}

// checkImageInfo checks a job's image_info dict (DIGITS' defaults).
func checkImageInfo(t *testing.T, v any) {
	t.Helper()
	ii, ok := v.(*pyDict)
	if !ok {
		t.Fatalf("image_info %T", v)
	}
	wantII := map[string]any{"image_type": pyStr{S: "3"}, "resize_mode": pyStr{S: "Squash"}, "width": int64(224), "height": int64(224)}
	if len(ii.M) != len(wantII) {
		t.Errorf("image_info %#v", ii.M)
	}
	for k, want := range wantII {
		if ii.M[k] != want {
			t.Errorf("image_info[%s] = %#v, want %#v", k, ii.M[k], want)
		}
	}
}

// checkRoundTripTask checks the decoded task of tc and its state ts, which
// shares the job state js's id and image_info.
func checkRoundTripTask(t *testing.T, tc roundTripCase, js map[string]any, task *pyObj, ts map[string]any) {
	t.Helper()
	if !samePtr(js["image_info"], ts["image_info"]) {
		t.Errorf("job and task image_info are not the same object")
	}
	if task.How != "NEWOBJ" || task.Class != (pyGlobal{tc.taskModule, tc.taskClass}) {
		t.Errorf("task = %v %v", task.How, task.Class)
	}
	if got := sortedKeys(ts); got != taskKeys {
		t.Errorf("task keys %s, want %s", got, taskKeys)
	}
	if ts["job_id"] != js["_id"] {
		t.Errorf("job_id %#v != _id %#v", ts["job_id"], js["_id"])
	}
	if got := ts["job_dir"]; got != (pyStr{S: "/jobs/" + tc.id, Unicode: true}) {
		t.Errorf("job_dir = %#v", got)
	}
	if ts["weights_path"] != (pyStr{S: tc.weights, Unicode: true}) || ts["model_def_path"] != (pyStr{S: tc.modelDef, Unicode: true}) {
		t.Errorf("paths %#v %#v", ts["weights_path"], ts["model_def_path"])
	}
	wantLabels := any(nil)
	if tc.labels {
		wantLabels = pyStr{S: "/jobs/" + tc.id + "/labels.txt", Unicode: true}
	}
	if ts["labels_path"] != wantLabels {
		t.Errorf("labels_path = %#v, want %#v", ts["labels_path"], wantLabels)
	}
	if ts["pickver_task"] != int64(1) || ts["progress"] != 1.0 {
		t.Errorf("pickver_task %#v progress %#v", ts["pickver_task"], ts["progress"])
	}
	for _, k := range []string{"parents", "exception", "traceback", "framework", "gpu", "current_resources"} {
		if ts[k] != nil {
			t.Errorf("task %s = %#v, want None", k, ts[k])
		}
	}
	vals, times := history(t, ts["status_history"])
	if vals != "I,D" || times[0] != roundTripT0 || times[1] != roundTripT0+1.5 {
		t.Errorf("task history %s %v", vals, times)
	}
}

func TestStatusPickleStrings(t *testing.T) {
	long := strings.Repeat("a", 300)
	j := lenetJob(t)
	j.ID = strings.Repeat("b", 255)
	j.Name = long
	j.Username = long
	b := mustPickle(t, j)
	_, js, _, ts := decodeJob(t, b)
	if js["_id"] != (pyStr{S: j.ID}) || ts["job_id"] != (pyStr{S: j.ID}) {
		t.Errorf("255-byte ASCII id should be SHORT_BINSTRING: %#v", js["_id"])
	}
	if js["username"] != (pyStr{S: long, Unicode: true}) {
		t.Errorf("300-byte username should be BINUNICODE: %#v", js["username"])
	}
	if js["_name"] != (pyStr{S: long, Unicode: true}) {
		t.Errorf("_name %#v", js["_name"])
	}
	// A 256-byte ASCII value must not use SHORT_BINSTRING (1-byte length).
	p := &pickler{}
	p.str(strings.Repeat("c", 256))
	if got := p.b.Bytes(); got[0] != 'X' || binary.LittleEndian.Uint32(got[1:5]) != 256 {
		t.Errorf("256-byte str encoded as %q", got[:5])
	}
}

func TestPicklerInt(t *testing.T) {
	tests := []struct {
		v    int64
		want string
	}{
		{0, "K\x00"},
		{224, "K\xe0"},
		{255, "K\xff"},
		{256, "M\x00\x01"},
		{65535, "M\xff\xff"},
		{65536, "J\x00\x00\x01\x00"},
		{-1, "J\xff\xff\xff\xff"},
		{math.MaxInt32, "J\xff\xff\xff\x7f"},
		{math.MinInt32, "J\x00\x00\x00\x80"},
		{math.MaxInt32 + 1, "\x8a\x05\x00\x00\x00\x80\x00"},
		{math.MinInt32 - 1, "\x8a\x05\xff\xff\xff\x7f\xff"},
		{math.MaxInt64, "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"},
		{math.MinInt64, "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80"},
	}
	for _, tc := range tests {
		p := &pickler{}
		p.int(tc.v)
		if got := p.b.String(); got != tc.want {
			t.Errorf("int(%d) = %q, want %q", tc.v, got, tc.want)
		}
		ops, err := disasm(append(p.b.Bytes(), '.'))
		if err != nil || len(ops) != 2 || ops[0].Arg != tc.v {
			t.Errorf("int(%d) decodes to %#v, %v", tc.v, ops, err)
		}
	}
}

func TestStatusPickleOpcodes(t *testing.T) {
	for _, fw := range []string{Caffe, Torch, Tensorflow} {
		j := lenetJob(t)
		j.Framework = fw
		b := mustPickle(t, j)
		ops, err := disasm(b)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, op := range ops {
			counts[op.Name]++
			// Protocol 3+ opcodes and text-mode opcodes never appear.
			if op.Code == 'B' || op.Code == 'C' || op.Code >= 0x8c {
				t.Errorf("%s: protocol 3+ opcode %#x at %d", fw, op.Code, op.Pos)
			}
		}
		want := map[string]int{"PROTO": 1, "STOP": 1, "NEWOBJ": 2, "OBJ": 5, "BINPUT": 1, "BINGET": 1, "TUPLE2": 5}
		for k, v := range want {
			if counts[k] != v {
				t.Errorf("%s: %d %s, want %d", fw, counts[k], k, v)
			}
		}
		if ops[0].Code != 0x80 || ops[0].Arg != int64(2) {
			t.Errorf("first op %v", ops[0])
		}
		if counts["BUILD"] != 7 { // job, task, 5 statuses
			t.Errorf("%s: %d BUILD, want 7", fw, counts["BUILD"])
		}
	}
}

// TestCheckOpcodesRejects makes sure the opcode checks used above catch the
// mistakes they are meant to catch.
func TestCheckOpcodesRejects(t *testing.T) {
	good := mustPickle(t, lenetJob(t))
	newobjStatus := "\x80\x02cdigits.status\nStatus\n)\x81U\x01Db."
	tests := map[string]string{
		"NEWOBJ Status":  newobjStatus,
		"protocol 3":     "\x80\x03C\x01x.",
		"short binbytes": "\x80\x02C\x01x.",
		"stack global":   "\x80\x02\x93.",
		"trailing":       string(good) + "x",
		"no stop":        string(good[:len(good)-1]),
		"proto 4 frame":  "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00N.",
	}
	for name, b := range tests {
		err1 := checkOpcodes([]byte(b))
		_, err2 := unpickle([]byte(b))
		if err1 == nil && err2 == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := unpickle([]byte(newobjStatus)); err == nil || !strings.Contains(err.Error(), "NEWOBJ") {
		t.Errorf("unpickle NEWOBJ Status: %v", err)
	}
}

func TestStatusPickleDeterministic(t *testing.T) {
	a := mustPickle(t, lenetJob(t))
	for i := 0; i < 20; i++ {
		if b := mustPickle(t, lenetJob(t)); !bytes.Equal(a, b) {
			t.Fatal("two runs gave different bytes")
		}
	}
	j := lenetJob(t)
	j.Time = j.Time.Add(time.Second)
	if b := mustPickle(t, j); bytes.Equal(a, b) {
		t.Error("a different t0 gave the same bytes")
	}
}

func TestStatusPickleTimes(t *testing.T) {
	tests := []struct {
		t    time.Time
		want float64
	}{
		{time.Time{}, 0},
		{time.Unix(0, 0), 0},
		{time.Unix(1485252610, 0), 1485252610},
		{time.Date(2017, 1, 24, 10, 10, 10, 123456000, time.UTC), 1485252610.123456},
		{time.Date(2017, 1, 24, 11, 10, 10, 0, time.FixedZone("CET", 3600)), 1485252610},
		{time.Unix(-10, 500000000), -9.5},
	}
	for _, tc := range tests {
		if got := unixSeconds(tc.t); got != tc.want {
			t.Errorf("unixSeconds(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

func TestStatusPickleErrors(t *testing.T) {
	tests := map[string]func(*Job){
		"unknown framework": func(j *Job) { j.Framework = "mxnet" },
		"uppercase fw":      func(j *Job) { j.Framework = "Caffe" },
		"empty id":          func(j *Job) { j.ID = "" },
		"id with slash":     func(j *Job) { j.ID = "a/b" },
		"id dotdot":         func(j *Job) { j.ID = ".." },
		"no weights":        func(j *Job) { j.Weights = "" },
		"no model def":      func(j *Job) { j.ModelDef = "" },
		"no dir":            func(j *Job) { j.Dir = "" },
		"bad utf8 name":     func(j *Job) { j.Name = "a\xffb" },
		"bad utf8 user":     func(j *Job) { j.Username = "\xc3" },
		"bad utf8 labels":   func(j *Job) { j.Labels = "/x/\xfe" },
	}
	for name, mutate := range tests {
		j := lenetJob(t)
		mutate(&j)
		if b, err := StatusPickle(j); err == nil {
			t.Errorf("%s: no error (%d bytes)", name, len(b))
		}
	}
}

func TestNewJob(t *testing.T) {
	t0 := time.Unix(1000, 0)
	info := &Info{Name: "n", Framework: Torch, Username: "u", SnapshotFile: "s.t7", ModelFile: "m.lua"}
	files, _, err := Layout(info)
	if err != nil {
		t.Fatal(err)
	}
	j := NewJob("m1", info, files, "/var/lib/digits/jobs", t0)
	want := Job{ID: "m1", Name: "n", Username: "u", Framework: Torch, Dir: "/var/lib/digits/jobs/m1",
		Weights: "/var/lib/digits/jobs/m1/_Model.t7", ModelDef: "/var/lib/digits/jobs/m1/original.lua",
		Time: t0, ImageInfo: DefaultImageInfo()}
	if j != want {
		t.Errorf("NewJob = %+v\nwant %+v", j, want)
	}
	if DefaultImageInfo() != (ImageInfo{"3", "Squash", 224, 224}) {
		t.Errorf("DefaultImageInfo = %+v", DefaultImageInfo())
	}
	// nil info does not panic and gives a job StatusPickle refuses.
	j = NewJob("x", nil, nil, "/jobs", t0)
	if _, err := StatusPickle(j); err == nil {
		t.Error("StatusPickle of a job without framework succeeded")
	}
}
