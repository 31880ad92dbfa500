// Command modelstorefs mounts NVIDIA DIGITS Model Stores as a read-only
// filesystem: each store a directory, each model a folder that cp -r turns
// into a DIGITS Pretrained Model job.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set by the Makefile (-ldflags -X main.version=...).
var version = "dev"

func main() {
	if isHelperInvocation(os.Args) {
		if err := runHelper(os.Args); err != nil {
			fmt.Fprintln(os.Stderr, "modelstorefs:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newApp(stop).RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "modelstorefs:", err)
		os.Exit(1)
	}
}
