package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set by the Makefile (-ldflags -X main.version=$(git describe));
// left empty, as by go install, it comes from the build information.
var version string

func init() {
	if version == "" {
		bi, _ := debug.ReadBuildInfo()
		version = buildVersion(bi)
	}
}

// buildVersion is the version the Go toolchain recorded: the module's
// (go install ...@v1.2.0, or the pseudo-version go build derives from the
// repository), else the commit, else "unknown" (go build -buildvcs=false
// outside a tagged module, go test).
func buildVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "unknown"
	}
	rev = rev[:min(len(rev), 12)]
	if modified == "true" {
		rev += "-dirty"
	}
	return "git-" + rev
}

// printVersion writes the version of modelstorefs, of Go and of go-fuse
// (the parts a FUSE bug report needs).
func printVersion(w io.Writer) {
	fuseVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/hanwen/go-fuse/v2" {
				fuseVersion = d.Version
				if d.Replace != nil {
					fuseVersion += " => " + d.Replace.Path + " " + d.Replace.Version
				}
			}
		}
	}
	fmt.Fprintf(w, "modelstorefs %s\ngo: %s %s/%s\ngo-fuse: %s\n", strings.TrimSpace(version), runtime.Version(), runtime.GOOS, runtime.GOARCH, fuseVersion)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of modelstorefs, Go and go-fuse",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("version: takes no arguments, got %q", c.Args().Slice())
			}
			printVersion(c.App.Writer)
			return nil
		},
	}
}
