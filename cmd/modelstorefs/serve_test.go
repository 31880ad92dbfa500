package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/serve"
)

// runStoreTools runs serve and check through a small app, as the real
// command line does once they are registered.
func runStoreTools(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name:     "modelstorefs",
		Commands: []*cli.Command{serveCommand(), checkCommand()},
		Writer:   &out, ErrWriter: &errOut,
	}
	err = app.RunContext(ctx, append([]string{"modelstorefs"}, args...))
	return out.String(), errOut.String(), err
}

func storeToolsCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// goodStore writes a one-model store without problems.
func goodStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"master.json":        `{"msg": "good", "children": ["lenet"]}`,
		"lenet/info.json":    `{"name": "LeNet", "framework": "caffe", "snapshot file": "w.caffemodel", "model file": "net.prototxt"}`,
		"lenet/w.caffemodel": "weights",
		"lenet/net.prototxt": "net",
		"lenet/aux.json":     `{"license": "BSD", "logo": "logo.png"}`,
		"lenet/license.txt":  "BSD",
		"lenet/logo.png":     "PNG",
		"lenet/.hidden":      "x",
	}
	testutil.WriteTree(t, dir, files)
	return dir
}

const sampleStore = "../../integration/testdata/store"

func TestCheckCommand(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("NETRC", filepath.Join(t.TempDir(), "none"))
	tests := []struct {
		name    string
		args    []string
		fails   bool
		stdout  []string
		errText []string
	}{
		{"sample store", []string{"check", sampleStore}, true,
			[]string{"broken: error: info.json is not valid JSON", "lenet: warning: solver.prototxt is not on the store", "4 models, 3 importable, 3 problems"},
			[]string{"1 of 4 models cannot be imported"}},
		{"good store", []string{"check", goodStore(t)}, false, []string{"1 model, 1 importable, 0 problems\n"}, nil},
		{"no target, no store", []string{"check"}, true, nil, []string{"DIR or URL", "--store", "DIGITS_MODEL_STORE_URL"}},
		{"a target and --store", []string{"check", "--store", "http://127.0.0.1:1/", sampleStore}, true, nil, []string{"not both"}},
		{"two targets", []string{"check", "a", "b"}, true, nil, []string{"DIR or URL", "2"}},
		{"missing dir", []string{"check", filepath.Join(t.TempDir(), "nope")}, true, nil, []string{"nope"}},
		{"unreachable URL", []string{"check", "http://127.0.0.1:1/"}, true, nil, []string{"127.0.0.1:1"}},
		{"bad CA file", []string{"check", "--ca-cert", "/nonexistent.pem", "http://127.0.0.1:1/"}, true, nil, []string{"--ca-cert"}},
		{"bad log level", []string{"check", "--log-level", "loud", sampleStore}, true, nil, []string{"--log-level"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runStoreTools(storeToolsCtx(t), tc.args...)
			if (err != nil) != tc.fails {
				t.Fatalf("err = %v, want failure %v\n%s", err, tc.fails, out)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.errText {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not mention %q", err, w)
				}
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeCommand serves the sample store, reads it, checks it over
// HTTP with the check command, then stops it as a signal would.
func TestServeCommand(t *testing.T) {
	noStoreEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the digests, not in ~/.cache
	t.Setenv("NETRC", filepath.Join(t.TempDir(), "none"))
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := runStoreTools(ctx, "serve", "--addr", addr, "--log-level", "warn", sampleStore)
		done <- err
	}()

	base := "http://" + addr + "/"
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v", err)
		default:
		}
		resp, err := http.Get(base + "master.json")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never answered: %v", err)
		}
	}
	want, _ := os.ReadFile(filepath.Join(sampleStore, "master.json"))
	if !bytes.Equal(body, want) {
		t.Errorf("master.json %q, want the store's own %q", body, want)
	}
	req, _ := http.NewRequest("GET", base+"lenet/snapshot_iter_28140.caffemodel", nil)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || len(part) != 100 {
		t.Errorf("ranged GET: %d, %d bytes", resp.StatusCode, len(part))
	}

	out, _, err := runStoreTools(storeToolsCtx(t), "check", base)
	if err == nil || !strings.Contains(out, "broken: error:") || !strings.Contains(out, "4 models, 3 importable, 3 problems") {
		t.Errorf("check %s: %v\n%s", base, err, out)
	}

	cancel() // what main does on SIGINT/SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after the signal: %v, want nil (exit 0)", err)
		}
	case <-time.After(serve.ShutdownTimeout + 5*time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := http.Get(base); err == nil {
		t.Error("still serving after the signal")
	}
}

func TestServeCommandErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"), 0o644)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name    string
		args    []string
		mention string
	}{
		{"no DIR", []string{"serve"}, "DIR"},
		{"two DIRs", []string{"serve", sampleStore, sampleStore}, "DIR"},
		{"missing DIR", []string{"serve", "--addr", "127.0.0.1:0", filepath.Join(t.TempDir(), "nope")}, "nope"},
		{"DIR is a file", []string{"serve", "--addr", "127.0.0.1:0", file}, "not a directory"},
		{"busy address", []string{"serve", "--addr", busy.Addr().String(), sampleStore}, busy.Addr().String()},
		{"bad log format", []string{"serve", "--log-format", "xml", sampleStore}, "--log-format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runStoreTools(storeToolsCtx(t), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.mention)
			}
		})
	}
}

func TestServeAndCheckHelp(t *testing.T) {
	for cmd, wants := range map[string][]string{
		"serve": {"DIR", "--addr", "127.0.0.1:8000", "Examples:", "modelstorefs serve ./mystore", "master.json", "symlink"},
		"check": {"DIR|URL", "Examples:", "modelstorefs check ./mystore", "modelstorefs check http://", "Exit status", "--ca-cert"},
	} {
		out, _, err := runStoreTools(context.Background(), cmd, "--help")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help lacks %q:\n%s", cmd, w, out)
			}
		}
	}
}
