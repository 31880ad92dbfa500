package main

// The man page is written from the same command definitions as --help
// (names, usage lines, descriptions, flags, their placeholders, defaults
// and variables) and from the fstab option table of the mount helper, so
// that the two cannot drift apart. `make install` installs the output of
// the hidden command `modelstorefs man`.

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the man page (roff), as make install installs it",
		Hidden: true,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("man: takes no arguments, got %q", c.Args().Slice())
			}
			_, err := io.WriteString(c.App.Writer, manPage(c.App))
			return err
		},
	}
}

// manPage renders app as a section 1 man page.
func manPage(app *cli.App) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH MODELSTOREFS 1 \"\" \"modelstorefs %s\" \"User Commands\"\n", roffQuoted(version))
	b.WriteString(".nh\n.ad l\n") // no hyphenation: names and flags are copied as typed
	fmt.Fprintf(&b, ".SH NAME\nmodelstorefs \\- %s\n", roff(app.Usage))
	b.WriteString(".SH SYNOPSIS\n")
	for _, cmd := range app.VisibleCommands() {
		fmt.Fprintf(&b, ".B modelstorefs %s\n", roff(cmd.Name))
		if len(cmd.VisibleFlags()) > 0 {
			b.WriteString(".RI [ flags ]\n")
		}
		if cmd.ArgsUsage != "" {
			fmt.Fprintf(&b, ".I %s\n", roffQuoted(cmd.ArgsUsage))
		}
		b.WriteString(".br\n")
	}
	b.WriteString(".B mount.fuse.modelstorefs\n.I SOURCE MOUNTPOINT\n.RB [ \\-o\n.IR OPTIONS ]\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(roffText(app.Description))
	b.WriteString(".SH COMMANDS\n")
	for _, cmd := range app.VisibleCommands() {
		writeManCommand(&b, cmd)
	}
	writeManOptions(&b)
	b.WriteString(manTail)
	return b.String()
}

// writeManCommand writes one command: its synopsis line, usage,
// description and flags, grouped as --help groups them.
func writeManCommand(b *strings.Builder, cmd *cli.Command) {
	names := strings.Join(cmd.Names(), ", ")
	fmt.Fprintf(b, ".SS \"%s\"\n", roffQuoted("modelstorefs "+names+" "+cmd.ArgsUsage))
	fmt.Fprintf(b, "%s.\n", roff(upperFirst(cmd.Usage)))
	if cmd.Description != "" {
		b.WriteString(".PP\n")
		b.WriteString(roffText(cmd.Description))
	}
	for _, group := range flagGroups(cmd.VisibleFlags()) {
		b.WriteString(".PP\n")
		if group.name != "" {
			fmt.Fprintf(b, "%s flags:\n", roff(group.name))
		} else {
			b.WriteString("Flags:\n")
		}
		for _, f := range group.flags {
			writeManFlag(b, f)
		}
	}
}

type flagGroup struct {
	name  string
	flags []cli.Flag
}

// flagGroups puts the command's own flags first, then the shared
// categories in a fixed order.
func flagGroups(flags []cli.Flag) []flagGroup {
	order := []string{"", catStores, catCache, catTuning, catLogging}
	var groups []flagGroup
	for _, name := range order {
		g := flagGroup{name: name}
		for _, f := range flags {
			if flagCategory(f) == name {
				g.flags = append(g.flags, f)
			}
		}
		if len(g.flags) > 0 {
			groups = append(groups, g)
		}
	}
	return groups
}

func flagCategory(f cli.Flag) string {
	if cf, ok := f.(cli.CategorizableFlag); ok {
		return cf.GetCategory()
	}
	return ""
}

// writeManFlag writes one flag as a tagged paragraph: its names and
// placeholder, then its usage, default and environment variables.
func writeManFlag(b *strings.Builder, f cli.Flag) {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return
	}
	placeholder, usage := unquoteUsage(df.GetUsage())
	if placeholder == "" {
		placeholder = "VALUE"
	}
	var names []string
	for _, n := range f.Names() {
		names = append(names, "\\fB"+roff(dashed(n))+"\\fR")
	}
	tag := strings.Join(names, ", ")
	if df.TakesValue() {
		tag += " \\fI" + roff(placeholder) + "\\fR"
	}
	fmt.Fprintf(b, ".TP\n%s\n%s", tag, roff(usage))
	if def := flagDefault(df); def != "" {
		fmt.Fprintf(b, " (default: %s)", roff(def))
	}
	if env := df.GetEnvVars(); len(env) > 0 {
		fmt.Fprintf(b, " [$%s]", roff(strings.Join(env, ", $")))
	}
	b.WriteString("\n")
}

