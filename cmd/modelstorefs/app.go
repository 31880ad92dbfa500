package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/engine"
)

// newApp builds the command line. stopSignals is called once the first
// SIGINT/SIGTERM is handled, so that a second one kills the process.
func newApp(stopSignals context.CancelFunc) *cli.App {
	cli.VersionPrinter = func(c *cli.Context) { printVersion(c.App.Writer) }
	return &cli.App{
		Writer:       os.Stdout,
		ErrWriter:    os.Stderr,
		OnUsageError: onUsageError,
		Name:         "modelstorefs",
		Usage:        "mount NVIDIA DIGITS Model Stores as a read-only filesystem",
		Version:      version,
		Description: `Each store becomes a directory, each model a folder that is a complete
DIGITS Pretrained Model job: copying it into the DIGITS jobs directory is the import.

Examples:
   export DIGITS_MODEL_STORE_URL='http://host/store1,http://host2/team'
   modelstorefs mount /mnt/models
   ls /mnt/models/*/ ; grep -i mnist /mnt/models/models.tsv
   cp -r /mnt/models/host_store1/lenet "$DIGITS_JOBS_DIR"/   # then restart DIGITS
   modelstorefs import --digits http://digits:5000 host_store1/lenet   # no restart
   touch /mnt/models/.refresh                            # "Update model list"
   modelstorefs unmount /mnt/models`,
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		Suggest:              true, // "did you mean" for help topics; args.go says it for flags and commands
		Commands: []*cli.Command{
			mountCommand(stopSignals),
			unmountCommand(),
			importCommand(),
			lsCommand(),
			serveCommand(),
			checkCommand(),
			statusCommand(),   // status.go
			cacheCommand(),    // cachecmd.go
			prefetchCommand(), // prefetch.go
			completionCommand(),
			versionCommand(),
			manCommand(),
		},
	}
}

func mountCommand(stopSignals context.CancelFunc) *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount the stores on MOUNTPOINT and serve until unmounted or interrupted",
		ArgsUsage: "MOUNTPOINT",
		Description: `Runs in the foreground. Logs one line when the mount is ready; on SIGINT or
SIGTERM it unmounts (lazily if files are still open) and exits 0. SIGHUP
refreshes every store, as touch MOUNTPOINT/.refresh does; with --read-only
(-o ro) the kernel refuses that touch, and SIGHUP is the refresh.

With --daemon it returns once the mount is up and the daemon runs on in the
background, logging to --log-file (default CACHE_DIR/modelstorefs.log).

Stores come from --store (repeatable, comma-separated lists accepted),
--store-file, or else DIGITS_MODEL_STORE_URL. An entry NAME=URL names the
store's directory. Flags may come before or after MOUNTPOINT; -o takes the
options of an /etc/fstab line (allow_other,cache_size=20GiB,ttl=1h,...).

A password in a --store URL can be read by other users in ps: put it in
~/.netrc (or $NETRC), or give the stores in --store-file or
DIGITS_MODEL_STORE_URL.`,
		Flags: slices.Concat(storeFlags(), authFlags(), cacheFlags(), tuningFlags(), logFlags("info"), ownerFlags(), []cli.Flag{
			&cli.StringFlag{Name: "jobs-dir", Value: cache.DefaultJobsDir, EnvVars: []string{"DIGITS_JOBS_DIR"}, Usage: "DIGITS jobs `DIR` written into status.pickle (DIGITS rewrites it on load)"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount (needs user_allow_other in /etc/fuse.conf unless root)"},
			&cli.BoolFlag{Name: "allow-non-empty", Usage: "mount over a directory that is not empty (hiding its files while mounted)"},
			&cli.BoolFlag{Name: "read-only", Usage: "have the kernel keep the mount read-only too (findmnt shows ro; -o ro); touch .refresh then fails: refresh with SIGHUP"},
			&cli.BoolFlag{Name: "daemon", Usage: "detach once mounted; the daemon logs to --log-file"},
			&cli.StringFlag{Name: "log-file", Category: catLogging, Usage: "write the log to `FILE` instead of stderr (with --daemon: default CACHE_DIR/modelstorefs.log)"},
			&cli.StringSliceFlag{Name: "o", Usage: "mount `OPTIONS` as in /etc/fstab: allow_other, nonempty, cache_dir=, cache_size=, ttl=, log_file=, ..."},
			&cli.BoolFlag{Name: "debug-fuse", Category: catLogging, Usage: "log every FUSE operation"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://`HOST:PORT`/metrics"},
		}),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("mount: expected one MOUNTPOINT, got %d arguments", c.NArg())
			}
			cfg, err := mountConfigFrom(c)
			if err != nil {
				return err
			}
			if c.Bool("daemon") {
				return runDaemon(c, cfg)
			}
			return runMount(c.Context, cfg, stopSignals)
		},
	}
}

