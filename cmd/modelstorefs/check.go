package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/check"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/serve"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate model stores (a directory, a URL, or the configured stores) as DIGITS and modelstorefs read them",
		ArgsUsage: "[DIR|URL]",
		Description: `Reads the store as the mount does (master.json or the directory listing,
every model's info.json and aux.json, the size of every file they name) and
prints one line per problem, "MODEL: error|warning: MESSAGE" or
"STORE: digits-error: MESSAGE", then a summary line "N models, M
importable, K problems". A directory is checked as 'modelstorefs serve'
would publish it. Without DIR or URL, every configured store is checked
(--store, --store-file or DIGITS_MODEL_STORE_URL), each under a line naming
it.

error: the model cannot be imported, the verdict the mount (status.pickle),
ls and import follow: info.json missing, not JSON or lacking a required
key, an unknown framework, weights or model definition absent or empty, a
TensorFlow checkpoint part missing. On the store: it cannot be read.

digits-error: DIGITS' own store page fails on the store while modelstorefs
reads it: a master.json without "msg" or "children", an aux.json that is
not JSON (that model still imports: modelstorefs ignores the file, and the
model also gets a warning).

warning: optional files named but absent or empty (labels, mean,
deploy...), a license without license.txt, a missing logo, an aux.json that
could not be read for now, model folders master.json leaves out.

SHA256SUMS (sha256sum's format, paths relative to the store's root) lets
the mount verify every byte it downloads. With --sums (the default for a
DIR, opt-in for a URL since it downloads every file), each file it names is
read and hashed: "MODEL: error: FILE: sha256 mismatch (SHA256SUMS says X,
the bytes are Y)", a file it names that is missing is an error too, and
malformed lines a warning. --write-sums DIR writes DIR/SHA256SUMS
(atomically) listing every file of every model folder, the set 'modelstorefs
serve' generates; the check then runs without re-hashing (unless --sums).

Exit status: 0 when there is no error and no digits-error, 1 otherwise (or
when a store cannot be read at all).

Examples:
   modelstorefs check ./mystore
   modelstorefs check http://127.0.0.1:8000/
   modelstorefs check --sums http://127.0.0.1:8000/   # also verify SHA256SUMS
   modelstorefs check --write-sums /srv/models        # before serving with nginx
   modelstorefs check --store http://127.0.0.1:8000/ --store team=http://host2/team/
   DIGITS_MODEL_STORE_URL=http://127.0.0.1:8000/ modelstorefs check`,
		Flags: slices.Concat(storeFlags(), logFlags("warn"), []cli.Flag{
			&cli.IntFlag{Name: "jobs", Value: 8, Usage: "check `N` models (or files, for --sums) at once"},
			&cli.BoolFlag{Name: "sums", Usage: "verify the store's SHA256SUMS against the bytes of every file it names (default: on for a DIR, off for a URL: it downloads the whole store)"},
			&cli.BoolFlag{Name: "write-sums", Usage: "first write DIR/SHA256SUMS (every file of every model folder), for stores nginx, Apache or python serve"},
		}),
		OnUsageError: onUsageError,
		Action:       runCheck,
	}
}

// runCheck checks DIR|URL, or without an argument every configured store.
func runCheck(c *cli.Context) error {
	if c.NArg() > 1 {
		return fmt.Errorf("check: expected one DIR or URL (or none: the configured stores), got %d arguments", c.NArg())
	}
	level, format := flagsOf{c}.string("log-level", "warn"), flagsOf{c}.string("log-format", "console")
	if err := checkLogFlags(level, format); err != nil {
		return err
	}
	var specs []storeSpec
	if c.NArg() == 1 {
		if storeFlagGiven(c) || c.String("store-file") != "" {
			return errors.New("check: give DIR|URL or --store/--store-file, not both")
		}
		if err := checkTarget(c.Args().First()); err != nil {
			return err
		}
	} else {
		var err error
		specs, err = configuredStores(c)
		if errors.Is(err, errNoStore) {
			return errors.New("check: give a store's DIR or URL, or configure stores with --store, --store-file or DIGITS_MODEL_STORE_URL")
		}
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
	log, err := newCLILogger(level, format, nil)
	if err != nil {
		return err
	}
	defer syncLogger(log)
	ropts := remote.Options{UserAgent: "modelstorefs/" + version}
	if f := c.String("ca-cert"); f != "" {
		if ropts.RootCAs, err = loadCACert(f); err != nil {
			return err
		}
	}
	opts := []check.Option{check.WithRemoteOptions(ropts), check.WithLogger(log), check.WithParallel(c.Int("jobs")), check.WithSums(verifySums(c))}
	if c.Bool("write-sums") {
		if err := writeSums(c); err != nil {
			return err
		}
	}
	if c.NArg() == 1 {
		rep, err := checkStore(c.Context, c.Args().First(), log, opts)
		if err != nil {
			return err
		}
		return reportCheck(c.App.Writer, rep)
	}
	return checkConfigured(c, specs, opts)
}

// configuredStores are the stores the other commands read, with their
// .netrc credentials.
func configuredStores(c *cli.Context) ([]storeSpec, error) {
	values, err := storeValues(c)
	if err != nil {
		return nil, err
	}
	specs, err := parseStores(values)
	if err != nil {
		return nil, err
	}
	return withNetrc(specs)
}

// checkConfigured checks each configured store, reporting each under a
// line naming it; it fails when any store has an error or cannot be read.
func checkConfigured(c *cli.Context, specs []storeSpec, opts []check.Option) error {
	w, failed := c.App.Writer, 0
	for i, spec := range specs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "store %s (%s):\n", spec.Name, withoutCredentials(spec.URL))
		rep, err := check.Store(c.Context, spec.URL, opts...)
		if err != nil {
			fmt.Fprintf(w, "%s: error: %s\n", spec.Name, oneLine(err))
			failed++
			continue
		}
		if reportCheck(w, rep) != nil {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("check: %d of %d stores have errors (see above)", failed, len(specs))
	}
	return nil
}

