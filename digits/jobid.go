package digits

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"
)

// A mounted model folder's status.pickle carries a job id (_id and the
// task's job_id) that DIGITS keys its jobs by: DIGITS' Scheduler stores
// jobs[job.id()], never the folder name, and its delete_job calls str() on
// the id (a non-ASCII id cannot be deleted under Python 2). So the id is
// ASCII, in DIGITS' own shape YYYYMMDD-HHMMSS-xxxx, made from the model's
// creation time and a hash of the store URL and model folder name: the same
// on every mount and machine, and different for every model of every
// configured store. The folder can then be copied under any name.

// ModelRef names one model of one store, for job ids.
type ModelRef struct {
	StoreURL string // the store's base URL, without credentials
	Model    string // the model folder name
}

// idHash is the hex SHA-256 of the model's reference, and a round number
// for the deterministic re-draws of a collision.
func idHash(r ModelRef, round int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s", r.StoreURL, r.Model)
	if round > 0 {
		fmt.Fprintf(h, "\x00%d", round)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// JobIDSuffixes gives every model a suffix of 4 hex digits (8 once all 4
// digit values would be needed), unique among refs. A model whose first
// choice is also another's keeps it when its (store URL, model) sorts first;
// the others draw again, deterministically, from their hash with a round
// number. The result depends only on the set of refs, not on their order.
// redrawn lists the models that did not get their first choice.
func JobIDSuffixes(refs []ModelRef) (suffixes map[ModelRef]string, redrawn []ModelRef) {
	sorted := append([]ModelRef(nil), refs...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].StoreURL != sorted[j].StoreURL {
			return sorted[i].StoreURL < sorted[j].StoreURL
		}
		return sorted[i].Model < sorted[j].Model
	})
	width := 4
	if len(sorted) > 1<<14 { // keep collisions (and re-draws) rare
		width = 8
	}
	out := make(map[ModelRef]string, len(sorted))
	used := make(map[string]bool, len(sorted))
	var losers []ModelRef
	for _, r := range sorted {
		if _, dup := out[r]; dup {
			continue
		}
		s := idHash(r, 0)[:width]
		if used[s] {
			losers = append(losers, r)
			out[r] = ""
			continue
		}
		used[s] = true
		out[r] = s
	}
	for _, r := range losers {
		for round := 1; ; round++ {
			w := width
			if round > 64 {
				w = 16
			}
			s := idHash(r, round)[:w]
			if !used[s] {
				used[s] = true
				out[r] = s
				break
			}
		}
	}
	return out, losers
}

// JobID is the job id of a model created at created (UTC) with the given
// suffix: "20170124-101010-ab12".
func JobID(created time.Time, suffix string) string {
	return created.UTC().Format("20060102-150405") + "-" + suffix
}
