package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/xrash/smetrics"
)

// urfave/cli, like Go's flag package, stops at the first positional
// argument, refuses a flag given by its name and its alias, and answers an
// unknown flag with the whole help text. rclone and gcsfuse accept flags
// anywhere, so the command line is put in that order before urfave/cli sees
// it: the command, its flags by their primary names, then "--" and the
// positional arguments.

// usageError is a mistake on the command line; main prints it as one line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// normalizedArgs is a command line put in the order urfave/cli reads.
type normalizedArgs struct {
	args []string
	// warnings are printed once on stderr (a password on the command line).
	warnings []string
}

// normalizeArgs reorders args (os.Args) for app. Anything after "--" is
// positional.
func normalizeArgs(app *cli.App, args []string) (normalizedArgs, error) {
	out := normalizedArgs{args: []string{args[0]}}
	i := 1
	// Global flags (--help, --version) come before the command.
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		name := flagName(args[i])
		if lookupFlag(app.Flags, name) == nil && name != "help" && name != "h" && name != "version" && name != "v" {
			return out, &usageError{fmt.Sprintf("unknown flag %s%s; see 'modelstorefs --help'", args[i], unknownFlagHint(app, nil, name))}
		}
		out.args = append(out.args, args[i])
	}
	if i == len(args) {
		return out, nil
	}
	if args[i] == "help" || args[i] == "h" { // urfave/cli's hidden help command finds no topic
		return helpArgs(app, out, args[i+1:])
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return out, unknownCommand(app, args[i])
	}
	out.args = append(out.args, args[i])
	i++
	for ; i < len(args) && len(cmd.Subcommands) > 0; i++ { // "cache du": the subcommand's flags
		sub := subcommand(cmd, args[i])
		if sub == nil {
			break
		}
		cmd = sub
		out.args = append(out.args, args[i])
	}
	flags, positional, err := commandArgs(app, cmd, args, i)
	if err != nil {
		return out, err
	}
	out.warnings = append(passwordWarnings(flags), headerWarnings(cmd.Name, flags)...)
	out.args = append(out.args, flags...)
	if len(positional) > 0 {
		out.args = append(out.args, "--")
		out.args = append(out.args, positional...)
	}
	return out, nil
}

// commandArgs sorts the arguments of cmd from args[i] on into its flags,
// in canonical form ("--name", value), and its positional arguments.
func commandArgs(app *cli.App, cmd *cli.Command, args []string, i int) (flags, positional []string, err error) {
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "help" || name == "h" {
			flags = append(flags, "--help")
			continue
		}
		if name == "o" && cmd.Name == "mount" { // fstab-style options, as the mount helper takes them
			more, next, err := mountOptionArgs(args, i, value, hasValue)
			if err != nil {
				return nil, nil, err
			}
			flags, i = append(flags, more...), next
			continue
		}
		f := lookupFlag(cmd.Flags, name)
		if f == nil {
			return nil, nil, &usageError{fmt.Sprintf("%s: unknown flag %s%s; see 'modelstorefs %s --help'", cmd.Name, a, unknownFlagHint(app, cmd, name), cmd.Name)}
		}
		canonical := "--" + f.Names()[0]
		if _, isBool := f.(*cli.BoolFlag); isBool {
			if hasValue {
				canonical += "=" + value
			}
			flags = append(flags, canonical)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, nil, &usageError{fmt.Sprintf("%s: flag %s needs a value; see 'modelstorefs %s --help'", cmd.Name, a, cmd.Name)}
			}
			i++
			value = args[i]
		}
		flags = append(flags, canonical, value)
	}
	return flags, positional, nil
}

// mountOptionArgs expands mount's -o at args[i] ("-o OPTIONS" or
// "-o=OPTIONS") into mount flags; next is the index of its last word.
func mountOptionArgs(args []string, i int, value string, hasValue bool) (flags []string, next int, err error) {
	if !hasValue {
		if i+1 >= len(args) {
			return nil, i, &usageError{"mount: -o needs OPTIONS, e.g. -o allow_other,cache_size=20GiB"}
		}
		i++
		value = args[i]
	}
	flags, err = optionFlags(strings.Split(value, ","))
	if err != nil {
		return nil, i, &usageError{"mount: " + err.Error()}
	}
	return flags, i, nil
}

// helpArgs is "help [COMMAND]" as urfave/cli reads it: "[COMMAND] --help".
func helpArgs(app *cli.App, out normalizedArgs, rest []string) (normalizedArgs, error) {
	if len(rest) > 0 {
		if app.Command(rest[0]) == nil {
			return out, unknownCommand(app, rest[0])
		}
		out.args = append(out.args, rest[0])
	}
	out.args = append(out.args, "--help")
	return out, nil
}

