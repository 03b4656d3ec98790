package main

import (
	"flag"
	"strings"
	"time"

	"github.com/ocvr/realtime/pkg/directory"
)

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
	streamName    string
	jsDomain      string
	timeout       time.Duration
	json          bool
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
	fs.StringVar(&g.streamName, "stream-name", g.streamName, "JetStream `stream` of channel and user events (continuity; must match the gateways' --stream-name)")
	fs.StringVar(&g.jsDomain, "jetstream-domain", g.jsDomain, "JetStream `domain` holding the buckets and the event stream (the services' --jetstream-domain; empty: the connected server's)")
	fs.BoolVar(&g.json, "json", g.json, "print every result as one JSON object per line (errors: one JSON line on stderr)")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound on the whole command, NATS calls included\n(connect and advisories run until interrupted unless it is given on the command line)")
}

// envName is the environment variable of a global flag: OCVR_ + upper
// snake case, as for the services.
func envName(flagName string) string {
	return "OCVR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
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

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