// reportCheck prints a report and fails when it has an error.
func reportCheck(w io.Writer, rep check.Report) error {
	if err := rep.Write(w); err != nil {
		return err
	}
	if !rep.Failed() {
		return nil
	}
	if bad := len(rep.Models) - rep.Importable(); bad > 0 {
		return fmt.Errorf("check: %d of %d models cannot be imported", bad, len(rep.Models))
	}
	return errors.New("check: the store has errors (see above)")
}

// withoutCredentials is a store URL as it may be shown.
func withoutCredentials(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// checkStore checks a URL (with its .netrc credentials) or a directory,
// served as `modelstorefs serve` publishes it.
func checkStore(ctx context.Context, target string, log *zap.Logger, opts []check.Option) (check.Report, error) {
	if check.IsURL(target) {
		specs, err := withNetrc([]storeSpec{{URL: target}})
		if err != nil {
			return check.Report{}, err
		}
		return check.Store(ctx, specs[0].URL, opts...)
	}
	h, err := serve.Handler(target, log.Named("serve"))
	if err != nil {
		return check.Report{}, fmt.Errorf("check: %w", err)
	}
	folders, err := serve.ModelFolders(target)
	if err != nil {
		return check.Report{}, fmt.Errorf("check: %w", err)
	}
	return check.Dir(ctx, target, h, folders, opts...)
}

// checkTarget refuses what is neither an http(s) URL nor a directory with
// a message saying which was meant: "ftp://x/" is a URL of the wrong kind,
// and "127.0.0.1:8000" a URL without its scheme, not a missing directory.
func checkTarget(target string) error {
	if check.IsURL(target) {
		return nil
	}
	if scheme, _, ok := strings.Cut(target, "://"); ok {
		return fmt.Errorf("check: %s: only http:// and https:// stores can be checked, not %s://", target, scheme)
	}
	fi, err := os.Stat(target)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("check: %s is a file; give the store's directory or its http(s) URL", target)
	case hostPort.MatchString(target):
		return fmt.Errorf("check: %s is not a directory; for a store on the network write the URL: http://%s", target, target)
	}
	return fmt.Errorf("check: %w; give the store's directory or its http(s) URL", err)
}

// hostPort matches "host:port" and "host:port/path".
var hostPort = regexp.MustCompile(`^[A-Za-z0-9.\-\[\]:]+:[0-9]+(/.*)?$`)

// verifySums says whether check verifies SHA256SUMS: --sums when given,
// else for a directory (read locally) but not for a URL (every file
// downloaded), nor right after --write-sums hashed the same bytes.
func verifySums(c *cli.Context) bool {
	if c.IsSet("sums") {
		return c.Bool("sums")
	}
	return c.NArg() == 1 && !check.IsURL(c.Args().First()) && !c.Bool("write-sums")
}

// writeSums writes DIR/SHA256SUMS for --write-sums.
func writeSums(c *cli.Context) error {
	if c.NArg() != 1 || check.IsURL(c.Args().First()) {
		return errors.New("check: --write-sums needs the store's DIR")
	}
	file, n, err := serve.WriteSums(c.Context, c.Args().First())
	if err != nil {
		return fmt.Errorf("check: --write-sums: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s (%d files)\n", file, n)
	return nil
}
