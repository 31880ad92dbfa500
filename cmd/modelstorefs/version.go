package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

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
	fmt.Fprintf(w, "modelstorefs %s\ngo: %s %s/%s\ngo-fuse: %s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, fuseVersion)
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
