package faults

// Fault-matrix rows of issue 17 ("bounded by what the user set"): a store
// that closes idle keep-alive connections after 1 s, as nginx with a short
// keepalive_timeout (Apache's default is 5 s) does.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

func fltBoundsCases() []fltCase {
	return []fltCase{
		{"idle-close", "store closes idle keep-alive connections after 1 s; cold reads 2.5 s apart", false, fltRowIdleClose},
	}
}

// fltRowIdleClose: a reader reads a cold file (several streams, so several
// connections go idle), pauses longer than the store keeps them, and reads
// another cold file, twice. The closed connections must cost no failed
// request: no EIO, no "retrying" in the daemon's log, no backoff.
func fltRowIdleClose(t *testing.T, r *fltRow) {
	var m *itest.Mount
	defer func() { fltFinish(t, r, m) }()
	const size = 16 << 20
	files := fltStoreFiles(t, size)
	files["master.json"] = []byte(`{"msg": "idle close", "children": ["lenet", "big", "big2", "big3"]}`)
	for i, name := range []string{"big2", "big3"} {
		files[name+"/info.json"] = files["big/info.json"]
		files[name+"/net.prototxt"] = files["big/net.prototxt"]
		files[name+"/weights.caffemodel"] = fltNoise(uint64(i+2), size)
	}
	srv := fltNewServerIdle(t, "127.0.0.1", "/store/", files, time.Second)
	m = itest.StartMount(t, fltStores(srv), "--chunk-size", "1MiB")
	if _, err := fltLs(filepath.Join(m.Dir, "s", "big3"), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var took []string
	for i, name := range []string{"big", "big2", "big3"} {
		if i > 0 {
			time.Sleep(2500 * time.Millisecond) // the store closes every idle connection
		}
		res := fltRead(filepath.Join(m.Dir, "s", name, "model.caffemodel"), 60*time.Second)
		if !fltExpectBytes(t, r, res, files[name+"/weights.caffemodel"], name) {
			r.saw = fmt.Sprintf("%s: %s", name, fltErrno(res.err))
			return
		}
		took = append(took, fltSecs(res.took))
	}
	retrying := fltLogCount(m, "retrying")
	failed := fltLogCountNow(m, "fetch failed")
	r.saw = fmt.Sprintf("3 cold 16 MiB reads, 2.5 s apart: no error, in %s; %d 'retrying' log lines", strings.Join(took, ", "), retrying)
	r.recovery = "n/a: no failed request"
	if retrying > 0 || failed > 0 {
		fltBug(t, r, "%d 'retrying' and %d 'fetch failed' log lines: an idle connection the store closed was taken for a failure", retrying, failed)
	}
}
