package faults

// The fault matrix's store is remotetest's (remote/remotetest), the one
// fault-injecting server of the unit and the integration tests: answers
// spoiled per path and per request (remotetest.Fault), down and back on
// the same port, https, a log of every request. This file adapts it to the
// rows: full URL paths for handlers, one fixed Last-Modified, the cleanup.

import (
	"encoding/pem"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/integration/itest"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// fltModTime is the Last-Modified of every file, on every server: two
// servers holding the same bytes announce the same version.
var fltModTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// fltServer is a remotetest store below base on one 127.0.0.x address.
type fltServer struct {
	*remotetest.Server
	t    *testing.T
	addr string // host:port, kept across down and up
	base string // URL path of the store, "/store/"
}

// fltNewServer serves files (paths below base, e.g. "lenet/info.json") on
// host ("127.0.0.1", "127.0.0.2", ...), port chosen by the kernel.
func fltNewServer(t *testing.T, host, base string, files map[string][]byte) *fltServer {
	t.Helper()
	return fltStart(t, base, files, remotetest.Options{Host: host})
}

// fltNewServerIdle is fltNewServer closing idle keep-alive connections
// after idle (0: never), as nginx's keepalive_timeout does.
func fltNewServerIdle(t *testing.T, host, base string, files map[string][]byte, idle time.Duration) *fltServer {
	t.Helper()
	return fltStart(t, base, files, remotetest.Options{Host: host, IdleTimeout: idle})
}

// fltNewTLSServer is fltNewServer speaking https on 127.0.0.1, with a
// certificate of its own; caFile is the PEM file to give --ca-cert.
func fltNewTLSServer(t *testing.T, base string, files map[string][]byte) (srv *fltServer, caFile string) {
	t.Helper()
	srv = fltStart(t, base, files, remotetest.Options{TLS: true})
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

func fltStart(t *testing.T, base string, files map[string][]byte, opt remotetest.Options) *fltServer {
	t.Helper()
	opt.Prefix = base
	s := remotetest.New(nil, opt)
	t.Cleanup(s.Close)
	for p, data := range files {
		s.SetFile(p, remotetest.File{Data: data, ModTime: fltModTime})
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &fltServer{Server: s, t: t, addr: u.Host, base: u.Path}
}

// url is the store's URL, with userinfo if given ("user:password").
func (s *fltServer) url(userinfo ...string) string {
	if len(userinfo) == 0 {
		return s.URL
	}
	scheme, rest, _ := strings.Cut(s.URL, "://")
	return scheme + "://" + userinfo[0] + "@" + rest
}

// setDown stops answering (connections refused, open ones closed) or
// listens again on the same port.
func (s *fltServer) setDown(down bool) {
	s.t.Helper()
	if err := s.SetDown(down); err != nil {
		s.t.Errorf("fault server down=%v on %s: %v", down, s.addr, err)
	}
}

// put stores (or replaces) a file below base, as a new version.
func (s *fltServer) put(rel string, data []byte, mod time.Time) {
	s.SetFile(rel, remotetest.File{Data: data, ModTime: mod})
}

// rel is a full URL path as the store names it: below base, or whole.
func (s *fltServer) rel(fullPath string) string {
	if rel, ok := strings.CutPrefix(fullPath, s.base); ok {
		return rel
	}
	return fullPath
}

// handle answers a full URL path with fn instead of the files (nil: the
// files again); faults still come first.
func (s *fltServer) handle(fullPath string, fn http.HandlerFunc) {
	if fn == nil {
		s.Intercept(s.rel(fullPath), nil)
		return
	}
	s.Intercept(s.rel(fullPath), func(w http.ResponseWriter, r *http.Request, _ http.HandlerFunc) { fn(w, r) })
}

// file is the current version of the file a request names.
func (s *fltServer) file(r *http.Request) remotetest.File {
	f, _ := s.File(s.rel(r.URL.Path))
	return f
}

// fltBlackHole is a listener that accepts connections and never answers.
func fltNewBlackHole(t *testing.T) *remotetest.BlackHole {
	t.Helper()
	b, err := remotetest.NewBlackHole()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// fltNoise returns n bytes of seeded pseudo-random data.
func fltNoise(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fltBigInfo is the info.json of the synthetic caffe model "big".
const fltBigInfo = `{"name": "Big", "framework": "caffe", "snapshot file": "weights.caffemodel", "model file": "net.prototxt", "creation time": "2024-01-02 03:04:05"}`

// fltStoreFiles is the sample store's lenet plus "big", a caffe model whose
// weights are bigSize bytes of noise, with master.json naming both.
func fltStoreFiles(t *testing.T, bigSize int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"master.json":            []byte(`{"msg": "fault store", "children": ["lenet", "big"]}`),
		"big/info.json":          []byte(fltBigInfo),
		"big/net.prototxt":       []byte("name: \"big\"\nlayer { name: \"data\" type: \"Input\" top: \"data\" }\n"),
		"big/weights.caffemodel": fltNoise(1, bigSize),
	}
	entries, err := os.ReadDir(filepath.Join(itest.StoreDir(), "lenet"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(path.Join(filepath.Join(itest.StoreDir(), "lenet"), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files["lenet/"+e.Name()] = data
	}
	return files
}
