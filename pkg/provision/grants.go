package provision

import (
	"slices"
	"strings"
)

// Names are the names of one environment's NATS assets: the subject
// prefix, the event stream and the KV buckets. Empty fields take the
// defaults of the services.
type Names struct {
	Prefix   string // "ocvr"
	Stream   string // "OCVR_EVENTS"
	Sessions string // "ocvr_sessions"
	Tickets  string // "ocvr_tickets"
	Channels string // "ocvr_channels"
	Members  string // "ocvr_members"
	Friends  string // "ocvr_friends"
	Presence string // "ocvr_presence"
	Typing   string // "ocvr_typing"
	// Domain is the JetStream domain of the assets as the user reaches
	// them ("": its server's own): on a leafnode, the API and KV writes
	// are $JS.<domain>.API.… subjects.
	Domain string
}

func (n Names) withDefaults() Names {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&n.Prefix, "ocvr")
	def(&n.Stream, "OCVR_EVENTS")
	def(&n.Sessions, "ocvr_sessions")
	def(&n.Tickets, "ocvr_tickets")
	def(&n.Channels, "ocvr_channels")
	def(&n.Members, "ocvr_members")
	def(&n.Friends, "ocvr_friends")
	def(&n.Presence, "ocvr_presence")
	def(&n.Typing, "ocvr_typing")
	return n
}

// Role is a kind of NATS user of an environment.
type Role string

// The roles, one NATS user each (deploy/README.md, "NATS security").
const (
	RoleGateway   Role = "gateway"   // the gateway pods
	RoleTicketsvc Role = "ticketsvc" // the ticket service
	RoleBackend   Role = "backend"   // platform backends and ocvrctl's day-to-day commands
	RoleAdmin     Role = "admin"     // `ocvrctl setup` and `ocvrctl stream ensure`: creates and updates the assets
)

// Grant is what a role may publish and subscribe to: the allow lists of a
// NATS user (everything else denied).
type Grant struct {
	Publish   []string
	Subscribe []string
	// Responses allows answering the requests the user receives (NATS
	// allow_responses: one reply to each request's reply subject), with
	// no publish permission on the requesters' inboxes.
	Responses bool
}

// Inbox is the reply subject space every role subscribes to (nats.go's
// default inbox prefix): JetStream API answers, KV and stream
// acknowledgements.
const Inbox = "_INBOX.>"

// Grants returns the least privileges of role in the environment n: what
// deploy/README.md documents and the security runtime test
// (pkg/clustertest, TestNATSSecurity) runs every service with.
func Grants(role Role, n Names) Grant {
	g := grants(role, n.withDefaults())
	if n.Domain != "" {
		g.Publish = inDomain(g.Publish, n.Domain)
	}
	return g
}

// inDomain rewrites the JetStream API and KV write subjects of a grant
// for a user reaching the assets' domain across a leafnode.
func inDomain(subjects []string, domain string) []string {
	out := make([]string, len(subjects))
	for i, s := range subjects {
		switch {
		case strings.HasPrefix(s, "$JS.API."):
			s = APIPrefix(domain) + strings.TrimPrefix(s, "$JS.API.")
		case strings.HasPrefix(s, "$KV."):
			s = KVWritePrefix(domain) + s
		}
		out[i] = s
	}
	return out
}

