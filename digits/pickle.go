package digits

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Pickle opcodes used by the writer (all exist in protocol 2; none is
// protocol 3 or later).
const (
	opProto          = 0x80 // PROTO n
	opStop           = '.'  // STOP
	opGlobal         = 'c'  // GLOBAL module\nname\n
	opEmptyTuple     = ')'  // EMPTY_TUPLE
	opNewObj         = 0x81 // NEWOBJ: cls args -> cls.__new__(cls, *args)
	opObj            = 'o'  // OBJ: MARK cls args... -> instance (old-style safe)
	opBuild          = 'b'  // BUILD: obj state -> obj.__setstate__(state)
	opMark           = '('  // MARK
	opEmptyDict      = '}'  // EMPTY_DICT
	opSetItems       = 'u'  // SETITEMS: dict MARK k v ... -> dict
	opEmptyList      = ']'  // EMPTY_LIST
	opAppends        = 'e'  // APPENDS: list MARK x ... -> list
	opTuple2         = 0x86 // TUPLE2
	opShortBinString = 'U'  // SHORT_BINSTRING len:u8 bytes (py2 str)
	opBinUnicode     = 'X'  // BINUNICODE len:u32le utf-8 (py2 unicode)
	opBinInt1        = 'K'  // BININT1 u8
	opBinInt2        = 'M'  // BININT2 u16le
	opBinInt         = 'J'  // BININT i32le
	opLong1          = 0x8a // LONG1 n:u8 two's complement little-endian
	opBinFloat       = 'G'  // BINFLOAT float64 big-endian
	opNone           = 'N'  // NONE
	opBinPut         = 'q'  // BINPUT u8
	opBinGet         = 'h'  // BINGET u8
)

// pickler is a minimal protocol-2 pickle writer. It emits only what
// status.pickle needs and keeps no memo of its own: callers memoize
// explicitly with put/get.
type pickler struct{ b bytes.Buffer }

func (p *pickler) op(c byte) { p.b.WriteByte(c) }

func (p *pickler) proto() { p.b.Write([]byte{opProto, 2}) }

func (p *pickler) global(module, name string) {
	p.op(opGlobal)
	p.b.WriteString(module)
	p.b.WriteByte('\n')
	p.b.WriteString(name)
	p.b.WriteByte('\n')
}

// str writes s as SHORT_BINSTRING when it is ASCII and shorter than 256
// bytes (a str in Python 2, decoded as ASCII by Python 3), otherwise as
// BINUNICODE.
func (p *pickler) str(s string) {
	if len(s) < 256 && isASCII(s) {
		p.op(opShortBinString)
		p.b.WriteByte(byte(len(s)))
		p.b.WriteString(s)
		return
	}
	p.unicode(s)
}

// unicode writes s as BINUNICODE (s must be valid UTF-8).
func (p *pickler) unicode(s string) {
	p.op(opBinUnicode)
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
	p.b.Write(n[:])
	p.b.WriteString(s)
}

// strOrNone writes None for "", else str(s).
func (p *pickler) strOrNone(s string) {
	if s == "" {
		p.none()
		return
	}
	p.str(s)
}

// unicodeOrNone writes None for "", else unicode(s).
func (p *pickler) unicodeOrNone(s string) {
	if s == "" {
		p.none()
		return
	}
	p.unicode(s)
}

func (p *pickler) int(v int64) {
	switch {
	case v >= 0 && v <= 0xff:
		p.op(opBinInt1)
		p.b.WriteByte(byte(v))
	case v >= 0 && v <= 0xffff:
		p.op(opBinInt2)
		p.b.Write([]byte{byte(v), byte(v >> 8)})
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.op(opBinInt)
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(int32(v)))
		p.b.Write(n[:])
	default:
		// LONG1: shortest two's complement little-endian encoding.
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(v))
		l := 8
		for l > 1 {
			top, next := n[l-1], n[l-2]
			if (top == 0 && next&0x80 == 0) || (top == 0xff && next&0x80 != 0) {
				l--
				continue
			}
			break
		}
		p.op(opLong1)
		p.b.WriteByte(byte(l))
		p.b.Write(n[:l])
	}
}

func (p *pickler) float(f float64) {
	p.op(opBinFloat)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], math.Float64bits(f))
	p.b.Write(n[:])
}

func (p *pickler) none() { p.op(opNone) }

func (p *pickler) put(i byte) { p.b.Write([]byte{opBinPut, i}) }

func (p *pickler) get(i byte) { p.b.Write([]byte{opBinGet, i}) }

// dict writes EMPTY_DICT [BINPUT memo] MARK k1 v1 ... SETITEMS. Keys are
// written with str, values by the callbacks, in the given order.
func (p *pickler) dict(memo int, items []kv) {
	p.op(opEmptyDict)
	if memo >= 0 {
		p.put(byte(memo))
	}
	if len(items) == 0 {
		return
	}
	p.op(opMark)
	for _, it := range items {
		p.str(it.k)
		it.v()
	}
	p.op(opSetItems)
}

