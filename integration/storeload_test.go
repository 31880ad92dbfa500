package integration

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/serve"
)

// Issue 18: what a cold mount costs the store, per model, on each kind of
// server: modelstorefs serve (its master.json says what each folder
// holds), nginx autoindex (HTML with exact sizes, or JSON), and python's
// http.server (names only). Requests are counted by a proxy in front of
// the server.

// loadModels is the size of the generated store.
const loadModels = 60

// counter counts the requests that pass through it, by method, and
// those for the store itself (its master.json, listing and SHA256SUMS)
// apart.
type counter struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	store  int
}

func startCounter(t *testing.T, h http.Handler) *counter {
	t.Helper()
	c := &counter{counts: map[string]int{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.counts[r.Method]++
		if r.URL.Path == "/" || r.URL.Path == "/master.json" || r.URL.Path == "/SHA256SUMS" { // once per listing
			c.store++
		}
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(c.Close)
	return c
}

// startCountingProxy counts the requests sent to the server at target.
func startCountingProxy(t *testing.T, target string) *counter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return startCounter(t, httputil.NewSingleHostReverseProxy(u))
}

// snapshot returns the counts so far and their total, less the
// requests for the store itself.
func (c *counter) snapshot() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{"store": c.store}
	total := -c.store
	for k, v := range c.counts {
		out[k] = v
		total += v
	}
	return out, total
}

// settled waits until no request came for a while (the background
// resolves are done) and returns the counts.
func (c *counter) settled() (map[string]int, int) {
	counts, total := c.snapshot()
	for still := 0; still < 5; {
		time.Sleep(100 * time.Millisecond)
		var now int
		counts, now = c.snapshot()
		if now == total {
			still++
		} else {
			still, total = 0, now
		}
	}
	return counts, total
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts, c.store = map[string]int{}, 0
}

// writeLoadStore writes n models: caffe or torch (every third), weights
// and model definition under their snapshot names, labels; every fourth
// model has no aux.json, every fifth names a license that exists.
func writeLoadStore(t *testing.T, dir string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(18, uint64(n)))
	for i := range n {
		name := fmt.Sprintf("model-%04d", i)
		info := fmt.Sprintf(`{"name": "Model %d", "framework": "caffe", "snapshot file": "snapshot_iter_100.caffemodel", "model file": "original.prototxt", "labels file": "labels.txt", "username": "load", "note": "issue 18"}`, i)
		weights, def := "snapshot_iter_100.caffemodel", "original.prototxt"
		if i%3 == 0 {
			weights, def = "snapshot_30_Model.t7", "model.lua"
			info = strings.NewReplacer(`"caffe"`, `"torch"`, "snapshot_iter_100.caffemodel", weights, "original.prototxt", def).Replace(info)
		}
		files := map[string][]byte{
			"info.json":  []byte(info),
			weights:      make([]byte, 1000+rng.IntN(5000)),
			def:          []byte("name: \"" + name + "\"\n"),
			"labels.txt": []byte("0\n1\n2\n"),
		}
		switch {
		case i%5 == 0:
			files["aux.json"] = []byte(`{"dataset": "MNIST", "license": "BSD"}`)
			files["license.txt"] = []byte("BSD license\n")
		case i%4 != 0:
			files["aux.json"] = []byte(`{"dataset": "MNIST"}`)
		}
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		for f, data := range files {
			writeFile(t, filepath.Join(dir, name, f), string(data))
		}
	}
}

// loadServer is one kind of server in front of the generated store.
type loadServer struct {
	kind   string
	start  func(t *testing.T, dir string) *counter
	lsGrep float64 // target: requests per model for ls + grep models.tsv
	lsLR   float64 // target for ls -lR (-1: none)
}