// subcommand returns cmd's subcommand called name (or an alias), or nil.
func subcommand(cmd *cli.Command, name string) *cli.Command {
	for _, sub := range cmd.Subcommands {
		if sub.HasName(name) {
			return sub
		}
	}
	return nil
}

// passwordWarnings warns once when a --store value (from --store, -s or
// -o store=) carries a password.
func passwordWarnings(flags []string) []string {
	for j := 0; j+1 < len(flags); j++ {
		if flags[j] == "--store" && hasPassword(flags[j+1]) {
			return []string{"warning: the --store URL carries a password, which other users can read " +
				"in ps; put it in ~/.netrc, or pass the stores with --store-file or DIGITS_MODEL_STORE_URL instead"}
		}
	}
	return nil
}

// unknownCommand says so, with the command meant if it is a typo.
func unknownCommand(app *cli.App, name string) error {
	var names []string
	for _, c := range app.VisibleCommands() {
		names = append(names, c.Names()...)
	}
	hint := ""
	if s := closest(name, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", s)
	}
	return &usageError{fmt.Sprintf("unknown command %q%s; see 'modelstorefs --help'", name, hint)}
}

// unknownFlagHint names the commands that have the flag, or the flag a
// mistyped one probably meant (cmd nil: a global flag): " (a flag of
// mount)", " (did you mean --cache-size?)".
func unknownFlagHint(app *cli.App, cmd *cli.Command, name string) string {
	flags := app.VisibleFlags()
	if cmd != nil {
		flags = cmd.VisibleFlags()
	}
	var owners []string
	for _, c := range app.VisibleCommands() {
		if c != cmd && lookupFlag(c.VisibleFlags(), name) != nil {
			owners = append(owners, c.Name)
		}
	}
	if len(owners) > 0 {
		return fmt.Sprintf(" (a flag of %s)", strings.Join(owners, ", "))
	}
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	if s := closest(name, names); s != "" {
		return fmt.Sprintf(" (did you mean %s?)", dashed(s))
	}
	return ""
}

// closest is the candidate nearest to name, if it is near enough to be a
// typo of it (Jaro-Winkler, as urfave/cli's own suggestions), else "".
func closest(name string, candidates []string) string {
	best, score := "", 0.0
	for _, c := range candidates {
		if len(c) < 2 {
			continue // -s, -o: any short word is near them
		}
		if d := smetrics.JaroWinkler(name, c, 0.7, 4); d > score {
			best, score = c, d
		}
	}
	if score < 0.85 {
		return ""
	}
	return best
}

// dashed writes a flag name as typed: -o, --store.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagName is the name in "--name=value", "-name" or "--name".
func flagName(arg string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name
}

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// hasPassword reports whether a --store value (a comma-separated list of
// URL or NAME=URL entries) has a URL with a password in it.
func hasPassword(value string) bool {
	for _, entry := range strings.Split(value, ",") {
		entry = strings.TrimSpace(entry)
		if eq := strings.Index(entry, "="); eq > 0 && eq < strings.Index(entry, "://") {
			entry = entry[eq+1:]
		}
		if u, err := url.Parse(entry); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				return true
			}
		}
	}
	return false
}

var invalidValue = regexp.MustCompile(`^invalid value "(.*)" for flag -+([^:]+): `)

// onUsageError turns urfave/cli's parse errors into one line saying what
// the flag wants, instead of the whole help text.
func onUsageError(c *cli.Context, err error, _ bool) error {
	where := "modelstorefs"
	if c.Command != nil && c.Command.Name != "" {
		where += " " + c.Command.Name
	}
	msg := err.Error()
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		value, name := m[1], m[2]
		var f cli.Flag
		if c.Command != nil {
			f = lookupFlag(c.Command.Flags, name)
		}
		switch f.(type) {
		case *cli.DurationFlag:
			return &usageError{fmt.Sprintf("--%s: %q is not a duration: give a number and a unit, like 24h, 90m or 30s", name, value)}
		case *cli.IntFlag:
			return &usageError{fmt.Sprintf("--%s: %q is not a whole number", name, value)}
		case *cli.BoolFlag:
			return &usageError{fmt.Sprintf("--%s takes no value (or =true/=false), got %q", name, value)}
		}
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return &usageError{fmt.Sprintf("unknown flag %s; see '%s --help'", name, where)}
	}
	return &usageError{fmt.Sprintf("%s; see '%s --help'", msg, where)}
}
