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

	"github.com/urfave/cli/v2"
)

// storeEnv is the variable DIGITS itself reads the store list from.
const storeEnv = "DIGITS_MODEL_STORE_URL"

func main() {
	var err error
	if isHelperInvocation(os.Args) {
		err = runHelper(os.Args)
	} else {
		err = runMain(os.Args, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "modelstorefs:", err)
		os.Exit(1)
	}
}

// runMain runs the command line args with env added to the environment,
// until done or interrupted (a second signal kills the process).
func runMain(args []string, env map[string]string) error {
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return run(ctx, newApp(stop), args)
}

// run answers shell completion, or puts args in order and runs the app.
func run(ctx context.Context, app *cli.App, args []string) error {
	if len(args) > 1 && args[len(args)-1] == "--"+completionFlag {
		return complete(app, args[1:len(args)-1])
	}
	n, err := normalizeArgs(app, args)
	if err != nil {
		return err
	}
	for _, w := range n.warnings {
		fmt.Fprintln(app.ErrWriter, "modelstorefs:", w)
	}
	app.Metadata = map[string]any{argsKey: n.args}
	return app.RunContext(ctx, n.args)
}

// argsKey holds the normalized command line in cli.App.Metadata (the
// daemon re-runs it).
const argsKey = "args"
