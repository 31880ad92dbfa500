package main

import (
	"fmt"
	"math"
	"slices"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/modelstorefs/modelstorefs/engine"
)

// modelstorefs cache verify: the cache rehashed against the digests kept
// with its files (engine.VerifyCache).

func cacheVerifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "rehash the cache's files against the SHA-256 kept with each; drop the damaged ones",
		Description: `Reads every complete file of --cache-dir and compares its SHA-256 with the
one recorded when it was committed (checked then against the store's digest,
or computed). A file whose bytes changed on disk since (a failing disk, a
stray write) is named and removed unless a process has it open; the next
open downloads it again. Files cached before digests were kept get theirs
recorded. Safe beside a running mount. Exit status 1 when a file was damaged.`,
		Flags:        slices.Concat(cacheFlags(), logFlags("warn")),
		OnUsageError: onUsageError,
		Action:       runCacheVerify,
	}
}

func runCacheVerify(c *cli.Context) error {
	cfg, log, err := cacheCommandConfig(c)
	if err != nil {
		return fmt.Errorf("cache verify: %w", err)
	}
	defer syncLogger(log)
	// No bound of its own: opening the cache must not evict what a mount
	// with a larger --cache-size keeps.
	content, err := engine.NewStreamContent(engine.StreamConfig{Dir: cfg.CacheDir, MaxBytes: math.MaxInt64 / 2, MinFree: new(int64), Logger: log.Named("content")})
	if err != nil {
		return fmt.Errorf("cache verify: %w", err)
	}
	defer content.Close()
	rep, err := content.VerifyCache(c.Context, nil)
	if err != nil {
		return fmt.Errorf("cache verify: %w", err)
	}
	w := c.App.Writer
	for _, p := range rep.Damaged {
		fmt.Fprintf(w, "damaged: %s\n", p)
	}
	fmt.Fprintf(w, "%d files (%s) checked, %d damaged (%d removed, %d in use kept), %d digests recorded\n",
		rep.Checked, humanize.IBytes(uint64(rep.Bytes)), len(rep.Damaged), rep.Dropped, len(rep.Damaged)-rep.Dropped, rep.Recorded)
	if len(rep.Damaged) > 0 {
		return fmt.Errorf("cache verify: %d damaged files", len(rep.Damaged))
	}
	return nil
}
