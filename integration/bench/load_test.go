package bench

import (
	"bytes"
	"fmt"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/serve"
)

// ---------------------------------------------------------------------------
// Issue 18: (n) what a cold mount costs the store per model, per kind of
// server; (o) 10,000 models and (p) 100,000 models on modelstorefs serve.

const benchLoadModels = 200

// benchLoadKind is a server in front of a store directory.
type benchLoadKind struct {
	name   string
	start  func(t *testing.T, dir string) *benchServer
	lsGrep float64 // target, requests per model: ls + grep models.tsv
	lsLR   float64 // target for ls -lR (0: none)
	master bool    // the store keeps its own master.json (else serve generates one)
}

// benchProxied counts the requests sent to a server nobody here wrote.
func benchProxied(t *testing.T, target string) *benchServer {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return startBenchServer(t, httputil.NewSingleHostReverseProxy(u), 0)
}

func benchServe(t *testing.T, dir string) *benchServer {
	h, err := serve.Handler(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startBenchServer(t, h, 0)
}

var benchLoadKinds = []benchLoadKind{
	{"modelstorefs serve", benchServe, 2, 3, false},
	{"nginx autoindex (HTML)", func(t *testing.T, dir string) *benchServer {
		return benchProxied(t, itest.StartNginxAutoindex(t, dir, "html"))
	}, 3, 3, true},
	{"nginx autoindex (JSON)", func(t *testing.T, dir string) *benchServer {
		return benchProxied(t, itest.StartNginxAutoindex(t, dir, "json"))
	}, 3, 3, true},
	{"python3 -m http.server", func(t *testing.T, dir string) *benchServer {
		return benchProxied(t, itest.StartPython(t, dir))
	}, 3, 0, true},
}

// sectionLoad is (n): a fresh mount of a 200-model store, then ls and grep
// over models.tsv; another fresh mount, then ls -lR; the requests the
// server saw, per model, once the mount went quiet.
func (b *benchState) sectionLoad(t *testing.T) {
	withMaster := t.TempDir()
	benchWriteModelStore(t, withMaster, benchLoadModels)
	generated := t.TempDir()
	benchWriteModelStore(t, generated, benchLoadModels)
	if err := os.Remove(filepath.Join(generated, "master.json")); err != nil {
		t.Fatal(err)
	}
	for _, k := range benchLoadKinds {
		dir := generated
		if k.master {
			dir = withMaster
		}
		srv := k.start(t, dir)
		store := itest.StoreName(srv.URL)
		steps := []struct {
			what   string
			script string
			target float64
		}{
			{"cold ls + grep models.tsv", `ls "$1" >/dev/null && grep -c MNIST "$1"/models.tsv >/dev/null`, k.lsGrep},
			{"cold ls -lR", `ls -lR "$1" >/dev/null`, k.lsLR},
		}
		for _, st := range steps {
			what := fmt.Sprintf("(n) %d models on %s: requests per model, %s", benchLoadModels, k.name, st.what)
			total, storeLevel, counts, err := b.loadRun(t, srv, store, st.script)
			if err != nil {
				t.Errorf("%s: %v", what, err)
				b.add(benchRow{what: what, msfs: "error: " + err.Error(), base: "-", ratio: "-", target: "-", met: "no"})
				continue
			}
			per := float64(total-storeLevel) / benchLoadModels
			target, met := "-", "-"
			if st.target > 0 {
				target, met = fmt.Sprintf("<= %g", st.target), benchYesNo(per <= st.target)
			}
			b.add(benchRow{what: what, msfs: fmt.Sprintf("%.2f (%s)", per, counts), base: "DIGITS' store page: 2", ratio: "-",
				target: target, met: met,
				note: fmt.Sprintf("%d requests in all, %d of them for the store itself (master.json, its listing, SHA256SUMS); per model: the others / %d", total, storeLevel, benchLoadModels)})
		}
	}
}

// loadRun mounts the store (fresh cache), runs script on its directory and
// counts the requests until the mount goes quiet: all of them, those for
// the store's own master.json, listing and SHA256SUMS, and per method.
func (b *benchState) loadRun(t *testing.T, srv *benchServer, store, script string) (total, storeLevel int, counts string, err error) {
	mnt := b.tempDir(t, "mnt-")
	before := srv.snapshot()
	p, err := b.msfsMount(b.tempDir(t, "cache-"), srv.URL)(t, mnt)
	if err != nil {
		return 0, 0, "", err
	}
	defer p.stop()
	if _, err := benchRunTimed(2*time.Minute, nil, "sh", "-c", script, "sh", filepath.Join(mnt, store)); err != nil {
		return 0, 0, "", err
	}
	after := benchQuiet(srv)
	total, counts = benchCountDiff(before, after, "")
	m, _ := benchCountDiff(before, after, "/master.json")
	l, _ := benchCountDiff(before, after, "/")
	sums, _ := benchCountDiff(before, after, "/SHA256SUMS") // asked with the listing, once per store
	return total, m + l + sums, counts, nil
}

// benchQuiet waits until the server saw no request for half a second (the
// background resolves are done) and returns its counts.
func benchQuiet(srv *benchServer) map[string]int {
	last := srv.snapshot()
	for quiet := 0; quiet < 5; {
		time.Sleep(100 * time.Millisecond)
		now := srv.snapshot()
		if fmt.Sprint(now) == fmt.Sprint(last) {
			quiet++
		} else {
			quiet, last = 0, now
		}
	}
	return last
}

// benchWriteSmallModels writes models from..to-1 (caffe), each info.json,
// aux.json, a 64-byte weights file, model definition and labels, in
// parallel (most of the time is the file system's).
func benchWriteSmallModels(t *testing.T, dir string, from, to int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + w; i < to; i += 4 {
				if err := benchWriteSmallModel(dir, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func benchWriteSmallModel(dir string, i int) error {
	name := fmt.Sprintf("model-%06d", i)
	files := map[string]string{
		"info.json": fmt.Sprintf(`{"name": "Model %d", "framework": "caffe", "snapshot file": "snapshot_iter_100.caffemodel", `+
			`"model file": "original.prototxt", "labels file": "labels.txt", "username": "bench", "note": "issue 18 scale"}`, i),
		"aux.json":                     `{"dataset": "MNIST"}`,
		"snapshot_iter_100.caffemodel": strings.Repeat("w", 64),
		"original.prototxt":            "name: \"" + name + "\"\n",
		"labels.txt":                   "0\n1\n",
	}
	if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
		return err
	}
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name, f), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// benchScaleResult is one fresh mount of a large store.
type benchScaleResult struct {
	master         time.Duration // serve making master.json, before the mount
	ls, grep, lsLR time.Duration
	// lsLRWarm and local are the warm ls -lR of the mount and the local
	// one of the store directory, taken in turn: medians of the bench's
	// repetitions (all of them in warm and locals).
	lsLRWarm, local time.Duration
	warm, locals    []time.Duration
	hwm             int64
	err             error
}

// scaleRun mounts a store of n models served by modelstorefs serve (fresh
// cache) and times ls of the store, then the first grep over models.tsv;
// with lsLR, also ls -lR twice (the second warm) against ls -lR of the
// store directory on disk; then the daemon's peak RSS.
func (b *benchState) scaleRun(t *testing.T, srv *benchServer, src string, n int, lsLR bool) (r benchScaleResult) {
	mnt := b.tempDir(t, "mnt-")
	// A store server that is up: serve has made master.json (it reuses
	// one for 2 s); the time it takes is noted apart.
	var err error
	if r.master, err = benchRunTimed(time.Minute, nil, "curl", "-sf", "-o", "/dev/null", srv.URL+"/master.json"); err != nil {
		r.err = fmt.Errorf("master.json: %w", err)
		return r
	}
	p, err := b.msfsMount(b.tempDir(t, "cache-"), srv.URL)(t, mnt)
	if err != nil {
		r.err = err
		return r
	}
	defer p.stop()
	dir := filepath.Join(mnt, itest.StoreName(srv.URL))
	var out bytes.Buffer
	if r.ls, err = benchRunTimed(2*time.Minute, &out, "ls", dir); err != nil {
		r.err = fmt.Errorf("ls: %w", err)
		return r
	}
	if got := bytes.Count(out.Bytes(), []byte("model-")); got != n {
		r.err = fmt.Errorf("ls shows %d models, want %d", got, n)
		return r
	}
	out.Reset()
	if r.grep, err = benchRunTimed(10*time.Minute, &out, "grep", "-c", "MNIST", filepath.Join(dir, "models.tsv")); err != nil {
		r.err = fmt.Errorf("grep models.tsv: %w%s", err, p.exitInfo())
		return r
	}
	if got := strings.TrimSpace(out.String()); got != fmt.Sprint(n) {
		r.err = fmt.Errorf("grep -c MNIST models.tsv: %s, want %d", got, n)
		return r
	}
	if lsLR {
		if r.lsLR, err = benchRunTimed(5*time.Minute, nil, "ls", "-lR", dir); err != nil {
			r.err = fmt.Errorf("ls -lR: %w", err)
			return r
		}
		if err := b.warmLsLR(&r, dir, src); err != nil {
			r.err = fmt.Errorf("warm ls -lR: %w", err)
			return r
		}
	}
	r.hwm, r.err = benchVmHWM(p.cmd.Process.Pid)
	return r
}

// warmLsLR times ls -lR of the mounted store (warm) and of the store
// directory on disk in turn, the bench's repetitions of each, and keeps
// the medians.
func (b *benchState) warmLsLR(r *benchScaleResult, dir, src string) error {
	if _, err := benchRunTimed(time.Minute, nil, "ls", "-lR", src); err != nil { // its inodes in memory too
		return err
	}
	for range b.reps {
		d, err := benchRunTimed(5*time.Minute, nil, "ls", "-lR", dir)
		if err != nil {
			return err
		}
		r.warm = append(r.warm, d)
		if d, err = benchRunTimed(time.Minute, nil, "ls", "-lR", src); err != nil {
			return err
		}
		r.locals = append(r.locals, d)
	}
	r.lsLRWarm, r.local = benchMedianDur(r.warm), benchMedianDur(r.locals)
	return nil
}

// benchMedianDur is the median of ds.
func benchMedianDur(ds []time.Duration) time.Duration {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d)
	}
	return time.Duration(benchMedian(fs))
}

// benchDursList shows ds, in seconds.
func benchDursList(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(s, ", ") + " s"
}

// sectionScale is (o) and (p): 10,000 models, then 50,000 and 100,000, on
// modelstorefs serve (its generated master.json).
func (b *benchState) sectionScale(t *testing.T) {
	src := t.TempDir()
	start := time.Now()
	benchWriteSmallModels(t, src, 0, 10_000)
	t.Logf("wrote 10,000 models in %s", time.Since(start).Round(time.Millisecond))
	srv := benchServe(t, src)
	b.settle()
	r := b.scaleRun(t, srv, src, 10_000, true)
	if r.err != nil {
		t.Errorf("10,000 models: %v", r.err)
	}
	mib := func(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
	note := fmt.Sprintf("fresh mount and cache, modelstorefs serve over the store directory, which had just made master.json "+
		"(%s: it reuses one 2 s); from the mount up", benchDur(r.master))
	b.add(benchRow{what: "(o) 10,000 models: ls of the store", msfs: benchDur(r.ls), base: "before: 0.87-0.91 s", ratio: "-",
		target: "<= 0.5 s", met: benchYesNo(r.err == nil && r.ls <= 500*time.Millisecond), note: note})
	b.add(benchRow{what: "(o) 10,000 models: first grep over models.tsv", msfs: benchDur(r.grep), base: "before: 10.7-14 s", ratio: "-",
		target: "<= 2 s", met: benchYesNo(r.err == nil && r.grep <= 2*time.Second), note: "right after the ls"})
	b.add(benchRow{what: "(o) 10,000 models: warm ls -lR", msfs: benchDur(r.lsLRWarm), base: "local ls -lR of the store directory: " + benchDur(r.local),
		ratio: fmt.Sprintf("%.2fx the local time", r.lsLRWarm.Seconds()/r.local.Seconds()), target: "<= 1.5x local",
		met: benchYesNo(r.err == nil && r.lsLRWarm.Seconds() <= 1.5*r.local.Seconds()),
		note: fmt.Sprintf("medians of %d, in turn: mount %s, local %s; the cold ls -lR before them took %s; load %s; before: 7.5-8.0 s against 1.3-1.9 s local",
			len(r.warm), benchDursList(r.warm), benchDursList(r.locals), benchDur(r.lsLR), benchLoad())})
	b.add(benchRow{what: "(o) 10,000 models: peak RSS (VmHWM) of the daemon", msfs: mib(r.hwm), base: "before: 245 MiB", ratio: "-",
		target: "<= 120 MiB", met: benchYesNo(r.err == nil && r.hwm <= 120<<20), note: "after ls, grep over models.tsv and two ls -lR"})
	b.scaleLarge(t, src)
}

// scaleLarge is (p): the 10,000-model store grown to 50,000, then 100,000;
// at each size the bench's repetitions of a fresh mount, medians.
func (b *benchState) scaleLarge(t *testing.T, src string) {
	var meds []benchScaleResult
	for _, n := range []int{50_000, 100_000} {
		what := fmt.Sprintf("(p) %d models: ls, then grep over models.tsv", n)
		if !b.fits(15 * time.Minute) {
			b.skipRow(what, "-", "skipped: time budget")
			return
		}
		start := time.Now()
		benchWriteSmallModels(t, src, n/2, n)
		if n == 50_000 {
			benchWriteSmallModels(t, src, 10_000, 25_000)
		}
		t.Logf("store grown to %d models in %s", n, time.Since(start).Round(time.Millisecond))
		srv := benchServe(t, src)
		var runs []benchScaleResult
		for range b.reps {
			b.settle()
			r := b.scaleRun(t, srv, src, n, false)
			if r.err != nil {
				t.Errorf("%d models: %v", n, r.err)
			}
			runs = append(runs, r)
		}
		med := benchScaleMedian(runs)
		meds = append(meds, med)
		b.add(benchRow{what: what, msfs: fmt.Sprintf("ls %s, grep %s, VmHWM %.0f MiB", benchDur(med.ls), benchDur(med.grep), float64(med.hwm)/(1<<20)),
			base: "-", ratio: "-", target: "listed and grep-able, <= 600 MiB",
			met: benchYesNo(med.err == nil && med.hwm <= 600<<20),
			note: fmt.Sprintf("fresh mounts and caches, medians of %d (ls + grep: %s; VmHWM, the largest: %.0f MiB); master.json made in %s just before (it describes about 18,000 folders, the others are in folder pages made when the mount first asks); load %s",
				len(runs), benchDursList(med.warm), float64(benchMaxHWM(runs))/(1<<20), benchDur(med.master), benchLoad())})
	}
	small, large := meds[0], meds[1]
	ratio := benchMedianDur(large.warm).Seconds() / benchMedianDur(small.warm).Seconds()
	b.add(benchRow{what: "(p) 100,000 against 50,000 models: time of ls + grep", msfs: fmt.Sprintf("%.2fx", ratio), base: "-", ratio: "-",
		target: "<= 2.2x", met: benchYesNo(small.err == nil && large.err == nil && ratio <= 2.2), note: "nothing quadratic; medians of ls + grep"})
}

// benchScaleMedian is the median of each of runs' times and peaks (warm:
// each run's ls + grep); its err is the first run's error.
func benchScaleMedian(runs []benchScaleResult) (m benchScaleResult) {
	var ls, grep, master, sum []time.Duration
	var hwm []float64
	for _, r := range runs {
		if r.err != nil && m.err == nil {
			m.err = r.err
		}
		ls, grep, master = append(ls, r.ls), append(grep, r.grep), append(master, r.master)
		sum = append(sum, r.ls+r.grep)
		hwm = append(hwm, float64(r.hwm))
	}
	m.ls, m.grep, m.master, m.warm = benchMedianDur(ls), benchMedianDur(grep), benchMedianDur(master), sum
	m.hwm = int64(benchMedian(hwm))
	return m
}

func benchMaxHWM(runs []benchScaleResult) (n int64) {
	for _, r := range runs {
		n = max(n, r.hwm)
	}
	return n
}