func unmountCommand() *cli.Command {
	return &cli.Command{
		Name:      "unmount",
		Aliases:   []string{"umount"},
		Usage:     "unmount MOUNTPOINT (lazily if busy or dead)",
		ArgsUsage: "MOUNTPOINT",
		Description: `Unmounts a modelstorefs mount, or a dead one ("transport endpoint is not
connected"). Any other filesystem is refused unless --force is given.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "unmount MOUNTPOINT even if it is not a modelstorefs mount"},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("unmount: expected one MOUNTPOINT, got %d arguments", c.NArg())
			}
			return runUnmount(c.Args().First(), c.Bool("force"), c.App.Writer)
		},
	}
}

// Flag categories: --help and the man page list each group under its name,
// after the command's own flags.
const (
	catStores  = "Stores"
	catCache   = "Cache"
	catLogging = "Logging"
	catTuning  = "Tuning"
)

// storeFlags say which stores to read: every command that talks to stores
// has them (check too).
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "store", Aliases: []string{"s"}, Category: catStores, EnvVars: []string{storeEnv},
			Usage: "store `URL` or NAME=URL; repeat it or give a comma-separated list"},
		&cli.StringFlag{Name: "store-file", Category: catStores,
			Usage: "read stores from `FILE`, one URL or NAME=URL a line (# comments): keeps passwords out of ps"},
		caCertFlag(),
	}
}

// cacheFlags are the flags of the commands that read through the cache
// directory (mount, ls, import).
func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cache-dir", Category: catCache, DefaultText: "$XDG_CACHE_HOME/modelstorefs or ~/.cache/modelstorefs",
			Usage: "on-disk cache `DIR`, shared by mount, ls and import"},
		&cli.StringFlag{Name: "cache-size", Category: catCache, Value: sizeValue(engine.DefaultMaxBytes),
			Usage: "bound on the on-disk cache (`SIZE`, e.g. 500MiB, 20G)"},
		&cli.StringFlag{Name: "cache-min-free", Category: catCache, Value: sizeValue(engine.DefaultMinFree),
			Usage: "keep at least `SIZE` free on the cache's filesystem (0: no floor)"},
		&cli.DurationFlag{Name: "ttl", Category: catCache, Value: cache.DefaultTTL, DefaultText: shortDuration(cache.DefaultTTL),
			Usage: "how long listings and metadata stay fresh (`DURATION`, e.g. 24h, 90m)"},
	}
}

// tuningFlags are the mount's: how reads wait and buffer.
func tuningFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "retry-window", Category: catTuning, Value: engine.DefaultRetryWindow, DefaultText: shortDuration(engine.DefaultRetryWindow),
			Usage: "how long a read waits for a failing store to come back before EIO (`DURATION`)"},
		&cli.StringFlag{Name: "buffer-size", Category: catTuning, Value: sizeValue(engine.DefaultBufferBudget),
			Usage: "memory for downloads in flight: how far cache writes may fall behind readers (`SIZE`)"},
		&cli.BoolFlag{Name: "direct-io", Category: catTuning, Value: true,
			Usage: "files still downloading bypass the kernel page cache: one copy less for large reads (cp, cat); " +
				"--direct-io=false (-o no_direct_io) suits programs that read in pieces under 64 KiB (tar, sha256sum)"},
		&cli.BoolFlag{Name: "verify", Category: catTuning, Value: true,
			Usage: "hash every file before it is cached and before a reader gets its last byte, checked against the digest the store states " +
				"(Repr-Digest, object-store checksums); --verify=false (-o no_verify) trusts the store and saves the hashing's CPU"},
		// Read-engine tuning, for benchmarks.
		&cli.StringFlag{Name: "chunk-size", Value: sizeValue(engine.DefaultChunkSize), Hidden: true},
		&cli.IntFlag{Name: "read-parallel", Value: engine.DefaultParallel, Hidden: true},
		&cli.BoolFlag{Name: "write-behind", Hidden: true}, // every chunk through memory, as on a busy disk
	}
}

// Flags of several commands, declared once.

func caCertFlag() cli.Flag {
	return &cli.StringFlag{Name: "ca-cert", Category: catStores,
		Usage: "PEM `FILE` of CA certificates to trust for https stores (private CA), instead of the system's"}
}

// logFlags are --log-level and --log-format; the level's default differs
// by command (a command-line verb shows only problems: its output is the
// answer).
func logFlags(level string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Category: catLogging, Value: level, Usage: "how much to log (`LEVEL`: " + logLevels + ")"},
		&cli.StringFlag{Name: "log-format", Category: catLogging, Value: "console", Usage: "log line `FORMAT`: console or json"},
	}
}

// loadCACert reads the PEM file of --ca-cert.
func loadCACert(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-cert %s: no PEM certificate found", file)
	}
	return pool, nil
}

// storeConfig is what every command reading stores needs, validated.
type storeConfig struct {
	Stores    []storeSpec
	CacheDir  string
	CacheSize int64
	// CacheMinFree is the free-space floor; 0 means none.
	CacheMinFree int64
	TTL          time.Duration
	RetryWindow  time.Duration
	ChunkSize    int64
	ReadParallel int
	BufferSize   int64
	WriteBehind  bool
	NoVerify     bool
	CACert       string
	Auth         storeAuth // --header, --client-cert (storeauth.go)
	LogLevel     string
	LogFormat    string
}

// mountConfig is everything mount needs, validated.
type mountConfig struct {
	storeConfig
	Mountpoint    string
	JobsDir       string
	AllowOther    bool
	AllowNonEmpty bool
	DirectIO      bool // cold files opened with FOPEN_DIRECT_IO
	ReadOnly      bool // kernel-enforced read-only mount (-o ro)
	DebugFuse     bool
	LogFile       string
	// MetricsAddr is where Prometheus metrics are served; "" for nowhere.
	MetricsAddr string
	Owner       ownership // --uid, --gid, --umask (owner.go)
}

// storeConfigFrom reads the store, cache, tuning and logging flags. A
// command without some of them (check has no cache flags, only mount has
// the tuning ones) gets their defaults.
func storeConfigFrom(c *cli.Context) (storeConfig, error) {
	f := flagsOf{c}
	cfg := storeConfig{
		TTL:         f.duration("ttl", cache.DefaultTTL),
		RetryWindow: f.duration("retry-window", engine.DefaultRetryWindow),
		CACert:      c.String("ca-cert"),
		LogLevel:    f.string("log-level", "warn"),
		LogFormat:   f.string("log-format", "console"),
		WriteBehind: c.Bool("write-behind"),
	}
	if err := checkLogFlags(cfg.LogLevel, cfg.LogFormat); err != nil { // before anything else
		return cfg, err
	}
	values, err := storeValues(c)
	if err != nil {
		return cfg, err
	}
	if cfg.Stores, err = parseStores(values); err != nil {
		return cfg, err
	}
	if cfg.Stores, err = withNetrc(cfg.Stores); err != nil {
		return cfg, err
	}
	if cfg.Auth, err = authFrom(c, cfg.Stores); err != nil {
		return cfg, err
	}
	if err := cfg.readSizes(f); err != nil {
		return cfg, err
	}
	cfg.NoVerify = !f.bool("verify", true)
	if cfg.ReadParallel = f.int("read-parallel", engine.DefaultParallel); cfg.ReadParallel < 1 {
		return cfg, fmt.Errorf("--read-parallel must be at least 1")
	}
	if cfg.RetryWindow <= 0 {
		return cfg, fmt.Errorf("--retry-window must be positive, got %s", cfg.RetryWindow)
	}
	if cfg.TTL <= 0 {
		return cfg, fmt.Errorf("--ttl must be positive, got %s", cfg.TTL)
	}
	if cfg.CacheDir, err = cacheDirFrom(c.String("cache-dir")); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// readSizes parses the size flags.
func (cfg *storeConfig) readSizes(f flagsOf) error {
	var err error
	if cfg.ChunkSize, err = parseSize(f.string("chunk-size", sizeValue(engine.DefaultChunkSize))); err != nil {
		return fmt.Errorf("--chunk-size: %w", err)
	}
	if cfg.BufferSize, err = parseSize(f.string("buffer-size", sizeValue(engine.DefaultBufferBudget))); err != nil {
		return fmt.Errorf("--buffer-size: %w", err)
	}
	if cfg.CacheSize, err = parseSize(f.string("cache-size", sizeValue(engine.DefaultMaxBytes))); err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	if v := f.string("cache-min-free", sizeValue(engine.DefaultMinFree)); strings.TrimSpace(v) == "0" {
		cfg.CacheMinFree = 0
	} else if cfg.CacheMinFree, err = parseSize(v); err != nil {
		return fmt.Errorf("--cache-min-free: %w", err)
	}
	return nil
}

// cacheDirFrom is --cache-dir made absolute (the default when empty). It
// must be a directory, or not exist yet: a file there is named here, not
// later as whatever first fails to write under it (the log file).
func cacheDirFrom(dir string) (string, error) {
	var err error
	if dir == "" {
		if dir, err = defaultCacheDir(); err != nil {
			return "", err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", fmt.Errorf("--cache-dir: %w", err)
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return "", fmt.Errorf("--cache-dir %s is a file, not a directory; give a directory (it is created if missing)", dir)
	case errors.Is(err, syscall.ENOTDIR):
		return "", fmt.Errorf("--cache-dir %s: a parent of it is a file, not a directory", dir)
	}
	return dir, nil
}

// flagsOf reads flags that a command may not define, with their defaults.
type flagsOf struct{ c *cli.Context }

func (f flagsOf) defined(name string) bool { return f.c.Value(name) != nil }

func (f flagsOf) string(name, def string) string {
	if !f.defined(name) {
		return def
	}
	return f.c.String(name)
}

func (f flagsOf) duration(name string, def time.Duration) time.Duration {
	if !f.defined(name) {
		return def
	}
	return f.c.Duration(name)
}

func (f flagsOf) bool(name string, def bool) bool {
	if !f.defined(name) {
		return def
	}
	return f.c.Bool(name)
}

func (f flagsOf) int(name string, def int) int {
	if !f.defined(name) {
		return def
	}
	return f.c.Int(name)
}

func mountConfigFrom(c *cli.Context) (mountConfig, error) {
	sc, err := storeConfigFrom(c)
	cfg := mountConfig{
		storeConfig:   sc,
		JobsDir:       c.String("jobs-dir"),
		AllowOther:    c.Bool("allow-other"),
		AllowNonEmpty: c.Bool("allow-non-empty"),
		DirectIO:      c.Bool("direct-io"),
		ReadOnly:      c.Bool("read-only"),
		DebugFuse:     c.Bool("debug-fuse"),
		MetricsAddr:   c.String("metrics-addr"),
	}
	if err != nil {
		return cfg, err
	}
	if cfg.Owner, err = ownershipFrom(c); err != nil {
		return cfg, err
	}
	if f := c.String("log-file"); f != "" {
		if cfg.LogFile, err = filepath.Abs(f); err != nil {
			return cfg, fmt.Errorf("--log-file: %w", err)
		}
	}
	if cfg.Mountpoint, err = filepath.Abs(c.Args().First()); err != nil {
		return cfg, fmt.Errorf("mountpoint: %w", err)
	}
	if within(cfg.CacheDir, cfg.Mountpoint) {
		return cfg, fmt.Errorf("--cache-dir %s is inside the mountpoint %s: that would deadlock", cfg.CacheDir, cfg.Mountpoint)
	}
	return cfg, nil
}

func defaultCacheDir() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "modelstorefs"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --cache-dir and no home directory: %w", err)
	}
	return filepath.Join(home, ".cache", "modelstorefs"), nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// shortDuration writes a default duration as one would type it: "24h",
// not "24h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// sizeValue writes a default size as the flags take it: "10GiB", "1GiB".
func sizeValue(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// parseSize reads sizes like 1048576, 500M, 500MiB, 10G, 1.5TB (binary units).
//
// This stays ours rather than go-humanize's ParseBytes, which reads K/M/G
// and KB/MB/GB as powers of 1000 and "1,5G" as 15 GB (a thousands
// separator): cache flags follow rclone (--vfs-cache-max-size 10G is 10 GiB),
// and an ambiguous comma, NaN/Inf or a fraction of a byte is refused.
// Sizes are printed with go-humanize (IBytes).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	upper := strings.ToUpper(t)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(upper, u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	bytes := f * float64(mult)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || bytes < 1 || bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return int64(bytes), nil
}