var loadServers = []loadServer{
	{"modelstorefs serve", func(t *testing.T, dir string) *counter {
		h, err := serve.Handler(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return startCounter(t, h)
	}, 0, 0}, // its master.json says all: want none
	{"modelstorefs serve paged", func(t *testing.T, dir string) *counter {
		// master.json of 4 KiB: most folders are told in folder pages,
		// each page one request for several models.
		h, err := serve.Handler(dir, nil, serve.WithMasterBytes(4<<10))
		if err != nil {
			t.Fatal(err)
		}
		return startCounter(t, h)
	}, 0.25, 0.25},
	{"nginx autoindex html", func(t *testing.T, dir string) *counter {
		return startCountingProxy(t, itest.StartNginxAutoindex(t, dir, "html"))
	}, 3, 3},
	{"nginx autoindex json", func(t *testing.T, dir string) *counter {
		return startCountingProxy(t, itest.StartNginxAutoindex(t, dir, "json"))
	}, 3, 3},
	{"python http.server", func(t *testing.T, dir string) *counter {
		return startCountingProxy(t, itest.StartPython(t, dir))
	}, 3, -1},
}

// TestRequestsPerModel: a cold mount's ls + grep over models.tsv, and a
// cold ls -lR, cost each kind of server at most the requests per
// model (besides master.json and the store's listing, asked once), and
// ls -lR shows the true sizes.
func TestRequestsPerModel(t *testing.T) {
	src := t.TempDir()
	writeLoadStore(t, src, loadModels)
	for _, ls := range loadServers {
		t.Run(strings.ReplaceAll(ls.kind, " ", "_"), func(t *testing.T) {
			c := ls.start(t, src)
			store := itest.StoreName(c.URL)

			m := itest.StartMount(t, []string{c.URL})
			root := filepath.Join(m.Dir, store)
			if got := itest.ListDir(t, root); len(got) < loadModels {
				t.Fatalf("ls shows %d entries, want %d models and more", len(got), loadModels)
			}
			out, err := itest.RunCmd(t, "grep", "-c", "\tyes$", filepath.Join(root, "models.tsv"))
			if err != nil || strings.TrimSpace(out) != strconv.Itoa(loadModels) {
				t.Errorf("grep -c importable models.tsv: %v %q, want %d", err, out, loadModels)
			}
			counts, total := c.settled()
			perModel := float64(total) / loadModels
			t.Logf("%s: ls + grep models.tsv: %.2f requests per model (%v)", ls.kind, perModel, counts)
			if perModel > ls.lsGrep {
				t.Errorf("ls + grep models.tsv: %.2f requests per model, want <= %v", perModel, ls.lsGrep)
			}
			m.Stop(t)

			c.reset()
			m = itest.StartMount(t, []string{c.URL})
			listing, err := itest.RunCmd(t, "ls", "-lR", filepath.Join(m.Dir, store))
			if err != nil {
				t.Fatalf("ls -lR: %v\n%s", err, listing)
			}
			counts, total = c.settled()
			perModel = float64(total) / loadModels
			t.Logf("%s: ls -lR: %.2f requests per model (%v)", ls.kind, perModel, counts)
			if ls.lsLR >= 0 && perModel > ls.lsLR {
				t.Errorf("ls -lR: %.2f requests per model, want <= %v", perModel, ls.lsLR)
			}
			checkListedSizes(t, listing, src)
		})
	}
}

// checkListedSizes compares every store file's size in an ls -lR of the
// store with the file on disk (a job-named file is found through the
// symlink that keeps its store name).
func checkListedSizes(t *testing.T, listing, src string) {
	t.Helper()
	type row struct{ name, target string }
	dirs := map[string][]row{}
	sizes := map[string]map[string]int64{}
	var dir string
	sc := bufio.NewScanner(strings.NewReader(listing))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasSuffix(line, ":") {
			dir = filepath.Base(strings.TrimSuffix(line, ":"))
			sizes[dir] = map[string]int64{}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 9 || (line[0] != '-' && line[0] != 'l') {
			continue
		}
		if line[0] == 'l' {
			dirs[dir] = append(dirs[dir], row{f[8], f[10]})
			continue
		}
		size, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil {
			t.Fatalf("ls -lR line %q: %v", line, err)
		}
		sizes[dir][f[8]] = size
	}
	checked := 0
	for model, files := range sizes {
		if !strings.HasPrefix(model, "model-") {
			continue
		}
		local := map[string]string{}
		for _, r := range dirs[model] {
			local[r.target] = r.name
		}
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			if name == "status.pickle" || name == "error.txt" {
				continue
			}
			onDisk := name
			if l, ok := local[name]; ok {
				onDisk = l
			}
			fi, err := os.Stat(filepath.Join(src, model, onDisk))
			if err != nil {
				t.Errorf("%s/%s shown, but the store has no %s: %v", model, name, onDisk, err)
				continue
			}
			if fi.Size() != files[name] {
				t.Errorf("%s/%s: ls -l shows %d bytes, the store's %s has %d", model, name, files[name], onDisk, fi.Size())
			}
			checked++
		}
	}
	if checked < 4*loadModels {
		t.Errorf("checked the sizes of %d files, want at least %d", checked, 4*loadModels)
	}
}

