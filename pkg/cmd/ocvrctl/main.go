// Command ocvrctl is the hand tool of OCVR Realtime for operators and
// backend developers: it creates and revokes sessions, manages channels,
// memberships and friendships, publishes events onto the bus, mints
// connect tickets and provisions the event stream, all directly against
// NATS (KV, JetStream and core subjects).
//
// Every command takes flags, never positional arguments:
//
//	ocvrctl [global flags] <command> [<subcommand>] [flags]
//
// Run `ocvrctl --help` for the list of commands and `ocvrctl <command>
// --help` for one command. --json makes every result one JSON object per
// line. Exit status (output.go): 0 success, 1 any other failure, 2 usage
// error, 3 unreachable, 4 not found, 5 refused.
//
// Commands live in the table returned by commands (commands.go): adding a
// command is one entry there plus one setup function.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ocvr/realtime/pkg/buildinfo"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/stream"
	"github.com/ocvr/realtime/pkg/ticket"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, commands: commands()}
	code := c.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// runEnv runs one ocvrctl command line (without the program name) with an
// empty standard input and returns its exit code; getenv stands for the
// process environment. For tests.
func runEnv(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, getenv: getenv, commands: commands()}
	return c.run(ctx, args)
}

// command is one ocvrctl command (a row of the table in commands.go).
type command struct {
	// path is the words that select the command: "channel create".
	path string
	// synopsis is the command's flags as shown after its path in usage
	// lines: "--channel ID".
	synopsis string
	// summary is one line for the command list.
	summary string
	// help is the longer description shown by --help (optional).
	help string
	// setup declares the command's flags on fs and returns the function
	// that runs the command once they are parsed. That function validates
	// its flags first (returning usageErrorf for bad ones, which exits 2
	// before anything touches NATS), then uses the app for NATS, stores
	// and output.
	setup func(fs *flag.FlagSet) func(ctx context.Context, a *app) error
	// long marks a command that runs until interrupted (connect): the
	// global --timeout does not bound it.
	long bool
}

type cli struct {
	stdin          io.Reader // publish raw and validate read frames from it
	stdout, stderr io.Writer
	getenv         func(string) string
	commands       []command
	json           bool // --json: errors too are JSON lines
}

// usageError is a bad command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func (c *cli) run(ctx context.Context, args []string) int {
	g := globals{
		natsURL:       bus.DefaultURL,
		subjectPrefix: bus.DefaultPrefix,
		sessions:      session.DefaultBucket,
		tickets:       ticket.DefaultBucket,
		directory: directory.Buckets{
			Channels: directory.ChannelsBucket,
			Members:  directory.MembersBucket,
			Friends:  directory.FriendsBucket,
		},
		streamName: stream.DefaultName,
		timeout:    10 * time.Second,
	}
	top := flag.NewFlagSet("ocvrctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := c.applyEnv(top); err != nil {
		return c.fail("", err)
	}
	// Declared after applyEnv: no OCVR_VERSION variable (deployments set
	// such names for other purposes).
	version := top.Bool("version", false, "print the version of ocvrctl and exit")
	if err := top.Parse(args); err != nil {
		c.json = g.json
		if errors.Is(err, flag.ErrHelp) {
			c.printTopHelp(c.stdout, top)
			return exitOK
		}
		return c.fail("", usageErrorf("%s", flagError(err)))
	}
	c.json = g.json
	if *version {
		c.printVersion()
		return exitOK
	}
	rest := top.Args()
	if len(rest) == 0 || rest[0] == "help" {
		if len(rest) == 0 {
			c.printTopHelp(c.stderr, top)
			return exitUsage
		}
		c.printTopHelp(c.stdout, top)
		return exitOK
	}
	cmd, n := c.lookup(rest)
	if cmd == nil {
		return c.group(rest, top)
	}

	fs := flag.NewFlagSet("ocvrctl "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs) // global flags may also follow the command
	runCmd := cmd.setup(fs)
	err := fs.Parse(rest[n:])
	c.json = g.json
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printCommandHelp(c.stdout, cmd, fs)
			return exitOK
		}
		return c.fail(cmd.path, usageErrorf("%s", flagError(err)))
	}
	if fs.NArg() > 0 {
		return c.fail(cmd.path, usageErrorf("unexpected argument %q: ocvrctl takes flags only", fs.Arg(0)))
	}
	subjects, err := bus.NewSubjects(g.subjectPrefix)
	if err != nil {
		return c.fail(cmd.path, usageErrorf("--subject-prefix: %v", err))
	}
	urls := splitList(g.natsURL)
	if len(urls) == 0 {
		return c.fail(cmd.path, usageErrorf("--nats-url: at least one NATS URL is required"))
	}
	if g.timeout <= 0 {
		return c.fail(cmd.path, usageErrorf("--timeout must be positive"))
	}
	if err := provision.CheckDomain(g.jsDomain); err != nil {
		return c.fail(cmd.path, usageErrorf("--jetstream-domain: %v", err))
	}
	ctx = provision.WithDomain(ctx, g.jsDomain) // every store and stream the command opens
	// A long command (connect, advisories) runs until interrupted, unless
	// --timeout is given on its command line.
	if !cmd.long || given(top)["timeout"] || given(fs)["timeout"] {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	a := &app{in: c.stdin, out: c.stdout, errOut: c.stderr, g: g, urls: urls, subjects: subjects, now: time.Now}
	defer a.close()
	err = runCmd(ctx, a)
	if errors.Is(err, bus.ErrNoStream) {
		err = fmt.Errorf("%w; create it with 'ocvrctl stream ensure', or publish without a position with --core", err)
	}
	return c.fail(cmd.path, err)
}

