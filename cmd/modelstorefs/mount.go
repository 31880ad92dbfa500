package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/moby/sys/mountinfo"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/engine"
	"github.com/modelstorefs/modelstorefs/fs"
	"github.com/modelstorefs/modelstorefs/metrics"
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
	mx := metrics.New()
	fsys := fs.New(fs.Options{Catalog: catalog, Logger: log.Named("fs"), OnRead: mx.ObserveRead,
		UID: cfg.Owner.UID, GID: cfg.Owner.GID, Umask: cfg.Owner.Umask, CacheDir: cfg.CacheDir, Version: version})
	warnOwner(cfg, log)
	defer fsys.Close()
	// Before the mount, so that a SIGHUP sent once it is up never kills.
	defer refreshOnHangup(fsys, log)()
	if cfg.MetricsAddr != "" {
		ms, err := metrics.Serve(cfg.MetricsAddr, mx.Registry(fsys, stores), log.Named("metrics"))
		if err != nil {
			return err
		}
		defer ms.Close()
		log.Info("serving metrics", zap.String("url", "http://"+ms.Addr().String()+"/metrics"))
	}

	names, urls := make([]string, len(stores)), make([]string, len(stores))
	for i, s := range cfg.Stores {
		urls[i] = stores[i].URL() // never with credentials
		names[i] = s.Name + "=" + urls[i]
	}
	server, err := fs.Mount(cfg.Mountpoint, fsys, fs.MountOptions{
		AllowOther: cfg.AllowOther, DirectIO: cfg.DirectIO, ReadOnly: cfg.ReadOnly, Debug: cfg.DebugFuse, Source: strings.Join(urls, ","),
	})
	if err != nil {
		return mountFailed(err, cfg.AllowOther)
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	probes := probeStores(probeCtx, cfg.storeConfig, stores, log)
	defer func() {
		stopProbes()
		probes.Wait()
	}()
	log.Info("mounted", zap.String("mountpoint", cfg.Mountpoint), zap.Strings("stores", names),
		zap.String("cache_dir", cfg.CacheDir), zap.Bool("read_only", cfg.ReadOnly), zap.String("version", version))
	if err := sdNotify("READY=1\nSTATUS=mounted on " + cfg.Mountpoint); err != nil {
		log.Warn("systemd notification failed", zap.Error(err))
	}

	return serveUntilStopped(ctx, server, cfg.Mountpoint, stopSignals, log)
}

// serveUntilStopped serves the mount until it is unmounted from outside or
// ctx ends (a signal); then it unmounts, lazily when files are still open,
// serving them for lazyGrace more.
func serveUntilStopped(ctx context.Context, server *fuse.Server, mountpoint string, stopSignals context.CancelFunc, log *zap.Logger) error {
	served := make(chan struct{})
	go func() {
		server.Wait()
		close(served)
	}()
	select {
	case <-served:
		log.Info("unmounted from outside", zap.String("mountpoint", mountpoint))
		return nil
	case <-ctx.Done():
	}
	stopSignals() // a second signal now kills the process
	_ = sdNotify("STOPPING=1")
	log.Info("signal received, unmounting", zap.String("mountpoint", mountpoint))
	lazy, err := fs.Unmount(server, mountpoint)
	if err != nil {
		return err
	}
	if lazy {
		// Detached: open files keep working until closed, for a while.
		log.Warn("files still open: unmounted lazily; serving them a little longer", zap.String("mountpoint", mountpoint),
			zap.Duration("grace", lazyGrace))
		select {
		case <-served:
		case <-time.After(lazyGrace):
			log.Warn("files still open after the grace period: they will get errors", zap.String("mountpoint", mountpoint))
		}
	} else {
		<-served
	}
	log.Info("unmounted", zap.String("mountpoint", mountpoint))
	return nil
}

