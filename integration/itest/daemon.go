package itest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// Servers nobody here wrote (nginx, squid), run for real as children of
// the test.

// Tool finds a Debian daemon (nginx, squid). Under CI it must be
// there (.ci/run installs it); elsewhere the test is skipped without it.
func Tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
			return "/usr/sbin/" + name
		}
		testutil.SkipOrFail(t, "%s not installed (apt-get install %s): %v", name, name, err)
	}
	return path
}

// Daemon is a server (nginx, squid) running in the foreground as a child
// of the test.
type Daemon struct {
	name string
	cmd  *exec.Cmd
	logs *SyncBuffer
	done chan struct{}
}

// StartDaemon runs argv in its own process group and stops it when the
// test ends: SIGTERM (nginx and squid then stop their workers and
// helpers), and SIGKILL to the group if it is still there 20s later.
func StartDaemon(t *testing.T, name, addr string, argv ...string) *Daemon {
	t.Helper()
	d := &Daemon{name: name, logs: &SyncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() { d.Stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("%s exited before listening on %s:\n%s", name, addr, d.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 30s:\n%s", name, addr, d.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *Daemon) Stop(t *testing.T) {
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not exit within 20s of SIGTERM", d.name)
			// Not reaped yet, so the group is still ours: the
			// master and its workers.
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", d.name, d.logs)
	}
}

// StartNginxAutoindex serves dir with nginx's autoindex, in format "html"
// (exact sizes, the default) or "json" (autoindex_format json), on a
// loopback port, and returns its URL (ending in "/").
func StartNginxAutoindex(t *testing.T, dir, format string) string {
	t.Helper()
	bin := Tool(t, "nginx")
	conf := t.TempDir()
	port := FreePort(t)
	main := fmt.Sprintf(`user root;
worker_processes 1;
error_log stderr warn;
pid %[1]s/nginx.pid;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp_body;
	proxy_temp_path %[1]s/tmp_proxy;
	fastcgi_temp_path %[1]s/tmp_fastcgi;
	uwsgi_temp_path %[1]s/tmp_uwsgi;
	scgi_temp_path %[1]s/tmp_scgi;
	server {
		listen 127.0.0.1:%[2]d;
		root %[3]s;
		location / { autoindex on; autoindex_format %[4]s; }
	}
}
`, conf, port, dir, format)
	if err := os.WriteFile(filepath.Join(conf, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	StartDaemon(t, "nginx", fmt.Sprintf("127.0.0.1:%d", port),
		bin, "-p", conf, "-c", filepath.Join(conf, "nginx.conf"), "-g", "daemon off;")
	return fmt.Sprintf("http://127.0.0.1:%d/", port)
}
