package digits

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseInfo: ParseInfo, Layout, NewJob and StatusPickle never panic on
// any info.json, and whatever they accept gives a valid protocol-2 pickle
// that decodes back to the job.
func FuzzParseInfo(f *testing.F) {
	for _, s := range []string{
		lenetInfoJSON,
		`{"name":"n","framework":"torch","snapshot file":"s","network file":"m"}`,
		`{"name":"n","framework":"TensorFlow","snapshot file":"s.ckpt.index","model file":"network.py","labels file":"../x"}`,
		`{"name":7,"framework":null,"snapshot file":["a"],"model file":{}}`,
		`{"msg":"x","children":["a","b"]}`,
		`{"name":"\u00e9\u65e5","framework":"caffe","snapshot file":"%2e%2e","model file":"http://h/x","creation time":"2017-01-24 10:10:10"}`,
		`[`, `null`, `"x"`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseInfo(data)
		if info == nil {
			if err == nil {
				t.Fatal("nil Info without error")
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrNotImportable) {
				t.Fatalf("error %v does not wrap ErrNotImportable", err)
			}
			return
		}
		if !KnownFramework(info.Framework) || info.Name == "" || info.SnapshotFile == "" || info.ModelFile == "" {
			t.Fatalf("accepted incomplete info %+v", info)
		}
		files, _, err := Layout(info)
		if err != nil {
			if !errors.Is(err, ErrNotImportable) {
				t.Fatalf("Layout error %v does not wrap ErrNotImportable", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, fl := range files {
			if SafeRelName(fl.RemoteName) != nil || SafeRelName(fl.JobName) != nil {
				t.Fatalf("unsafe file %+v", fl)
			}
			if seen[fl.JobName] {
				t.Fatalf("duplicate job name %q", fl.JobName)
			}
			seen[fl.JobName] = true
		}
		j := NewJob("model", info, files, "/jobs", info.CreationTime)
		b, err := StatusPickle(j)
		if err != nil {
			t.Fatalf("StatusPickle of an importable model: %v", err)
		}
		checkPickle(t, b, j)
	})
}

// FuzzStatusPickle: StatusPickle never panics; when it succeeds the output
// starts with 80 02, ends with '.', passes the opcode checks and decodes
// back to the job's id, name and username.
func FuzzStatusPickle(f *testing.F) {
	f.Add("lenet", "LeNet (MNIST)", "luke", "/jobs", uint8(0), int64(1485252610), int64(123456000), 224, 224, "3", "Squash", true)
	f.Add("réseau", "Réseau 日本語", "", "/j", uint8(1), int64(0), int64(0), 0, -1, "", "", false)
	f.Add("x", strings.Repeat("n", 300), strings.Repeat("u", 255), "/", uint8(2), int64(-5), int64(999999999), 1<<40, -1<<40, "1", "crop", true)
	f.Add("..", "\xff", "\x00", "", uint8(3), int64(1), int64(1), 1, 1, "\xfe", "a", false)
	f.Fuzz(func(t *testing.T, id, name, user, dir string, fw uint8, sec, nsec int64, w, h int, imageType, resize string, labels bool) {
		frameworks := []string{Caffe, Torch, Tensorflow, "mxnet"}
		info := &Info{Name: name, Username: user, Framework: frameworks[int(fw)%len(frameworks)]}
		var files []JobFile
		if labels {
			files = []JobFile{{JobName: LabelsFile, RemoteName: "l"}}
		}
		j := NewJob(id, info, files, dir, time.Unix(sec, nsec%1e9))
		j.ImageInfo = ImageInfo{ImageType: imageType, ResizeMode: resize, Width: w, Height: h}
		b, err := StatusPickle(j)
		if err != nil {
			valid := KnownFramework(j.Framework) && SafeRelName(id) == nil && isASCII(id)
			for _, s := range []string{name, user, dir, imageType, resize} {
				valid = valid && utf8.ValidString(s)
			}
			if valid {
				t.Fatalf("StatusPickle refused a valid job: %v", err)
			}
			return
		}
		checkPickle(t, b, j)
	})
}

// checkPickle asserts the invariants every status.pickle must satisfy.
func checkPickle(t *testing.T, b []byte, j Job) {
	t.Helper()
	if len(b) < 3 || b[0] != 0x80 || b[1] != 0x02 || b[len(b)-1] != '.' {
		t.Fatalf("bad framing: % x ... % x", b[:min(len(b), 2)], b[max(0, len(b)-1):])
	}
	if err := checkOpcodes(b); err != nil {
		t.Fatalf("opcodes: %v", err)
	}
	_, js, _, ts := decodeJob(t, b)
	if id, ok := js["_id"].(pyStr); !ok || id.S != j.ID || ts["job_id"] != js["_id"] {
		t.Fatalf("_id %#v job_id %#v, want %q", js["_id"], ts["job_id"], j.ID)
	}
	if js["_name"] != (pyStr{S: j.Name, Unicode: true}) {
		t.Fatalf("_name %#v, want %q", js["_name"], j.Name)
	}
	if j.Username == "" {
		if js["username"] != nil {
			t.Fatalf("username %#v, want None", js["username"])
		}
	} else if u, ok := js["username"].(pyStr); !ok || u.S != j.Username || u.Unicode == (len(u.S) < 256 && isASCII(u.S)) {
		t.Fatalf("username %#v, want %q", js["username"], j.Username)
	}
	if !samePtr(js["image_info"], ts["image_info"]) {
		t.Fatal("image_info not shared")
	}
	ii := js["image_info"].(*pyDict).M
	if ii["width"] != int64(j.ImageInfo.Width) || ii["height"] != int64(j.ImageInfo.Height) ||
		ii["image_type"].(pyStr).S != j.ImageInfo.ImageType || ii["resize_mode"].(pyStr).S != j.ImageInfo.ResizeMode {
		t.Fatalf("image_info %#v, want %+v", ii, j.ImageInfo)
	}
	if v, _ := history(t, js["status_history"]); v != "I,R,D" {
		t.Fatalf("job history %s", v)
	}
	if v, _ := history(t, ts["status_history"]); v != "I,D" {
		t.Fatalf("task history %s", v)
	}
}

// FuzzParseAux: aux.json never panics; a logo it returns is used only after
// SafeRelName, which must refuse anything that is not one plain segment.
func FuzzParseAux(f *testing.F) {
	for _, seed := range []string{
		`{"license": "3-clause BSD license", "logo": "logo.png", "dataset": "MNIST"}`,
		`{"logo": "../../etc/passwd"}`, `{"logo": 5}`, `{"license": ["x"]}`, `[]`, `null`, ``,
		`{"logo": "http://other-host/x.png"}`, `{"logo": "/etc/passwd"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		aux, err := ParseAux(data)
		if err != nil || aux == nil || aux.Logo == "" {
			return
		}
		if SafeRelName(aux.Logo) == nil && (strings.ContainsAny(aux.Logo, "/\\\x00") || aux.Logo == "." || aux.Logo == "..") {
			t.Fatalf("unsafe logo %q accepted", aux.Logo)
		}
	})
}