func grants(role Role, n Names) Grant {
	p := n.Prefix
	// kvRead: bind to the bucket (stream info) and read keys (direct gets
	// answered by any replica).
	kvRead := func(buckets ...string) []string {
		var out []string
		for _, b := range buckets {
			out = append(out, "$JS.API.STREAM.INFO.KV_"+b, "$JS.API.DIRECT.GET.KV_"+b+".>")
		}
		return out
	}
	// leaderRead: authorization reads from the stream leader.
	leaderRead := func(buckets ...string) []string {
		var out []string
		for _, b := range buckets {
			out = append(out, "$JS.API.STREAM.MSG.GET.KV_"+b)
		}
		return out
	}
	// kvWrite: put, create, update, delete and purge keys.
	kvWrite := func(buckets ...string) []string {
		var out []string
		for _, b := range buckets {
			out = append(out, "$KV."+b+".>")
		}
		return out
	}
	// kvWatch: watches and key listings are ordered consumers, with flow
	// control answered by the client.
	kvWatch := func(buckets ...string) []string {
		var out []string
		for _, b := range buckets {
			out = append(out, "$JS.API.CONSUMER.CREATE.KV_"+b+".>", "$JS.API.CONSUMER.DELETE.KV_"+b+".>", "$JS.FC.KV_"+b+".>")
		}
		return out
	}
	cat := func(lists ...[]string) []string { return slices.Concat(lists...) }

	switch role {
	case RoleGateway:
		return Grant{
			Publish: cat(
				kvRead(n.Tickets, n.Sessions, n.Channels, n.Members, n.Friends, n.Presence, n.Typing),
				leaderRead(n.Sessions, n.Channels, n.Members, n.Presence, n.Typing),
				kvWrite(n.Tickets, n.Presence, n.Typing), // redeem (delete), presence entries, typing windows
				// Friends: a user without a friend set falls back to listing
				// the legacy per-friend keys (directory), an ordered consumer.
				kvWatch(n.Sessions, n.Channels, n.Members, n.Friends, n.Presence),
				[]string{
					"$JS.API.STREAM.PURGE.KV_" + n.Presence, // a pod's entry removed without a tombstone
					"$KV." + n.Friends + ".set.*",           // a friend set written back once from the legacy keys (directory.Friends)
					"$JS.API.STREAM.INFO." + n.Stream,
					"$JS.API.DIRECT.GET." + n.Stream, // resume, catch-up, gap fill
					p + ".channel.*",                 // typing
					p + ".user.*",                    // presence_update
					p + ".advisory.rejected",
					p + ".fleet.load", // load reports for rebalancing
				}),
			Subscribe: []string{p + ".channel.*", p + ".user.*", p + ".broadcast", p + ".fleet.load", Inbox},
		}
	case RoleTicketsvc:
		return Grant{
			Publish: cat(
				kvRead(n.Sessions, n.Tickets),
				leaderRead(n.Sessions),
				kvWrite(n.Tickets, n.Sessions), // tickets; the session service's sessions
				kvWatch(n.Sessions),            // revoke_user lists a user's sessions
				[]string{p + ".user.*"}),       // session_revoked
			// The session service (<prefix>.svc.sessions.*, a NATS micro
			// service: $SRV.PING/INFO/STATS answer discovery).
			Subscribe: []string{p + ".svc.sessions.*", "$SRV.>", Inbox},
			Responses: true,
		}
	case RoleBackend:
		return Grant{
			Publish: cat(
				kvRead(n.Sessions, n.Tickets, n.Channels, n.Members, n.Friends, n.Presence),
				leaderRead(n.Sessions, n.Channels, n.Members, n.Presence),
				kvWrite(n.Sessions, n.Tickets, n.Channels, n.Members, n.Friends, n.Presence),
				kvWatch(n.Sessions, n.Channels, n.Members, n.Friends),
				[]string{
					p + ".in.channel.*", p + ".in.user.*", // events through the stream
					p + ".channel.*", p + ".user.*", p + ".broadcast", // core events
					p + ".svc.sessions.*", // requests to ticketsvc's session service
				}),
			Subscribe: []string{p + ".advisory.rejected", Inbox},
		}
	case RoleAdmin:
		return Grant{
			Publish: []string{"$JS.API.INFO", "$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*", "$JS.API.STREAM.INFO.*",
				"$JS.API.STREAM.MSG.GET.*"},
			Subscribe: []string{Inbox},
		}
	}
	return Grant{}
}

// Config is g as the permissions block of a user in a nats-server
// configuration file (deploy/README.md shows each role's).
func (g Grant) Config() string {
	var b strings.Builder
	list := func(name string, subjects []string) {
		b.WriteString("  " + name + " { allow: [\n")
		for _, s := range subjects {
			b.WriteString("    \"" + s + "\"\n")
		}
		b.WriteString("  ] }\n")
	}
	b.WriteString("permissions {\n")
	list("publish", g.Publish)
	list("subscribe", g.Subscribe)
	if g.Responses {
		b.WriteString("  allow_responses: true\n")
	}
	b.WriteString("}\n")
	return b.String()
}
