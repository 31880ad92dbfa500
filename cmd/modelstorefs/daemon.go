package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
)

// runDaemon is "mount --daemon" (and the fstab helper): it runs this same
// command line without --daemon as a detached process (own session, output
// to the log file) and returns once the filesystem is mounted, or with the
// daemon's last log lines when it exits first. Store URLs go to the daemon
// in its environment, not its argv, where other users could read a
// password in them.
func runDaemon(c *cli.Context, cfg mountConfig) error {
	// Refuse here what the daemon would refuse, while a terminal shows it.
	if err := checkMountpoint(cfg.Mountpoint, cfg.AllowNonEmpty, zap.NewNop()); err != nil {
		return err
	}
	if err := checkFUSEAccess(cfg.AllowOther); err != nil {
		return err
	}
	args, _ := c.App.Metadata[argsKey].([]string)
	if len(args) < 2 {
		return fmt.Errorf("mount --daemon: no command line to run")
	}
	childArgs, stores, headers := daemonArgs(args[1:])
	logFile := cfg.LogFile
	if logFile == "" {
		logFile = filepath.Join(cfg.CacheDir, "modelstorefs.log")
	}
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return fmt.Errorf("--log-file: %w", err)
	}
	logf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("--log-file: %w", err)
	}
	defer logf.Close()
	start, _ := logf.Seek(0, io.SeekEnd)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, childArgs...)
	cmd.Env = os.Environ()
	if len(stores) > 0 {
		cmd.Env = append(withoutEnv(cmd.Env, storeEnv), storeEnv+"="+strings.Join(stores, ","))
	}
	if len(headers) > 0 {
		if env := os.Getenv(headersEnv); env != "" {
			headers = append([]string{env}, headers...)
		}
		cmd.Env = append(withoutEnv(cmd.Env, headersEnv), headersEnv+"="+strings.Join(headers, "\n"))
	}
	cmd.Stdout, cmd.Stderr = logf, logf                  // panics too
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive mount(8) and the terminal
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		if m := mountAt(cfg.Mountpoint); m != nil && isOurs(m) {
			fmt.Fprintf(c.App.ErrWriter, "modelstorefs: mounted on %s; daemon pid %d logs to %s\n", cfg.Mountpoint, cmd.Process.Pid, logFile)
			return nil // the daemon runs on, detached; its Wait goroutine ends with this process
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the daemon exited (%v) before mounting; its log (%s):\n%s", err, logFile, tail(logFile, start))
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("not mounted after 60s; see %s", logFile)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// daemonArgs turns a normalized "mount --daemon ..." command line into the
// daemon's: without --daemon, and with the --store and --header values
// taken out (the daemon gets them in DIGITS_MODEL_STORE_URL and
// MODELSTOREFS_HEADERS).
func daemonArgs(args []string) (child, stores, headers []string) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			return append(child, args[i:]...), stores, headers
		case a == "--daemon" || strings.HasPrefix(a, "--daemon="):
		case a == "--store" && i+1 < len(args):
			stores = append(stores, args[i+1])
			i++
		case a == "--header" && i+1 < len(args):
			headers = append(headers, args[i+1])
			i++
		default:
			child = append(child, a)
		}
	}
	return child, stores, headers
}

func withoutEnv(env []string, key string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// tail returns what was appended to a log file since offset (at most 8 KiB).
func tail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 8<<10)
	n, _ := f.ReadAt(buf, offset)
	return string(buf[:n])
}
