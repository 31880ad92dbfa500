package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"regexp"
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
		Usage:     "validate a model store (directory or URL) as DIGITS and modelstorefs read it",
		ArgsUsage: "DIR|URL",
		Description: `Reads the store as the mount does (master.json or the directory listing,
every model's info.json and aux.json, the size of every file they name) and
prints one line per problem, "MODEL: error|warning: MESSAGE", then a summary
line "N models, M importable, K problems". A directory is checked as
'modelstorefs serve' would publish it.

Errors: a model that cannot be imported (no or invalid info.json, a required
key missing, unknown framework, weights or model definition absent or
empty, a TensorFlow checkpoint part missing, an aux.json that is not JSON),
or a master.json DIGITS cannot read. Warnings: optional files named but
absent or empty (labels, mean, deploy...), a license without license.txt,
a missing logo, model folders master.json leaves out.

Exit status: 0 when there is no error, 1 otherwise (or when the store
cannot be read at all).

Examples:
   modelstorefs check ./mystore
   modelstorefs check http://127.0.0.1:8000/
   modelstorefs check https://user:password@models.example.com/team/`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ca-cert", Usage: "PEM `FILE` of CA certificates to trust for https stores (private CA), instead of the system's"},
			&cli.IntFlag{Name: "jobs", Value: 8, Usage: "check `N` models at once"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "console", Usage: "console or json"},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("check: expected one DIR or URL, got %d arguments", c.NArg())
			}
			target := c.Args().First()
			if err := checkTarget(target); err != nil {
				return err
			}
			log, err := newLogger(c.String("log-level"), c.String("log-format"))
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
			opts := []check.Option{check.WithRemoteOptions(ropts), check.WithLogger(log), check.WithParallel(c.Int("jobs"))}
			rep, err := checkStore(c.Context, target, log, opts)
			if err != nil {
				return err
			}
			if err := rep.Write(c.App.Writer); err != nil {
				return err
			}
			if rep.Failed() {
				if bad := len(rep.Models) - rep.Importable(); bad > 0 {
					return fmt.Errorf("check: %d of %d models cannot be imported", bad, len(rep.Models))
				}
				return fmt.Errorf("check: the store has errors (see above)")
			}
			return nil
		},
	}
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

// loadCACert reads a PEM file of CA certificates.
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
