package main

import (
	"context"
	"flag"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/stream"
	"github.com/ocvr/realtime/pkg/ticket"
	"github.com/ocvr/realtime/pkg/typing"
)

// setupCommand provisions every JetStream asset of an environment, so the
// services' NATS users need no stream-admin permission.
var setupCommand = command{
	path:     "setup",
	synopsis: "[--window 2m] [--stream-replicas N] [--stream-max-bytes N] [--no-continuity] [--presence-bucket B] [--typing-bucket B]",
	summary:  "create or update every KV bucket and the event stream the services use (run once per install and upgrade, with admin credentials)",
	help: `Creates, or updates to this version's configuration, the buckets of
sessions, tickets, channels, members, friends, presence and typing, and the
event stream, exactly as the gateways and ticketsvc would open them: the
same code opens them. Run it with a NATS user allowed to create and update
streams ($JS.API.STREAM.CREATE/UPDATE/INFO and $JS.API.INFO) before the
services start and after every upgrade; the services' own users then need
no such permission (deploy/README.md, "NATS security"). The bucket and stream
names are the global flags' (--sessions-bucket … --stream-name) and this
command's; give them the values the services get. Idempotent. Prints one
line per bucket and for the stream with its replicas; a cluster that
cannot place 3 replicas gets 1, with a warning on standard error.`,
	setup: setupAll,
}

// provisioned is one line of setup's output.
type provisioned struct {
	Kind     string `json:"kind"` // "bucket" or "stream"
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
}

