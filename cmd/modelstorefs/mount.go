package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/fs"
	"github.com/modelstorefs/modelstorefs/remote"
)

// runMount mounts, serves until a signal or an external unmount, then
// tears everything down in order and returns.
func runMount(ctx context.Context, cfg mountConfig, stopSignals context.CancelFunc) error {
	log, err := newLoggerTo(cfg.LogLevel, cfg.LogFormat, cfg.LogFile)
	if err != nil {
		return err
	}
	defer syncLogger(log)

	if err := checkMountpoint(cfg.Mountpoint, cfg.AllowNonEmpty, log); err != nil {
		return err
	}
	if err := checkFUSEAccess(cfg.AllowOther); err != nil {
		return err
	}

	catalog, closeCatalog, err := openCatalog(cfg.storeConfig, cfg.JobsDir, log)
	if err != nil {
		return err
	}
	defer closeCatalog()
	stores := catalog.Stores()
	fsys := fs.New(fs.Options{Catalog: catalog, Logger: log.Named("fs")})
	defer fsys.Close()

	names, urls := make([]string, len(stores)), make([]string, len(stores))
	for i, s := range cfg.Stores {
		urls[i] = stores[i].Remote.Base().String() // never with credentials
		names[i] = s.Name + "=" + urls[i]
	}
	server, err := fs.Mount(cfg.Mountpoint, fsys, fs.MountOptions{
		AllowOther: cfg.AllowOther, Debug: cfg.DebugFuse, Source: strings.Join(urls, ","),
	})
	if err != nil {
		return mountFailed(err)
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	probes := probeStores(probeCtx, cfg.storeConfig, stores, log)
	defer func() {
		stopProbes()
		probes.Wait()
	}()
	log.Info("mounted", zap.String("mountpoint", cfg.Mountpoint), zap.Strings("stores", names),
		zap.String("cache_dir", cfg.CacheDir), zap.String("version", version))
	if err := sdNotify("READY=1\nSTATUS=mounted on " + cfg.Mountpoint); err != nil {
		log.Warn("systemd notification failed", zap.Error(err))
	}

	served := make(chan struct{})
	go func() {
		server.Wait()
		close(served)
	}()
	select {
	case <-served:
		log.Info("unmounted from outside", zap.String("mountpoint", cfg.Mountpoint))
		return nil
	case <-ctx.Done():
	}
	stopSignals() // a second signal now kills the process
	_ = sdNotify("STOPPING=1")
	log.Info("signal received, unmounting", zap.String("mountpoint", cfg.Mountpoint))
	lazy, err := fs.Unmount(server, cfg.Mountpoint)
	if err != nil {
		return err
	}
	if lazy {
		// Detached: open files keep working until closed, for a while.
		log.Warn("files still open: unmounted lazily; serving them a little longer", zap.String("mountpoint", cfg.Mountpoint),
			zap.Duration("grace", lazyGrace))
		select {
		case <-served:
		case <-time.After(lazyGrace):
			log.Warn("files still open after the grace period: they will get errors", zap.String("mountpoint", cfg.Mountpoint))
		}
	} else {
		<-served
	}
	log.Info("unmounted", zap.String("mountpoint", cfg.Mountpoint))
	return nil
}

// lazyGrace is how long a lazily unmounted filesystem keeps serving files
// that are still open, before the daemon exits anyway.
const lazyGrace = 5 * time.Second

// openCatalog builds the stores' clients, the content cache and the
// catalog; the returned function closes them in order.
func openCatalog(cfg storeConfig, jobsDir string, log *zap.Logger) (*cache.Catalog, func(), error) {
	// Per-request bounds follow the retry window, so that a stalled or
	// silent request leaves room for retries within it.
	ropts := remote.Options{
		UserAgent:     "modelstorefs/" + version,
		StallTimeout:  clamp(cfg.RetryWindow/3, 2*time.Second, 30*time.Second),
		HeaderTimeout: clamp(cfg.RetryWindow/2, 5*time.Second, 30*time.Second),
	}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, nil, fmt.Errorf("--ca-cert: %w", err)
		}
		ropts.RootCAs = x509.NewCertPool()
		if !ropts.RootCAs.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--ca-cert %s: no PEM certificate found", cfg.CACert)
		}
	}
	stores := make([]*cache.Store, len(cfg.Stores))
	for i, s := range cfg.Stores {
		rs, err := remote.NewStore(s.URL, ropts)
		if err != nil {
			return nil, nil, err
		}
		stores[i] = &cache.Store{Name: s.Name, Remote: rs}
	}
	content, err := cache.NewStreamContent(cache.StreamConfig{
		Dir: cfg.CacheDir, MaxBytes: cfg.CacheSize, MinFree: cfg.CacheMinFree, RetryWindow: cfg.RetryWindow,
		ChunkSize: cfg.ChunkSize, Parallel: cfg.ReadParallel, Logger: log.Named("content"),
	})
	if err != nil {
		return nil, nil, err
	}
	catalog := cache.NewCatalog(stores, content, cache.Config{
		TTL: cfg.TTL, JobsDir: jobsDir, Reserved: fs.ReservedStoreNames, Logger: log.Named("catalog"),
		MetaDir: filepath.Join(cfg.CacheDir, "meta"),
	})
	return catalog, func() {
		catalog.Close()
		content.Close()
	}, nil
}