// refreshOnHangup makes SIGHUP the root's .refresh (every store), the
// refresh of a --read-only mount, whose .refresh the kernel refuses to
// touch (and systemctl reload's). The returned function stops it.
func refreshOnHangup(fsys *fs.FS, log *zap.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: refreshing every store")
				fsys.Refresh()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// lazyGrace is how long a lazily unmounted filesystem keeps serving files
// that are still open, before the daemon exits anyway.
const lazyGrace = 5 * time.Second

// openCatalog builds the stores' clients, the content cache and the
// catalog; the returned function closes them in order.
func openCatalog(cfg storeConfig, jobsDir string, log *zap.Logger) (*cache.Catalog, func(), error) {
	stores, err := storeClients(cfg)
	if err != nil {
		return nil, nil, err
	}
	content, err := engine.NewStreamContent(engine.StreamConfig{
		Dir: cfg.CacheDir, MaxBytes: cfg.CacheSize, MinFree: new(cfg.CacheMinFree), RetryWindow: cfg.RetryWindow,
		ChunkSize: cfg.ChunkSize, Parallel: cfg.ReadParallel, BufferBudget: cfg.BufferSize, WriteBehind: cfg.WriteBehind, NoVerify: cfg.NoVerify, Logger: log.Named("content"),
	})
	if err != nil {
		return nil, nil, err
	}
	tuneGC()
	catalog := cache.NewCatalog(stores, content, cache.Config{
		TTL: cfg.TTL, JobsDir: jobsDir, Reserved: fs.ReservedStoreNames, Logger: log.Named("catalog"),
		MetaDir: metaDir(cfg.CacheDir),
	})
	return catalog, func() {
		catalog.Close()
		content.Close()
	}, nil
}

// storeClients builds the stores' HTTP clients.
func storeClients(cfg storeConfig) ([]*cache.Store, error) {
	// Per-request bounds follow the retry window, so that a stalled or
	// silent request leaves room for retries within it.
	ropts := remote.Options{
		UserAgent:     "modelstorefs/" + version,
		StallTimeout:  clamp(cfg.RetryWindow/3, 2*time.Second, 30*time.Second),
		HeaderTimeout: clamp(cfg.RetryWindow/2, 5*time.Second, 30*time.Second),
		Certificates:  cfg.Auth.certificates(),
	}
	if cfg.CACert != "" {
		var err error
		if ropts.RootCAs, err = loadCACert(cfg.CACert); err != nil {
			return nil, err
		}
	}
	stores := make([]*cache.Store, len(cfg.Stores))
	for i, s := range cfg.Stores {
		ropts.Header = cfg.Auth.headerFor(s.Name)
		rs, err := remote.NewStore(s.URL, ropts)
		if err != nil {
			return nil, err
		}
		stores[i] = &cache.Store{Name: s.Name, Remote: rs}
	}
	return stores, nil
}

// runUnmount detaches the mount at dir: a clean unmount, or a lazy one when
// it is busy or dead. Only a modelstorefs mount or a dead one is touched
// unless force: the lazy fallback would detach anything, /proc included.
func runUnmount(dir string, force bool, out io.Writer) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	_, serr := os.Stat(dir)
	info := mountAt(dir)
	if serr == nil && info == nil {
		return fmt.Errorf("%s is not a mountpoint", dir)
	}
	if err := unmountAllowed(dir, info, serr, force); err != nil {
		return err
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

// unmountAllowed refuses a mount that is neither modelstorefs's (info, the
// topmost mount on dir) nor dead (serr, what stat of dir said), unless force.
func unmountAllowed(dir string, info *mountinfo.Info, serr error, force bool) error {
	if force || errors.Is(serr, syscall.ENOTCONN) || info == nil || isOurs(info) {
		return nil
	}
	return fmt.Errorf("%s is not a modelstorefs mount (filesystem type %s, source %s): not unmounting it; "+
		"--force unmounts it anyway", dir, info.FSType, info.Source)
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
