package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/serve"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve a model store directory over HTTP (what python -m SimpleHTTPServer does, correctly)",
		ArgsUsage: "DIR",
		Description: `Hosts DIR as a DIGITS Model Store until SIGINT or SIGTERM, then exits 0.

Files are served with Range, strong ETags, Last-Modified and conditional
requests (304), so DIGITS, modelstorefs mounts and caching proxies read them
efficiently. When DIR has no master.json, one is generated from the model
folders (subdirectories holding an info.json); DIR's own is served when
present. Directories get a python http.server-style listing. Nothing outside
DIR is served: ".." is refused, and so is any symlink leading outside DIR
(symlinks inside it are fine); hidden files are not served. Every request
is logged.

Every file answer carries its SHA-256 in a Repr-Digest header (RFC 9530)
once known: files are hashed in the background from the start (the header
is left out until then, never delaying an answer), and the digests are kept
under the user's cache directory ($XDG_CACHE_HOME/modelstorefs/serve/), so
a restart does not hash unchanged files again. When DIR has no SHA256SUMS,
one is generated listing the files hashed so far (all of them once the
hashing is done); DIR's own is served when present.

Examples:
   modelstorefs serve ./mystore                       # http://127.0.0.1:8000/
   modelstorefs serve --addr 0.0.0.0:8080 /srv/models # the whole network
   export DIGITS_MODEL_STORE_URL=http://127.0.0.1:8000/
   modelstorefs check http://127.0.0.1:8000/          # what DIGITS will see`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8000", Usage: "listen on `HOST:PORT` (port 0: any free port)"},
		}, logFlags("info")...),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("serve: expected one DIR, got %d arguments", c.NArg())
			}
			log, err := newLogger(c.String("log-level"), c.String("log-format"))
			if err != nil {
				return err
			}
			defer syncLogger(log)
			dir := c.Args().First()
			h, err := serve.NewServer(dir, log)
			if err != nil {
				return err
			}
			log.Info("serving store directory", zap.String("dir", dir))
			err = serve.ListenAndServe(c.Context, c.String("addr"), h, log)
			// Stops the hashing and saves the digests.
			return errors.Join(err, h.Close())
		},
	}
}