// checkMountpoint makes sure dir is a directory we can mount on: not a
// modelstorefs mount already (a second one would stack silently) and, unless
// allowNonEmpty, empty (a mount would hide its files). A dead FUSE mount
// left by a killed daemon ("transport endpoint is not connected") is
// detached first.
func checkMountpoint(dir string, allowNonEmpty bool, log *zap.Logger) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, syscall.ENOTCONN) {
		log.Warn("stale mount found (transport endpoint is not connected): detaching it", zap.String("mountpoint", dir))
		if lerr := fs.LazyUnmount(dir); lerr != nil {
			return fmt.Errorf("%s is a dead mount and detaching it failed (%v); run: modelstorefs unmount %s", dir, lerr, dir)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mountpoint %s is not a directory", dir)
	}
	if info := mountAt(dir); info != nil && isOurs(info) {
		return fmt.Errorf("%s is already a modelstorefs mount (of %s); unmount it first: modelstorefs unmount %s", dir, info.Source, dir)
	}
	if allowNonEmpty {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	names, _ := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return fmt.Errorf("mountpoint %s is not empty: the mount would hide its files; use an empty directory, or --allow-non-empty (-o nonempty)", dir)
	}
	return nil
}

// mountAt returns the mount table's entry for dir, or nil.
func mountAt(dir string) *mountinfo.Info {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil || len(infos) == 0 {
		return nil
	}
	return infos[len(infos)-1] // the topmost
}

// isOurs reports whether a mount is a modelstorefs FUSE filesystem.
func isOurs(m *mountinfo.Info) bool { return m.FSType == "fuse.modelstorefs" }

// checkFUSEAccess explains up front what a non-root mount lacks, instead of
// go-fuse's "fusermount exited with code 256".
func checkFUSEAccess(allowOther bool) error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return errors.New("/dev/fuse does not exist: load the fuse kernel module (modprobe fuse), or in a container pass the device (--device /dev/fuse)")
	case err != nil:
		return fmt.Errorf("cannot open /dev/fuse (%w): check its permissions (ls -l /dev/fuse should show crw-rw-rw-), "+
			"that the fuse3 package is installed, and for --allow-other user_allow_other in /etc/fuse.conf; or mount as root", err)
	}
	f.Close()
	if os.Geteuid() == 0 {
		return nil // mount(2) directly
	}
	if _, err := fusermountBinary(); err != nil {
		return errors.New("mounting as a user other than root needs fusermount3: install the fuse3 package (apt-get install fuse3), or run as root")
	}
	if allowOther && !userAllowOther() {
		return errors.New("--allow-other as a user other than root needs user_allow_other in /etc/fuse.conf (or run as root)")
	}
	return nil
}

// fusermountBinary finds fusermount3 or fusermount as go-fuse does (PATH,
// then /bin).
func fusermountBinary() (string, error) {
	var err error
	for _, name := range []string{"fusermount3", "fusermount"} {
		for _, p := range []string{name, "/bin/" + name} {
			var path string
			if path, err = exec.LookPath(p); err == nil {
				return path, nil
			}
		}
	}
	return "", err
}

