package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

func (c *cli) printTopHelp(w io.Writer, top *flag.FlagSet) {
	fmt.Fprint(w, `Usage: ocvrctl [global flags] <command> [<subcommand>] [flags]

ocvrctl manages OCVR Realtime's state in NATS (sessions, channels, members,
friends, tickets, the event stream), publishes events onto the bus and
shows why a gateway refused one (advisories), for operators and backend
developers. Channel and user events go through the event stream, so
clients can resume them (--core on a publish command: a plain NATS
publish). Every command takes flags, never positional arguments. Event
times are unix seconds (JSON integers), as in the protocol document.

Commands:
`)
	cmds := make([]*command, len(c.commands))
	for i := range c.commands {
		cmds[i] = &c.commands[i]
	}
	printCommandList(w, cmds)
	fmt.Fprint(w, "\nGlobal flags (accepted before or after the command; each also read from\nits OCVR_* environment variable, a flag on the command line wins):\n")
	printFlags(w, top, func(name string) bool { return name != "version" }, true)
	fmt.Fprint(w, "\n"+exitHelp+`

Run 'ocvrctl <command> [<subcommand>] --help' for the flags of a command,
'ocvrctl --version' for the build.
`)
}

func (c *cli) printCommandHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: ocvrctl %s %s\n\n%s\n", cmd.path, cmd.synopsis, cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	}
	global := map[string]bool{}
	var g globals
	gfs := flag.NewFlagSet("", flag.ContinueOnError)
	g.register(gfs)
	gfs.VisitAll(func(f *flag.Flag) { global[f.Name] = true })
	own := false
	fs.VisitAll(func(f *flag.Flag) { own = own || !global[f.Name] })
	if own {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs, func(name string) bool { return !global[name] }, false)
	}
	fmt.Fprint(w, "\nGlobal flags (each also read from its OCVR_* environment variable):\n")
	printFlags(w, fs, func(name string) bool { return global[name] }, true)
}

func printCommandList(w io.Writer, cmds []*command) {
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.path))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.path, c.summary)
	}
}

// printFlags documents the flags of fs accepted by include, sorted by name,
// with their defaults and, for global flags, their environment variables.
func printFlags(w io.Writer, fs *flag.FlagSet, include func(string) bool, env bool) {
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if include(f.Name) {
			flags = append(flags, f)
		}
	})
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	for _, f := range flags {
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		var extra []string
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			extra = append(extra, "default "+f.DefValue)
		}
		if env {
			extra = append(extra, "env "+envName(f.Name))
		}
		if len(extra) > 0 {
			usage += " (" + strings.Join(extra, "; ") + ")"
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, strings.ReplaceAll(usage, "\n", "\n      "))
	}
}
