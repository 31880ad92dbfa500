package integration

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// TestStatsAndXattrs: /.stats counts what was fetched and served, and every
// remote file carries user.modelstore.* attributes.
func TestStatsAndXattrs(t *testing.T) {
	src := copyStore(t)
	s := startGoStore(t, src, "/")
	m := startMount(t, []string{s.base})
	weights := filepath.Join(m.dir, storeName(s.base), "lenet", "model.caffemodel")
	data := readFile(t, weights)

	xattr := func(name string) string {
		buf := make([]byte, 4096)
		n, err := syscall.Getxattr(weights, "user.modelstore."+name, buf)
		if err != nil {
			t.Fatalf("getxattr %s: %v", name, err)
		}
		return string(buf[:n])
	}
	if got, want := xattr("url"), s.base+"lenet/snapshot_iter_28140.caffemodel"; got != want {
		t.Errorf("url = %q, want %q", got, want)
	}
	if got := xattr("store"); got != storeName(s.base) {
		t.Errorf("store = %q", got)
	}
	if got := xattr("cached"); got != strconv.Itoa(len(data)) {
		t.Errorf("cached = %q, want %d", got, len(data))
	}
	if xattr("last_modified") == "" {
		t.Error("no last_modified")
	}
	if _, err := syscall.Getxattr(weights, "user.other", make([]byte, 64)); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("unknown attribute: %v, want ENODATA", err)
	}

	var st struct {
		Stores []struct {
			Name          string `json:"name"`
			Requests      int64  `json:"requests"`
			BytesReceived int64  `json:"bytes_received"`
			Models        int    `json:"models"`
		} `json:"stores"`
		Content struct {
			Misses int64 `json:"misses"`
			Files  int   `json:"files"`
			Used   int64 `json:"used_bytes"`
		} `json:"content"`
	}
	raw := readFile(t, filepath.Join(m.dir, ".stats"))
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf(".stats is not JSON: %v\n%s", err, raw)
	}
	if len(st.Stores) != 1 || st.Stores[0].Models != 4 || st.Stores[0].Requests == 0 ||
		st.Stores[0].BytesReceived < int64(len(data)) {
		t.Errorf("store stats = %+v", st.Stores)
	}
	if st.Content.Misses < 1 || st.Content.Files < 1 || st.Content.Used < int64(len(data)) {
		t.Errorf("content stats = %+v", st.Content)
	}
	if _, err := os.OpenFile(filepath.Join(m.dir, ".stats"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write-open of .stats: %v, want EROFS", err)
	}
}