func setupAll(fs *flag.FlagSet) func(context.Context, *app) error {
	window := fs.Duration("window", stream.DefaultWindow, "the event stream's MaxAge: the gateways' --continuity-window")
	replicas := fs.Int("stream-replicas", 0, "the event stream's `N` replicas, 1 to 5 (0: 3 where the JetStream cluster holds them, else 1; an existing stream keeps its own)")
	maxBytes := fs.Int64("stream-max-bytes", 0, "the event stream's storage bound in `bytes` (0: unlimited): the gateways' --stream-max-bytes")
	noStream := fs.Bool("no-continuity", false, "no event stream (the gateways run with --no-continuity)")
	presenceBucket := fs.String("presence-bucket", presence.DefaultBucket, "KV `bucket` of presence: the gateways' --presence-bucket")
	typingBucket := fs.String("typing-bucket", typing.DefaultBucket, "KV `bucket` of the typing throttle: the gateways' --typing-bucket")
	return func(ctx context.Context, a *app) error {
		scfg, err := streamConfig(a)
		if err != nil {
			return err
		}
		switch {
		case *window <= 0:
			return usageErrorf("--window must be positive")
		case *replicas < 0 || *replicas > 5:
			return usageErrorf("--stream-replicas must be 0 (auto) to 5")
		case *maxBytes < 0:
			return usageErrorf("--stream-max-bytes must not be negative (0: unlimited)")
		}
		scfg.Window, scfg.Replicas, scfg.MaxBytes = *window, *replicas, *maxBytes
		nc, err := a.conn()
		if err != nil {
			return err
		}
		var mu sync.Mutex
		got := map[string]int{}
		ctx = provision.WithObserver(ctx, &provision.Observer{
			Logger: slog.New(slog.NewTextHandler(a.errOut, nil)),
			Replicas: func(s string, n int) {
				mu.Lock()
				got[s] = n
				mu.Unlock()
			},
		})
		// The stores' own Open functions: the configuration is the one the
		// services open with, by construction.
		if _, err := session.Open(ctx, nc, a.g.sessions, nil); err != nil {
			return err
		}
		if _, err := ticket.Open(ctx, nc, a.g.tickets); err != nil {
			return err
		}
		dir, err := directory.Open(ctx, nc, directory.WithBuckets(a.g.directory))
		if err != nil {
			return err
		}
		if _, err := presence.Open(ctx, nc, *presenceBucket, dir, nil); err != nil {
			return err
		}
		if _, err := typing.Open(ctx, nc, *typingBucket); err != nil {
			return err
		}
		b := dir.Buckets()
		buckets := []string{orDefault(a.g.sessions, session.DefaultBucket), orDefault(a.g.tickets, ticket.DefaultBucket),
			b.Channels, b.Members, b.Friends, *presenceBucket, *typingBucket}
		for _, name := range buckets {
			p := provisioned{Kind: "bucket", Name: name, Replicas: got["KV_"+name]}
			a.emit(p, "bucket %s ready: %d replica(s)", p.Name, p.Replicas)
		}
		if *noStream {
			return nil
		}
		info, err := stream.Ensure(ctx, nc, scfg)
		if err != nil {
			return err
		}
		p := provisioned{Kind: "stream", Name: info.Config.Name, Replicas: info.Config.Replicas}
		a.emit(p, "stream %s ready: %d replica(s), window %s, max bytes %s", p.Name, p.Replicas, info.Config.MaxAge, byteLimit(info.Config.MaxBytes))
		return nil
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// permissionsCommand prints the NATS permissions of each role for the
// environment the global flags name: what deploy/README.md shows for the
// default names, with this environment's.
var permissionsCommand = command{
	path:     "permissions",
	synopsis: "[--role gateway|ticketsvc|backend|admin] [--presence-bucket B] [--typing-bucket B]",
	summary:  "print each role's least NATS permissions (nats-server blocks) for this environment's prefix, buckets, stream and --jetstream-domain; no NATS needed",
	help: `Prints the permissions block of a nats-server user for each role (or
--role only): the gateway, ticketsvc, backends (and ocvrctl's day-to-day
commands) and the admin that runs 'ocvrctl setup'. The subjects are those of
the environment the global flags name (--subject-prefix, the --*-bucket
flags, --stream-name) and, with --jetstream-domain, as a user on a leafnode
reaches the hub's JetStream. With --json, one object per role with its
publish and subscribe lists. deploy/README.md, "NATS security", explains
each grant.`,
	setup: printPermissions,
}

// rolePermissions is one role's line of 'permissions --json'.
type rolePermissions struct {
	Role           string   `json:"role"`
	Publish        []string `json:"publish"`
	Subscribe      []string `json:"subscribe"`
	AllowResponses bool     `json:"allow_responses"`
}

func printPermissions(fs *flag.FlagSet) func(context.Context, *app) error {
	role := fs.String("role", "", "only this `role`: gateway, ticketsvc, backend or admin (default: all)")
	presenceBucket := fs.String("presence-bucket", presence.DefaultBucket, "KV `bucket` of presence: the gateways' --presence-bucket")
	typingBucket := fs.String("typing-bucket", typing.DefaultBucket, "KV `bucket` of the typing throttle: the gateways' --typing-bucket")
	return func(ctx context.Context, a *app) error {
		roles := []provision.Role{provision.RoleGateway, provision.RoleTicketsvc, provision.RoleBackend, provision.RoleAdmin}
		if *role != "" {
			r := provision.Role(*role)
			if !slices.Contains(roles, r) {
				return usageErrorf("--role must be gateway, ticketsvc, backend or admin")
			}
			roles = []provision.Role{r}
		}
		names := provision.Names{
			Prefix: a.subjects.Prefix(), Stream: a.g.streamName,
			Sessions: a.g.sessions, Tickets: a.g.tickets,
			Channels: a.g.directory.Channels, Members: a.g.directory.Members, Friends: a.g.directory.Friends,
			Presence: *presenceBucket, Typing: *typingBucket, Domain: provision.Domain(ctx),
		}
		for _, r := range roles {
			g := provision.Grants(r, names)
			a.emit(rolePermissions{Role: string(r), Publish: g.Publish, Subscribe: g.Subscribe, AllowResponses: g.Responses},
				"# %s\n%s", r, strings.TrimSuffix(g.Config(), "\n"))
		}
		return nil
	}
}
