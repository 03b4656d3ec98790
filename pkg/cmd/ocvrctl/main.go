// Command ocvrctl is the hand tool of OCVR Realtime for operators and
// backend developers: it creates and revokes sessions, manages channels,
// memberships and friendships, publishes events onto the bus and mints
// connect tickets, all directly against NATS (KV and core subjects).
//
// Every command takes flags, never positional arguments:
//
//	ocvrctl [global flags] <command> [<subcommand>] [flags]
//
// Run `ocvrctl --help` for the list of commands and `ocvrctl <command>
// --help` for one command. Exit status: 0 success, 1 runtime error (NATS
// unreachable, not found, unauthorized), 2 usage error (bad flag or id).
//
// Commands live in the table returned by commands (commands.go): adding a
// command is one entry there plus one setup function.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/redact"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1 // the command was well-formed but failed
	exitUsage   = 2 // bad command line: nothing was attempted
)

// run runs one ocvrctl command line (without the program name) and returns
// its exit code. It reads OCVR_* variables from the process environment.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, stdout, stderr, os.Getenv)
}

// runEnv is run with the environment lookup injected, for tests.
func runEnv(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv, commands: commands()}
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

// globals are the flags every command accepts, before or after its name.
type globals struct {
	natsURL       string
	natsCreds     string
	natsTLSCA     string
	natsTLSCert   string
	natsTLSKey    string
	subjectPrefix string
	sessions      string
	tickets       string
	directory     directory.Buckets
	timeout       time.Duration
}

// register declares the global flags on fs with the current values as
// defaults.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.natsURL, "nats-url", g.natsURL, "NATS server `urls`, comma-separated")
	fs.StringVar(&g.natsCreds, "nats-creds", g.natsCreds, "NATS credentials `file` (JWT and nkey seed)")
	fs.StringVar(&g.natsTLSCA, "nats-tls-ca", g.natsTLSCA, "PEM `file` of CAs to trust for NATS TLS")
	fs.StringVar(&g.natsTLSCert, "nats-tls-cert", g.natsTLSCert, "PEM client certificate `file` for NATS mutual TLS")
	fs.StringVar(&g.natsTLSKey, "nats-tls-key", g.natsTLSKey, "PEM client key `file` for NATS mutual TLS")
	fs.StringVar(&g.subjectPrefix, "subject-prefix", g.subjectPrefix, "NATS subject `prefix` of the environment (must match the gateways)")
	fs.StringVar(&g.sessions, "sessions-bucket", g.sessions, "KV `bucket` of bearer sessions")
	fs.StringVar(&g.tickets, "tickets-bucket", g.tickets, "KV `bucket` of connect tickets")
	fs.StringVar(&g.directory.Channels, "channels-bucket", g.directory.Channels, "KV `bucket` of channels")
	fs.StringVar(&g.directory.Members, "members-bucket", g.directory.Members, "KV `bucket` of channel memberships")
	fs.StringVar(&g.directory.Friends, "friends-bucket", g.directory.Friends, "KV `bucket` of friendships")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound on the whole command, NATS calls included\n(connect and advisories run until interrupted unless it is given on the command line)")
}

// envName is the environment variable of a global flag: OCVR_ + upper
// snake case, as for the services.
func envName(flagName string) string {
	return "OCVR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	commands       []command
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
		timeout: 10 * time.Second,
	}
	top := flag.NewFlagSet("ocvrctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := c.applyEnv(top); err != nil {
		return c.fail("", err)
	}
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printTopHelp(c.stdout, top)
			return exitOK
		}
		return c.fail("", usageErrorf("%s", flagError(err)))
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
	if err := fs.Parse(rest[n:]); err != nil {
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
	// A long command (connect, advisories) runs until interrupted, unless
	// --timeout is given on its command line.
	if !cmd.long || given(top)["timeout"] || given(fs)["timeout"] {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	a := &app{out: c.stdout, errOut: c.stderr, g: g, urls: urls, subjects: subjects, now: time.Now}
	defer a.close()
	return c.fail(cmd.path, runCmd(ctx, a))
}

// applyEnv sets each global flag from its OCVR_* variable (flags given on
// the command line are parsed afterwards and win).
func (c *cli) applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := c.getenv(name); v != "" && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = usageErrorf("%s=%q: %v", name, v, e)
			}
		}
	})
	return err
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

// fail prints err as one line on stderr and returns the exit code for it.
func (c *cli) fail(path string, err error) int {
	if err == nil {
		return exitOK
	}
	msg := strings.Join(strings.Fields(err.Error()), " ") // one line, whatever the error
	prefix := "ocvrctl: "
	if path != "" {
		prefix = "ocvrctl " + path + ": "
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if path != "" {
			msg += " (see 'ocvrctl " + path + " --help')"
		}
		fmt.Fprintln(c.stderr, prefix+msg)
		return exitUsage
	}
	fmt.Fprintln(c.stderr, prefix+msg)
	return exitRuntime
}