// list writes EMPTY_LIST MARK items... APPENDS.
func (p *pickler) list(items ...func()) {
	p.op(opEmptyList)
	if len(items) == 0 {
		return
	}
	p.op(opMark)
	for _, it := range items {
		it()
	}
	p.op(opAppends)
}

// newObj writes a new-style instance: GLOBAL EMPTY_TUPLE NEWOBJ state BUILD.
func (p *pickler) newObj(module, class string, state func()) {
	p.global(module, class)
	p.op(opEmptyTuple)
	p.op(opNewObj)
	state()
	p.op(opBuild)
}

// oldObj writes an instance the way Python 2 pickles old-style classes:
// MARK GLOBAL OBJ state BUILD. It never uses NEWOBJ.
func (p *pickler) oldObj(module, class string, state func()) {
	p.op(opMark)
	p.global(module, class)
	p.op(opObj)
	state()
	p.op(opBuild)
}

type kv struct {
	k string
	v func()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Status values (digits.status.Status state).
const (
	StatusInit    = "I"
	StatusRunning = "R"
	StatusDone    = "D"
)

// Class paths of the pickled objects.
const (
	JobModule    = "digits.pretrained_model.job"
	JobClass     = "PretrainedModelJob"
	StatusModule = "digits.status"
	StatusClass  = "Status"
)

// TaskClass returns the module and class of the upload task DIGITS uses for
// framework fw (ok false for an unknown framework).
func TaskClass(fw string) (module, class string, ok bool) {
	switch fw {
	case Caffe:
		return "digits.pretrained_model.tasks.caffe_upload", "CaffeUploadTask", true
	case Torch:
		return "digits.pretrained_model.tasks.torch_upload", "TorchUploadTask", true
	case Tensorflow:
		return "digits.pretrained_model.tasks.tensorflow_upload", "TensorflowUploadTask", true
	}
	return "", "", false
}

// Job describes the synthesized job for status.pickle.
type Job struct {
	ID        string // _id == task job_id: ASCII (DIGITS' delete_job calls str() on it)
	Name      string // info.json name
	Username  string // "" -> None
	Framework string // caffe|torch|tensorflow
	Dir       string // absolute job dir written into task job_dir (DIGITS recomputes it on load)
	// Absolute paths in that dir; Labels "" -> None.
	Weights, ModelDef, Labels string
	// t0 for status histories (deterministic: the caller passes the info.json
	// "creation time" or a Last-Modified). The zero Time is written as 0.0.
	Time      time.Time
	ImageInfo ImageInfo
}

// ImageInfo is the job's and task's image_info dict.
type ImageInfo struct {
	ImageType, ResizeMode string
	Width, Height         int
}

// DefaultImageInfo is what a DIGITS store (or archive) import records,
// whatever the model: {"3", "Squash", 224, 224}.
func DefaultImageInfo() ImageInfo {
	return ImageInfo{ImageType: "3", ResizeMode: "Squash", Width: 224, Height: 224}
}

// NewJob builds the Job for a model folder named id from info and its
// layout, with Dir = jobsDir+"/"+id. Paths are those DIGITS's upload task
// gives the files (Weights is the "snapshot.ckpt" prefix for tensorflow);
// Labels is set only when files has a labels.txt. ImageInfo is
// DefaultImageInfo, as the DIGITS store import writes it (it ignores
// "image dimensions").
func NewJob(id string, info *Info, files []JobFile, jobsDir string, t0 time.Time) Job {
	return NewJobIn(id, strings.TrimRight(jobsDir, "/")+"/"+id, info, files, t0)
}

// NewJobIn is NewJob for a job directory dir whose name need not be the id
// (a mounted folder: DIGITS resets the job's directory to the folder it
// loads the job from, and keys the job by id).
func NewJobIn(id, dir string, info *Info, files []JobFile, t0 time.Time) Job {
	if info == nil {
		info = &Info{}
	}
	j := Job{
		ID:        id,
		Name:      info.Name,
		Username:  info.Username,
		Framework: info.Framework,
		Dir:       dir,
		Time:      t0,
		ImageInfo: DefaultImageInfo(),
	}
	if n := WeightsName(info.Framework); n != "" {
		j.Weights = dir + "/" + n
	}
	if n := ModelDefName(info.Framework); n != "" {
		j.ModelDef = dir + "/" + n
	}
	for _, f := range files {
		if f.JobName == LabelsFile {
			j.Labels = dir + "/" + LabelsFile
			break
		}
	}
	return j
}

// unixSeconds is t as a Python time.time() value, the double nearest to
// the exact number of seconds; 0 for the zero Time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	sec, nsec := t.Unix(), t.Nanosecond()
	if sec >= 0 {
		if f, err := strconv.ParseFloat(fmt.Sprintf("%d.%09d", sec, nsec), 64); err == nil {
			return f
		}
	}
	return float64(sec) + float64(nsec)/1e9
}

// validate checks what StatusPickle needs from j.
// Validate says why StatusPickle would refuse the job, or nil.
func (j Job) Validate() error { return j.validate() }

