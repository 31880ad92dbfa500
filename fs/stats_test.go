package fs

import (
	"encoding/json"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// readStats opens /.stats and decodes it, checking it is valid JSON with
// the documented sections.
func readStats(t *testing.T, e *env) Stats {
	t.Helper()
	sf := lookupNode[*statsFile](t, e.root, StatsName)
	fh, fl := openFile(t, sf, syscall.O_RDONLY)
	defer release(t, fh)
	if fl&fuse.FOPEN_DIRECT_IO == 0 {
		t.Errorf(".stats open flags %#x: a snapshot per open, with direct I/O", fl)
	}
	data := readAllHandle(t, fh)
	if !json.Valid(data) {
		t.Fatalf(".stats is not JSON:\n%s", data)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"pid", "mounted", "stores", "content", "bytes_served", "errors"} {
		if _, ok := raw[key]; !ok {
			t.Errorf(".stats has no %q: %s", key, data)
		}
	}
	var content map[string]json.RawMessage
	if err := json.Unmarshal(raw["content"], &content); err != nil {
		t.Fatalf(".stats content: %v", err)
	}
	for _, key := range []string{"hits", "misses", "files", "used_bytes", "max_bytes"} {
		if _, ok := content[key]; !ok {
			t.Errorf(".stats content has no %q: %s", key, raw["content"])
		}
	}
	var st Stats
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStatsFile(t *testing.T) {
	e := newEnv(t, storeSpec{name: "sample"}, storeSpec{name: "other"})
	if a := getattr(t, lookupNode[*statsFile](t, e.root, StatsName)); a.Mode != syscall.S_IFREG|0o444 {
		t.Errorf(".stats mode %o", a.Mode)
	}

	st := readStats(t, e)
	if len(st.Stores) != 2 || st.Stores[0].Name != "sample" || st.Stores[1].Name != "other" {
		t.Fatalf("stores %+v, want sample and other in mount order", st.Stores)
	}
	for i, s := range st.Stores {
		if s.URL != e.srvs[i].URL {
			t.Errorf("%s: url %q, want %q", s.Name, s.URL, e.srvs[i].URL)
		}
		if s.Models != -1 || s.Requests != 0 {
			t.Errorf("%s before any listing: models %d, requests %d; want -1, 0", s.Name, s.Models, s.Requests)
		}
	}
	if st.PID != os.Getpid() {
		t.Errorf("pid %d, want this process's %d", st.PID, os.Getpid())
	}
	if st.Mounted.IsZero() || time.Since(st.Mounted) > time.Minute {
		t.Errorf("mounted %v", st.Mounted)
	}
	if st.Content.MaxBytes <= 0 {
		t.Errorf("content max_bytes %d", st.Content.MaxBytes)
	}

	// Read a remote file: the counters move.
	rf := lookupNode[*remoteFile](t, e.modelNode(t, "lenet"), lenetJobWeights)
	fh, _ := openFile(t, rf, syscall.O_RDONLY)
	data := readAllHandle(t, fh)
	release(t, fh)
	e.resolveAll()
	// The reader had every byte before the cache file was committed.
	testutil.WaitFor(t, "the cache file to be committed", func() bool { return e.content.Stats().Files == 1 })

	st = readStats(t, e)
	s := st.Stores[0]
	if s.Models != len(sampleModels) {
		t.Errorf("models %d, want %d", s.Models, len(sampleModels))
	}
	if s.Requests == 0 || s.BytesReceived < int64(len(data)) {
		t.Errorf("requests %d, bytes received %d (read %d)", s.Requests, s.BytesReceived, len(data))
	}
	if !s.LastRefresh.Equal(e.cat.LastRefresh(e.st())) {
		t.Errorf("last_refresh %v, catalog %v", s.LastRefresh, e.cat.LastRefresh(e.st()))
	}
	if st.Stores[1].Models != -1 || st.Stores[1].Requests != 0 {
		t.Errorf("other store was touched: %+v", st.Stores[1])
	}
	if st.BytesServed != int64(len(data)) {
		t.Errorf("bytes_served %d, read %d", st.BytesServed, len(data))
	}
	if st.Content.Misses != 1 || st.Content.Files != 1 || st.Content.UsedBytes != int64(len(data)) {
		t.Errorf("content %+v, want one miss, one complete file of %d bytes", st.Content, len(data))
	}
	if len(st.Errors) != 0 {
		t.Errorf("errors %v, want none", st.Errors)
	}
}