// TestChangedAfterListing: a file rewritten on the store after the mount
// learned its size and version from one answer about its folder (serve's
// master.json: size and ETag; nginx's HTML listing: a size alone) is
// never read as its old version, nor as a mix: the first read fails or
// gives the new bytes, and once the model is resolved again the folder
// shows the new size and the read gives the new bytes.
func TestChangedAfterListing(t *testing.T) {
	for _, kind := range []string{"serve", "nginx"} {
		t.Run(kind, func(t *testing.T) {
			src := t.TempDir()
			writeLoadStore(t, src, 3)
			var url string
			if kind == "serve" {
				h, err := serve.Handler(src, nil)
				if err != nil {
					t.Fatal(err)
				}
				url = startCounter(t, h).URL
			} else {
				url = itest.StartNginxAutoindex(t, src, "html")
			}
			m := itest.StartMount(t, []string{url})
			model := filepath.Join(m.Dir, itest.StoreName(url), "model-0001")
			weights := filepath.Join(model, "model.caffemodel")
			before := itest.ListDir(t, model) // resolved from the one answer
			if !slices.Contains(before, "model.caffemodel") {
				t.Fatalf("model-0001 shows %q", before)
			}
			fi, err := os.Stat(weights)
			if err != nil {
				t.Fatal(err)
			}
			newData := []byte(strings.Repeat("new weights ", 100))
			if int64(len(newData)) == fi.Size() {
				newData = append(newData, '!')
			}
			writeFile(t, filepath.Join(src, "model-0001", "snapshot_iter_100.caffemodel"), string(newData))

			got, err := readWithin(t, weights)
			if err == nil && string(got) != string(newData) {
				t.Fatalf("first read after the change: %d bytes, not the new %d (old or mixed)", len(got), len(newData))
			}
			t.Logf("first read after the change: %v", err)
			// The model is resolved again: the new size, the new bytes.
			deadline := time.Now().Add(10 * time.Second)
			for {
				fi, err := os.Stat(weights)
				if err == nil && fi.Size() == int64(len(newData)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("stat after the change: %v, size %v, want %d", err, fi, len(newData))
				}
				time.Sleep(200 * time.Millisecond)
			}
			if got, err := readWithin(t, weights); err != nil || string(got) != string(newData) {
				t.Errorf("read once resolved again: %d bytes, %v; want the new %d", len(got), err, len(newData))
			}
		})
	}
}

// readWithin reads a file of the mount, bounded in time.
func readWithin(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	var data []byte
	err := itest.WithTimeout(t, 30*time.Second, "read "+path, func() error {
		var err error
		data, err = os.ReadFile(path)
		return err
	})
	return data, err
}