func (j Job) validate() error {
	var problems []string
	if _, _, ok := TaskClass(j.Framework); !ok {
		problems = append(problems, fmt.Sprintf("framework %q is not one of caffe, torch, tensorflow", j.Framework))
	}
	if err := SafeRelName(j.ID); err != nil {
		problems = append(problems, fmt.Sprintf("job id: %v", err))
	} else if !isASCII(j.ID) {
		problems = append(problems, fmt.Sprintf("job id %q is not ASCII: DIGITS could never delete the job (str() of the id)", j.ID))
	}
	for _, f := range []struct{ what, s string }{
		{"job dir", j.Dir}, {"weights path", j.Weights}, {"model definition path", j.ModelDef},
	} {
		if f.s == "" {
			problems = append(problems, "no "+f.what)
		}
	}
	for _, f := range []struct{ what, s string }{
		{"name", j.Name}, {"username", j.Username}, {"job dir", j.Dir},
		{"weights path", j.Weights}, {"model definition path", j.ModelDef}, {"labels path", j.Labels},
		{"image type", j.ImageInfo.ImageType}, {"resize mode", j.ImageInfo.ResizeMode},
	} {
		if !utf8.ValidString(f.s) {
			problems = append(problems, f.what+" is not valid UTF-8")
		}
	}
	if len(problems) > 0 {
		return errors.New("status.pickle: " + strings.Join(problems, "; "))
	}
	return nil
}

// imageInfoMemo is the memo slot of the image_info dict shared by job and task.
const imageInfoMemo = 0

// StatusPickle returns the protocol-2 status.pickle bytes for j (reference
// section 6): PROTO 2; the PretrainedModelJob via GLOBAL EMPTY_TUPLE NEWOBJ
// dict BUILD with exactly the seven keys _id, _name, username, framework,
// image_info, status_history, tasks (in that order); one upload task of the
// framework's class, likewise, with job_id, job_dir, pickver_task, progress,
// status_history, weights_path, model_def_path, labels_path, image_info,
// parents, exception, traceback, framework, gpu, current_resources; every
// Status as MARK GLOBAL OBJ str BUILD. The job's history is I, R, D at t0,
// t0+1, t0+2, the task's I, D at t0, t0+1.5. image_info is one dict,
// memoized (BINPUT) with the job and referenced (BINGET) by the task, as in
// a DIGITS pickle. _name and the paths are BINUNICODE; other text is
// SHORT_BINSTRING when ASCII and shorter than 256 bytes, else BINUNICODE.
// The task's "framework" is None, as in DIGITS (the job passes none).
func StatusPickle(j Job) ([]byte, error) {
	if err := j.validate(); err != nil {
		return nil, err
	}
	taskModule, taskClass, _ := TaskClass(j.Framework)
	t0 := unixSeconds(j.Time)
	p := &pickler{}

	status := func(v string, t float64) func() {
		return func() {
			p.oldObj(StatusModule, StatusClass, func() { p.str(v) })
			p.float(t)
			p.op(opTuple2)
		}
	}
	imageInfo := func() {
		ii := j.ImageInfo
		p.dict(imageInfoMemo, []kv{
			{"image_type", func() { p.str(ii.ImageType) }},
			{"resize_mode", func() { p.str(ii.ResizeMode) }},
			{"width", func() { p.int(int64(ii.Width)) }},
			{"height", func() { p.int(int64(ii.Height)) }},
		})
	}
	none := func() { p.none() }
	task := func() {
		p.newObj(taskModule, taskClass, func() {
			p.dict(-1, []kv{
				{"job_id", func() { p.str(j.ID) }},
				{"job_dir", func() { p.unicode(j.Dir) }},
				{"pickver_task", func() { p.int(1) }},
				{"progress", func() { p.float(1.0) }},
				{"status_history", func() { p.list(status(StatusInit, t0), status(StatusDone, t0+1.5)) }},
				{"weights_path", func() { p.unicode(j.Weights) }},
				{"model_def_path", func() { p.unicode(j.ModelDef) }},
				{"labels_path", func() { p.unicodeOrNone(j.Labels) }},
				{"image_info", func() { p.get(imageInfoMemo) }},
				{"parents", none},
				{"exception", none},
				{"traceback", none},
				{"framework", none},
				{"gpu", none},
				{"current_resources", none},
			})
		})
	}

	p.proto()
	p.newObj(JobModule, JobClass, func() {
		p.dict(-1, []kv{
			{"_id", func() { p.str(j.ID) }},
			{"_name", func() { p.unicode(j.Name) }},
			{"username", func() { p.strOrNone(j.Username) }},
			{"framework", func() { p.str(j.Framework) }},
			{"image_info", imageInfo},
			{"status_history", func() {
				p.list(status(StatusInit, t0), status(StatusRunning, t0+1), status(StatusDone, t0+2))
			}},
			{"tasks", func() { p.list(task) }},
		})
	})
	p.op(opStop)
	// A copy of its length: kept for every model, without the buffer's
	// spare room.
	return bytes.Clone(p.b.Bytes()), nil
}