// lookup finds the command whose path is the longest prefix of args and
// returns it with the number of words its path takes.
func (c *cli) lookup(args []string) (*command, int) {
	var best *command
	bestN := 0
	for i := range c.commands {
		words := strings.Fields(c.commands[i].path)
		if len(words) <= len(args) && len(words) > bestN && slices.Equal(words, args[:len(words)]) {
			best, bestN = &c.commands[i], len(words)
		}
	}
	return best, bestN
}

// group handles a command line naming a command group ("session") without
// a known subcommand: help for the group, or a usage error.
func (c *cli) group(args []string, top *flag.FlagSet) int {
	var members []*command
	for i := range c.commands {
		if strings.Fields(c.commands[i].path)[0] == args[0] {
			members = append(members, &c.commands[i])
		}
	}
	if len(members) == 0 {
		return c.fail("", usageErrorf("unknown command %q; run 'ocvrctl --help' for the list", args[0]))
	}
	if len(args) == 1 || isHelp(args[1]) {
		w, code := c.stdout, exitOK
		if len(args) == 1 {
			w, code = c.stderr, exitUsage
		}
		fmt.Fprintf(w, "Usage: ocvrctl %s <subcommand> [flags]\n\nSubcommands:\n", args[0])
		printCommandList(w, members)
		fmt.Fprintf(w, "\nRun 'ocvrctl %s <subcommand> --help' for the flags of one.\n", args[0])
		return code
	}
	var subs []string
	for _, m := range members {
		subs = append(subs, strings.TrimPrefix(m.path, args[0]+" "))
	}
	return c.fail(args[0], usageErrorf("unknown subcommand %q (want one of: %s)", args[1], strings.Join(subs, ", ")))
}

// flagError rewords the flag package's parse errors with the --name
// spelling the help uses.
func flagError(err error) string {
	return strings.NewReplacer(
		"for flag -", "for --",
		"not defined: -", "not defined: --",
		"needs an argument: -", "needs an argument: --",
	).Replace(err.Error())
}

func isHelp(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// fail prints err as one line on stderr (a JSON object with --json) and
// returns the exit code for it (exitCode).
func (c *cli) fail(path string, err error) int {
	if err == nil {
		return exitOK
	}
	code, kind := exitCode(err)
	msg := strings.Join(strings.Fields(err.Error()), " ") // one line, whatever the error
	if code == exitUsage && path != "" {
		msg += " (see 'ocvrctl " + path + " --help')"
	}
	if c.json {
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"kind": kind, "exit": code, "command": path, "message": msg}})
		fmt.Fprintf(c.stderr, "%s\n", b)
		return code
	}
	prefix := "ocvrctl: "
	if path != "" {
		prefix = "ocvrctl " + path + ": "
	}
	fmt.Fprintln(c.stderr, prefix+msg)
	return code
}

// printVersion prints the build of this binary (pkg/buildinfo).
func (c *cli) printVersion() {
	bi := buildinfo.Read()
	if c.json {
		b, _ := json.Marshal(map[string]any{"version": bi.Version, "revision": bi.Revision, "time": bi.Time, "modified": bi.Modified, "go": bi.Go})
		fmt.Fprintf(c.stdout, "%s\n", b)
		return
	}
	fmt.Fprintf(c.stdout, "ocvrctl %s\n", bi)
}