// userAllowOther reports whether /etc/fuse.conf allows allow_other.
func userAllowOther() bool {
	data, err := os.ReadFile("/etc/fuse.conf")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}

// mountFailed adds what to check to a failed mount by fusermount.
func mountFailed(err error) error {
	if strings.Contains(err.Error(), "fusermount") {
		return fmt.Errorf("%w\nfusermount3 refused the mount: check that you own the mountpoint, the permissions of /dev/fuse, "+
			"the fuse3 package, and user_allow_other in /etc/fuse.conf for --allow-other; or mount as root", err)
	}
	return err
}

// probeStores checks in the background that every store can be reached
// (DNS, TCP connect, and the TLS handshake for https, with the CAs the
// mount uses), and logs one WARN line per store that cannot, with the
// reason: a typo, a wrong port or https to an http server should not wait
// for someone to read error.txt. No HTTP request is sent, so the store's
// request counts and answers are the mount's own. Through a proxy only the
// proxy is dialled. The returned group ends when ctx does.
func probeStores(ctx context.Context, cfg storeConfig, stores []*cache.Store, log *zap.Logger) *sync.WaitGroup {
	var wg sync.WaitGroup
	var roots *x509.CertPool
	if cfg.CACert != "" {
		var err error
		if roots, err = loadCACert(cfg.CACert); err != nil {
			return &wg // openCatalog has refused it already
		}
	}
	for _, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			err := probeStore(ctx, st.Remote.Base(), roots)
			if err == nil || ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return
			}
			log.Warn("store unreachable at mount time; mounting anyway (its directory shows error.txt until it answers)",
				zap.String("store", st.Name), zap.String("url", st.Remote.Base().String()), zap.Error(err))
		}()
	}
	return &wg
}

// probeStore dials the store at u (or its proxy) and shakes hands for https.
func probeStore(ctx context.Context, u *url.URL, roots *x509.CertPool) error {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	proxy, err := http.ProxyFromEnvironment(&http.Request{URL: u})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	var d net.Dialer
	if proxy != nil {
		conn, err := d.DialContext(ctx, "tcp", proxy.Host)
		if err != nil {
			return fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
		}
		return conn.Close()
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if u.Scheme != "https" {
		return nil
	}
	tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname(), RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return nil
}

// runUnmount detaches the mount at dir: a clean unmount, or a lazy one when
// it is busy or dead.
func runUnmount(dir string, out io.Writer) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	_, serr := os.Stat(dir)
	if serr == nil && mountAt(dir) == nil {
		return fmt.Errorf("%s is not a mountpoint", dir)
	}
	err = cleanUnmount(dir)
	if err == nil {
		return nil
	}
	if lerr := fs.LazyUnmount(dir); lerr != nil {
		return fmt.Errorf("unmount %s: %w (lazy: %v)", dir, err, lerr)
	}
	why := "was busy or dead"
	switch {
	case errors.Is(serr, syscall.ENOTCONN):
		why = "was dead (its daemon is gone)"
	case errors.Is(err, syscall.EBUSY) || strings.Contains(err.Error(), "busy"):
		why = "was busy (files still open)"
	}
	fmt.Fprintf(out, "%s %s: detached lazily\n", dir, why)
	return nil
}

// cleanUnmount unmounts dir if nothing uses it: umount2 as root, else
// fusermount -u, which lets a user unmount their own FUSE mounts.
func cleanUnmount(dir string) error {
	err := syscall.Unmount(dir, 0)
	if err == nil || os.Geteuid() == 0 || !errors.Is(err, syscall.EPERM) {
		return err
	}
	bin, lerr := fusermountBinary()
	if lerr != nil {
		return err
	}
	msg, ferr := exec.Command(bin, "-u", dir).CombinedOutput()
	if ferr != nil {
		return fmt.Errorf("%s -u: %w: %s", filepath.Base(bin), ferr, strings.TrimSpace(string(msg)))
	}
	return nil
}

func clamp(d, lo, hi time.Duration) time.Duration { return max(lo, min(d, hi)) }
