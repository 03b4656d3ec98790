// Package config turns ticketsvc's command line and OCVR_* environment into
// a server.Config. Every flag has an environment equivalent so the same
// binary runs from a shell, `make run` and a Kubernetes manifest; a flag
// given on the command line wins over its environment variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/origin"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/ticketsvc/internal/server"
)

// Config is everything main needs.
type Config struct {
	Server   server.Config
	LogLevel slog.Level
}

// EnvName is the environment variable of a flag: OCVR_ + upper snake case.
func EnvName(flagName string) string {
	return "OCVR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args (without the program name). lookupEnv is os.LookupEnv
// in production; an environment variable that is set but empty counts as
// unset, as orchestrators often render absent values that way. On --help
// the usage goes to out and the error is flag.ErrHelp.
func Parse(args []string, lookupEnv func(string) (string, bool), out io.Writer) (Config, error) {
	d := server.DefaultConfig()
	var (
		natsURLs = strings.Join(d.NATSURLs, ",")
		origins  = strings.Join(d.AllowedOrigins, ",")
		body     = byteSize(d.BodyLimit)
		level    = levelFlag(slog.LevelInfo)
		c        = Config{Server: d}
	)
	fs := flag.NewFlagSet("ticketsvc", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; usage is printed by us
	fs.StringVar(&c.Server.Listen, "listen", d.Listen, "public `host:port` of the ticket API")
	fs.StringVar(&c.Server.AdminListen, "admin-listen", d.AdminListen, "`host:port` of /healthz, /readyz and /metrics; keep it off the public network")
	fs.StringVar(&natsURLs, "nats-url", natsURLs, "NATS server `urls`, comma-separated")
	fs.StringVar(&c.Server.NATSCredsFile, "nats-creds", "", "NATS credentials `file` (JWT and nkey seed)")
	fs.StringVar(&c.Server.NATSTLSCAFile, "nats-tls-ca", "", "PEM `file` of CAs to trust for NATS TLS")
	fs.StringVar(&c.Server.NATSTLSCertFile, "nats-tls-cert", "", "PEM client certificate `file` for NATS mutual TLS")
	fs.StringVar(&c.Server.NATSTLSKeyFile, "nats-tls-key", "", "PEM client key `file` for NATS mutual TLS")
	fs.StringVar(&c.Server.SubjectPrefix, "subject-prefix", d.SubjectPrefix, "NATS subject `prefix` of this environment (must match the gateways): the session service answers on <prefix>.svc.sessions.*")
	fs.StringVar(&c.Server.JetStreamDomain, "jetstream-domain", "", "JetStream `domain` holding the KV buckets, e.g. a hub's when this NATS is a leafnode with its own JetStream (empty: the connected server's)")
	fs.StringVar(&c.Server.SessionsBucket, "sessions-bucket", d.SessionsBucket, "KV `bucket` holding bearer sessions")
	fs.StringVar(&c.Server.TicketsBucket, "tickets-bucket", d.TicketsBucket, "KV `bucket` holding connect tickets")
	fs.StringVar(&origins, "allowed-origins", origins, "CORS `origins` allowed to request tickets from a browser, comma-separated;\n"+
		"forms: https://app.example.com, http://localhost:* (any port), https://*.example.com (subdomains), * (any);\nempty: no cross-origin callers")
	fs.IntVar(&c.Server.RateLimit, "rate-limit", d.RateLimit, "`tickets` per session per minute (bursts up to the same number); 0 disables the limit")
	fs.Var(&body, "body-limit", "largest accepted request `size` (e.g. 4096, 4KB, 1MB; KB = KiB = 1024 bytes)")
	fs.Var(&level, "log-level", "log `level`: debug, info, warn or error")
	fs.DurationVar(&c.Server.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "how long in-flight requests may run after SIGTERM/SIGINT")
	fs.DurationVar(&c.Server.KVTimeout, "kv-timeout", d.KVTimeout, "bound on each NATS KV call of a request; slower calls answer 503")
	fs.IntVar(&c.Server.MaxInflight, "max-inflight", d.MaxInflight, "ticket `requests` doing KV work at once; beyond it requests get 503 with Retry-After at once")
	fs.IntVar(&c.Server.MaxConns, "max-conns", d.MaxConns, "open `connections` of the public listener; beyond it new ones wait to be accepted,\nand from 3/4 of it on responses close their connection instead of keeping it alive")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(out, fs)
		}
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (ticketsvc takes flags only)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || envErr != nil {
			return
		}
		name := EnvName(f.Name)
		if v, ok := lookupEnv(name); ok && v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s: %w", v, name, err)
			}
		}
	})
	if envErr != nil {
		return Config{}, envErr
	}

	c.Server.NATSURLs = splitList(natsURLs)
	if len(c.Server.NATSURLs) == 0 {
		return Config{}, errors.New("--nats-url: at least one NATS URL is required")
	}
	c.Server.AllowedOrigins = splitList(origins)
	if _, err := origin.ParseList(c.Server.AllowedOrigins); err != nil {
		return Config{}, fmt.Errorf("--allowed-origins: %w", err)
	}
	if _, err := bus.NewSubjects(c.Server.SubjectPrefix); err != nil {
		return Config{}, fmt.Errorf("--subject-prefix: %w", err)
	}
	if err := provision.CheckDomain(c.Server.JetStreamDomain); err != nil {
		return Config{}, fmt.Errorf("--jetstream-domain: %w", err)
	}
	if c.Server.RateLimit < 0 {
		return Config{}, errors.New("--rate-limit must be 0 (off) or positive")
	}
	if c.Server.ShutdownTimeout <= 0 || c.Server.KVTimeout <= 0 {
		return Config{}, errors.New("--shutdown-timeout and --kv-timeout must be positive")
	}
	if c.Server.MaxInflight <= 0 || c.Server.MaxConns <= 0 {
		return Config{}, errors.New("--max-inflight and --max-conns must be positive")
	}
	c.Server.BodyLimit = int64(body)
	c.LogLevel = slog.Level(level)
	return c, nil
}

