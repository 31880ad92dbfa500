package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shell completion: the scripts ask the binary itself for candidates,
// passing the words typed so far and the word being completed (possibly
// empty), then --generate-bash-completion. No candidates means files.
const bashCompletion = `# bash completion for modelstorefs
_modelstorefs() {
	local cur words
	cur="${COMP_WORDS[COMP_CWORD]}"
	words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
	[[ ${#COMPREPLY[@]} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
	return 0
}
complete -o filenames -F _modelstorefs modelstorefs
`

const zshCompletion = `#compdef modelstorefs
# zsh completion for modelstorefs
_modelstorefs() {
	local -a opts
	local cur=${words[CURRENT]}
	opts=("${(@f)$(${words[@]:0:CURRENT-1} "$cur" --generate-bash-completion 2>/dev/null)}")
	if [[ "${opts[1]}" != "" ]]; then
		_describe 'values' opts
	else
		_files
	fi
}
compdef _modelstorefs modelstorefs
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: `Examples:
   source <(modelstorefs completion bash)
   modelstorefs completion zsh > "${fpath[1]}/_modelstorefs"
   modelstorefs completion fish > ~/.config/fish/completions/modelstorefs.fish`,
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			case "fish":
				script, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				fmt.Fprint(c.App.Writer, script)
			default:
				return fmt.Errorf("completion: expected bash, zsh or fish, got %q", c.Args().First())
			}
			return nil
		},
	}
}

// completionFlag ends a command line that asks for completion candidates.
const completionFlag = "generate-bash-completion"

// complete prints the candidates for the last of words (the word being
// completed, possibly ""), one a line. Hidden flags and commands are never
// offered; where files or directories are wanted it prints nothing, and the
// scripts complete file names.
func complete(app *cli.App, words []string) error {
	w := app.Writer
	cur, prev := "", words
	if n := len(words); n > 0 {
		cur, prev = words[n-1], words[:n-1]
	}
	var cmd *cli.Command
	cmdAt := -1
	for i, p := range prev {
		if !strings.HasPrefix(p, "-") {
			cmd, cmdAt = app.Command(p), i
			break
		}
	}
	if cmd == nil {
		if cmdAt >= 0 {
			return nil // not a command: no candidates
		}
		if strings.HasPrefix(cur, "-") {
			printMatches(w, cur, []string{"--help", "--version"})
			return nil
		}
		var names []string
		for _, c := range app.VisibleCommands() {
			names = append(names, c.Name)
		}
		printMatches(w, cur, names)
		return nil
	}
	args := prev[cmdAt+1:]
	if n := len(args); n > 0 && strings.HasPrefix(args[n-1], "-") && !strings.Contains(args[n-1], "=") {
		if f := lookupFlag(cmd.Flags, flagName(args[n-1])); f != nil {
			if _, isBool := f.(*cli.BoolFlag); !isBool {
				printMatches(w, cur, flagValues(f.Names()[0]))
				return nil
			}
		}
	}
	if strings.HasPrefix(cur, "-") {
		names := []string{"--help"}
		for _, f := range cmd.VisibleFlags() {
			if n := f.Names()[0]; len(n) > 1 {
				names = append(names, "--"+n)
			} else {
				names = append(names, "-"+n)
			}
		}
		printMatches(w, cur, names)
		return nil
	}
	switch cmd.Name {
	case "completion":
		printMatches(w, cur, []string{"bash", "zsh", "fish"})
	case "import", "prefetch":
		printMatches(w, cur, keptModels(app, cmd, args))
	}
	return nil
}

// flagValues are the candidates for a flag's value (none: file names).
func flagValues(name string) []string {
	switch name {
	case "log-level":
		return []string{"debug", "info", "warn", "error"}
	case "log-format":
		return []string{"console", "json"}
	case "o":
		var opts []string
		for k := range switchOptions {
			opts = append(opts, k)
		}
		for k := range valueOptions {
			opts = append(opts, k+"=")
		}
		sort.Strings(opts)
		return opts
	}
	return nil
}

func printMatches(w io.Writer, cur string, candidates []string) {
	for _, c := range candidates {
		if strings.HasPrefix(c, cur) {
			fmt.Fprintln(w, c)
		}
	}
}

// keptModels returns STORE/MODEL for every model in the listings that ls
// keeps in the cache directory, whatever their age: completion never asks
// a store. The stores and cache directory come from the flags typed so
// far (and the environment), as the command will read them.
func keptModels(app *cli.App, cmd *cli.Command, args []string) []string {
	set := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range cmd.Flags {
		if err := f.Apply(set); err != nil {
			return nil
		}
	}
	n, err := normalizeArgs(app, append([]string{"modelstorefs", cmd.Name}, args...))
	if err != nil || set.Parse(n.args[2:]) != nil {
		return nil
	}
	c := cli.NewContext(app, set, nil)
	cfg, err := storeConfigFrom(c)
	if err != nil {
		return nil
	}
	var out []string
	for _, spec := range cfg.Stores {
		rows, _, _ := keptRows(cfg, spec) // whatever its age
		for _, r := range rows {
			if r.Importable {
				out = append(out, r.Store+"/"+r.Model)
			}
		}
	}
	return out
}