func (c *cli) printTopHelp(w io.Writer, top *flag.FlagSet) {
	fmt.Fprint(w, `Usage: ocvrctl [global flags] <command> [<subcommand>] [flags]

ocvrctl manages OCVR Realtime's state in NATS (sessions, channels, members,
friends, tickets), publishes events onto the bus and shows why a gateway
refused one (advisories), for operators and backend developers. Every
command takes flags, never positional arguments. Event times are unix
seconds (JSON integers), as in the protocol document.

Commands:
`)
	cmds := make([]*command, len(c.commands))
	for i := range c.commands {
		cmds[i] = &c.commands[i]
	}
	printCommandList(w, cmds)
	fmt.Fprint(w, "\nGlobal flags (accepted before or after the command; each also read from\nits OCVR_* environment variable, a flag on the command line wins):\n")
	printFlags(w, top, func(string) bool { return true }, true)
	fmt.Fprint(w, `
Exit status: 0 success, 1 runtime error (NATS unreachable, not found,
unauthorized), 2 usage error (bad flag or id; nothing was attempted).

Run 'ocvrctl <command> [<subcommand>] --help' for the flags of a command.
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

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// app is what a running command uses: its output, the parsed global flags,
// and NATS resources opened on first use (so a command that fails its flag
// checks never connects).
type app struct {
	out      io.Writer
	errOut   io.Writer // progress of a long command (never its results)
	g        globals
	urls     []string
	subjects bus.Subjects
	now      func() time.Time

	nc   *nats.Conn
	pub  *bus.Publisher
	sess *session.Store
	tick *ticket.Store
	dir  *directory.Store
	pres *presence.Store
}

// conn connects to NATS once. An unreachable NATS fails fast with one
// clear error (no retry in the background: this is a CLI).
func (a *app) conn() (*nats.Conn, error) {
	if a.nc != nil {
		return a.nc, nil
	}
	nc, err := bus.Connect(bus.Config{
		URLs:        a.urls,
		CredsFile:   a.g.natsCreds,
		TLSCAFile:   a.g.natsTLSCA,
		TLSCertFile: a.g.natsTLSCert,
		TLSKeyFile:  a.g.natsTLSKey,
		Name:        "ocvrctl",
	})
	if err != nil {
		cause := errors.Unwrap(err)
		if cause == nil {
			cause = err
		}
		return nil, fmt.Errorf("cannot reach NATS at %s: %w", redact.URLs(a.urls), cause)
	}
	a.nc = nc
	return nc, nil
}

// publisher returns the bus publisher of the environment.
func (a *app) publisher() (*bus.Publisher, error) {
	if a.pub == nil {
		nc, err := a.conn()
		if err != nil {
			return nil, err
		}
		a.pub = bus.NewPublisher(nc, a.subjects)
	}
	return a.pub, nil
}

// sessions returns the session store (able to revoke: it has a publisher).
func (a *app) sessions(ctx context.Context) (*session.Store, error) {
	if a.sess == nil {
		pub, err := a.publisher()
		if err != nil {
			return nil, err
		}
		s, err := session.Open(ctx, a.nc, a.g.sessions, pub)
		if err != nil {
			return nil, err
		}
		a.sess = s
	}
	return a.sess, nil
}

// tickets returns the ticket store.
func (a *app) tickets(ctx context.Context) (*ticket.Store, error) {
	if a.tick == nil {
		nc, err := a.conn()
		if err != nil {
			return nil, err
		}
		s, err := ticket.Open(ctx, nc, a.g.tickets)
		if err != nil {
			return nil, err
		}
		a.tick = s
	}
	return a.tick, nil
}

// directory returns the channel/member/friend directory.
func (a *app) directory(ctx context.Context) (*directory.Store, error) {
	if a.dir == nil {
		nc, err := a.conn()
		if err != nil {
			return nil, err
		}
		d, err := directory.Open(ctx, nc, directory.WithBuckets(a.g.directory))
		if err != nil {
			return nil, err
		}
		a.dir = d
	}
	return a.dir, nil
}

// presence returns the presence store.
func (a *app) presence(ctx context.Context) (*presence.Store, error) {
	if a.pres == nil {
		d, err := a.directory(ctx)
		if err != nil {
			return nil, err
		}
		pub, err := a.publisher()
		if err != nil {
			return nil, err
		}
		p, err := presence.Open(ctx, a.nc, "", d, pub)
		if err != nil {
			return nil, err
		}
		a.pres = p
	}
	return a.pres, nil
}

// printf writes a line of command output.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.out, format+"\n", args...)
}

func (a *app) close() {
	if a.nc != nil {
		_ = a.nc.FlushTimeout(2 * time.Second)
		a.nc.Close()
	}
}