// usage documents every flag with its environment variable and default.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: ticketsvc [flags]

ticketsvc verifies a bearer session (Authorization: Bearer sess_…) and mints a
single-use, 30-second WebSocket connect ticket: POST /v1/auth/ws-ticket.

Every flag can also be set through the environment variable shown; a flag on
the command line wins over the environment.

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n", f.Name, name)
		for _, line := range strings.Split(text, "\n") {
			fmt.Fprintf(w, "        %s\n", line)
		}
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "        env %s, default %s\n", EnvName(f.Name), def)
	})
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

// byteSize is a size flag: a plain byte count or a number with a K/M suffix
// (KB, KiB and K all mean 1024: request limits are never meant in 1000s).
type byteSize int64

func (b *byteSize) String() string {
	switch n := int64(*b); {
	case n > 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MB"
	case n > 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KB"
	default:
		return strconv.FormatInt(n, 10)
	}
}

func (b *byteSize) Set(s string) error {
	v := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(v, suf.s); ok {
			v, mult = strings.TrimSpace(rest), suf.m
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<30)/mult {
		return fmt.Errorf("want a positive size up to 1GB such as 4096, 4KB or 1MB")
	}
	*b = byteSize(n * mult)
	return nil
}

// levelFlag is a slog level flag restricted to the four documented names.
type levelFlag slog.Level

func (l *levelFlag) String() string { return strings.ToLower(slog.Level(*l).String()) }

func (l *levelFlag) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		*l = levelFlag(slog.LevelDebug)
	case "info":
		*l = levelFlag(slog.LevelInfo)
	case "warn":
		*l = levelFlag(slog.LevelWarn)
	case "error":
		*l = levelFlag(slog.LevelError)
	default:
		return errors.New("want debug, info, warn or error")
	}
	return nil
}