// flagDefault is the default --help shows, without its quotes; "" for a
// switch that is off by default.
func flagDefault(df cli.DocGenerationFlag) string {
	def := df.GetDefaultText()
	if def == "" {
		def = df.GetValue()
	}
	if def == "false" && !df.TakesValue() {
		return ""
	}
	return strings.Trim(def, `"`)
}

// writeManOptions lists the options of an fstab line and of mount -o, from
// the helper's own tables.
func writeManOptions(b *strings.Builder) {
	b.WriteString(".SH MOUNT OPTIONS\n")
	b.WriteString("An /etc/fstab line of type \\fBfuse.modelstorefs\\fR (or \\fBmodelstorefs mount \\-o\\fR) takes:\n")
	var keys []string
	for k := range valueOptions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, ".TP\n\\fB%s=\\fR\\fIVALUE\\fR\n%s\n", roff(k), roff(valueOptions[k]))
	}
	keys = keys[:0]
	for k := range switchOptions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, ".TP\n\\fB%s\\fR\n%s\n", roff(k), roff(switchOptions[k]))
	}
	var ignored []string
	for k := range ignoredOptions {
		ignored = append(ignored, k)
	}
	slices.Sort(ignored)
	fmt.Fprintf(b, ".PP\nIgnored: %s, x\\-*, comment=. Any other option is an error.\n", roff(strings.Join(ignored, ", ")))
}

// manTail is what the command definitions do not hold: the mount helper,
// the environment, the files and the exit status.
const manTail = `.SH FSTAB
.nf
http://host/store1,http://host2/team  /mnt/models  fuse.modelstorefs  allow_other,_netdev  0 0
.fi
.PP
SOURCE, the first field, is the comma\-separated store list, or \fBnone\fR for
\fBstore=\fR, \fBstore_file=\fR or $DIGITS_MODEL_STORE_URL.
mount(8) runs \fBmount.fuse.modelstorefs\fR (a link to \fBmodelstorefs\fR) as
\fBmodelstorefs mount \-\-daemon\fR, which returns once the mount is up.
.SH ENVIRONMENT
.TP
.B DIGITS_MODEL_STORE_URL
the stores, comma\-separated, as DIGITS reads them (when neither \-\-store nor \-\-store\-file is given)
.TP
.B DIGITS_JOBS_DIR
the DIGITS jobs directory (mount, import \-\-jobs\-dir)
.TP
.B DIGITS_URL
a running DIGITS (import \-\-digits)
.TP
.B XDG_CACHE_HOME
the default cache directory is $XDG_CACHE_HOME/modelstorefs, else ~/.cache/modelstorefs
.TP
.B NETRC
credentials file, default ~/.netrc
.TP
.B HTTP_PROXY, HTTPS_PROXY, NO_PROXY
proxies for the stores and for DIGITS
.SH FILES
.TP
.I CACHE_DIR/modelstorefs.log
the log of \fBmount \-\-daemon\fR and of fstab mounts, unless \-\-log\-file
.TP
.I MOUNTPOINT/.stats
counters (JSON); \fI.refresh\fR: touch to refresh
.SH EXIT STATUS
0 on success; 1 on any error, including a model that did not import or a
store check with errors.
.SH SEE ALSO
mount(8), fstab(5), fusermount3(1), systemctl(1)
`

// roff escapes text for a roff line: backslashes, hyphens (so that flags
// copy as typed) and a leading dot or quote.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffQuoted is roff for a quoted macro argument.
func roffQuoted(s string) string { return strings.ReplaceAll(roff(s), `"`, `\(dq`) }

// roffText turns a --help description into roff: blank lines part
// paragraphs, indented lines (examples) are kept as they are.
func roffText(text string) string {
	var b strings.Builder
	inExample := false
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		indented := strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")
		switch {
		case indented && !inExample:
			b.WriteString(".PP\n.nf\n.RS 4\n")
			inExample = true
		case !indented && inExample:
			b.WriteString(".RE\n.fi\n")
			inExample = false
		}
		switch {
		case inExample:
			b.WriteString(roff(strings.TrimSpace(line)) + "\n")
		case strings.TrimSpace(line) == "":
			b.WriteString(".PP\n")
		default:
			b.WriteString(roff(line) + "\n")
		}
	}
	if inExample {
		b.WriteString(".RE\n.fi\n")
	}
	return b.String()
}

// unquoteUsage splits a flag's usage into its `PLACEHOLDER` and the text
// without the backticks, as urfave/cli does for --help.
func unquoteUsage(usage string) (placeholder, text string) {
	before, rest, ok := strings.Cut(usage, "`")
	if !ok {
		return "", usage
	}
	name, after, ok := strings.Cut(rest, "`")
	if !ok {
		return "", usage
	}
	return name, before + name + after
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
