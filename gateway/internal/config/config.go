// Package config turns the gateway's flags and OCVR_* environment variables
// into a runnable configuration.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ocvr/realtime/gateway/internal/deflate"
	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/stream"
	"github.com/ocvr/realtime/pkg/typing"
)

// Config is everything the gateway binary needs.
type Config struct {
	Listen      string
	AdminListen string
	NATS        bus.Config
	LogLevel    slog.Level
	Gateway     gateway.Config
	// ShutdownTimeout bounds the whole drain after SIGTERM.
	ShutdownTimeout time.Duration
	// HandshakeTimeout bounds the HTTP request of an upgrade (request line
	// and headers) and how long an idle keep-alive connection is kept: a
	// client that trickles its headers (slowloris) is cut off after it.
	HandshakeTimeout time.Duration
	// NoPodDeletionCost turns the deletion-cost annotation off; it is off
	// anyway outside Kubernetes. PodNamespace is the pod's namespace (empty:
	// the service account's).
	NoPodDeletionCost bool
	PodNamespace      string
}

// DefaultHandshakeTimeout is the default of --handshake-timeout.
const DefaultHandshakeTimeout = 10 * time.Second

// MaxHeaderBytes bounds the request line and headers of an upgrade request
// (browsers send their cookies; a ticket is 47 bytes).
const MaxHeaderBytes = 32 << 10

// Parse parses args (without the program name). Each flag falls back to
// the environment variable OCVR_<FLAG_NAME> (upper case, dashes as
// underscores); a flag given on the command line wins.
func Parse(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (Config, error) {
	d := gateway.DefaultConfig()
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c                          Config
		natsURL, origins, logLevel string
	)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8081", "public address serving GET /v1/ws")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:9081", "admin address serving /healthz, /readyz and /metrics")
	fs.StringVar(&natsURL, "nats-url", bus.DefaultURL, "NATS server list, comma-separated")
	fs.StringVar(&c.NATS.CredsFile, "nats-creds", "", "NATS credentials file (JWT + nkey seed)")
	fs.StringVar(&c.NATS.TLSCAFile, "nats-tls-ca", "", "CA bundle to verify the NATS servers")
	fs.StringVar(&c.NATS.TLSCertFile, "nats-tls-cert", "", "client certificate for NATS mutual TLS")
	fs.StringVar(&c.NATS.TLSKeyFile, "nats-tls-key", "", "client key for NATS mutual TLS")
	fs.StringVar(&c.Gateway.PodName, "pod-name", host, "this pod's name (logs, presence leases, load reports to the other gateways, the pod whose deletion-cost annotation is kept)")
	fs.StringVar(&c.Gateway.SubjectPrefix, "subject-prefix", d.SubjectPrefix, "NATS subject prefix of this environment")
	fs.StringVar(&c.Gateway.SessionsBucket, "sessions-bucket", d.SessionsBucket, "KV bucket of sessions")
	fs.StringVar(&c.Gateway.TicketsBucket, "tickets-bucket", d.TicketsBucket, "KV bucket of connect tickets")
	fs.StringVar(&c.Gateway.DirectoryBuckets.Channels, "channels-bucket", directory.ChannelsBucket, "KV bucket of channels (one per environment, like the subject prefix)")
	fs.StringVar(&c.Gateway.DirectoryBuckets.Members, "members-bucket", directory.MembersBucket, "KV bucket of channel memberships")
	fs.StringVar(&c.Gateway.DirectoryBuckets.Friends, "friends-bucket", directory.FriendsBucket, "KV bucket of friendships")
	fs.StringVar(&c.Gateway.TypingBucket, "typing-bucket", typing.DefaultBucket, "KV bucket of the cluster-wide typing throttle")
	fs.StringVar(&origins, "allowed-origins", strings.Join(d.AllowedOrigins, ","), "browser origins allowed to connect, comma-separated patterns (e.g. https://*.ocvr.example); empty: no browser origin; requests without Origin are allowed")
	fs.DurationVar(&c.Gateway.HeartbeatInterval, "heartbeat-interval", d.HeartbeatInterval, "heartbeat interval advertised to clients")
	fs.DurationVar(&c.Gateway.HeartbeatTimeout, "heartbeat-timeout", d.HeartbeatTimeout, "silence after which a connection is closed with 4004")
	fs.Int64Var(&c.Gateway.ReadLimit, "max-frame-bytes", d.ReadLimit, "largest client frame; bigger closes with 1009")
	fs.IntVar(&c.Gateway.MaxSubscriptions, "max-subscriptions", d.MaxSubscriptions, "channel subscriptions per connection")
	fs.IntVar(&c.Gateway.QueueSize, "queue-size", d.QueueSize, "outbound frames queued per connection before it is closed with 4009")
	fs.DurationVar(&c.Gateway.WriteTimeout, "write-timeout", d.WriteTimeout, "deadline of each socket write")
	fs.IntVar(&c.Gateway.SocketSendBuffer, "socket-send-buffer", 0, "kernel send buffer (SO_SNDBUF) of each client socket in bytes, bounding kernel memory per connection (0: OS default)")
	fs.BoolVar(&c.Gateway.Compression, "compression", true, "negotiate permessage-deflate with the clients that offer it (no context takeover: no per-connection compressor; clients that do not offer it get plain frames); each event is compressed once per pod, frames below --compression-min-size go uncompressed; --compression=false: never")
	fs.IntVar(&c.Gateway.CompressionMinSize, "compression-min-size", deflate.DefaultMinSize, "smallest frame in bytes sent compressed to clients that negotiated compression")
	fs.Float64Var(&c.Gateway.FrameRate, "frame-rate", d.FrameRate, "client frames per second per connection (token bucket rate)")
	fs.IntVar(&c.Gateway.FrameBurst, "frame-burst", d.FrameBurst, "client frame burst (token bucket size)")
	fs.IntVar(&c.Gateway.FloodLimit, "flood-limit", d.FloodLimit, "frames refused in one rate-limited episode before closing with 4008")
	fs.DurationVar(&c.Gateway.TypingThrottle, "typing-throttle", d.TypingThrottle, "minimum time between forwarded typing events per user per channel")
	fs.IntVar(&c.Gateway.SoftMaxConns, "soft-max-connections", 0, "connections above which /readyz fails (0: no limit)")
	fs.IntVar(&c.Gateway.SoftMaxReadyAgain, "soft-max-ready-again", 0, "once /readyz failed at --soft-max-connections, it passes again only at or below this many connections, so a full pod does not flap ready/unready (0: 95% of the soft limit)")
	fs.IntVar(&c.Gateway.HardMaxConns, "hard-max-connections", 0, "connections at which new sockets are closed with 1013 (0: no limit)")
	fs.IntVar(&c.Gateway.MaxPreauthPerSource, "max-preauth-per-source", d.MaxPreauthPerSource, "upgrades one source address may have in flight before their tickets are redeemed; over it 429 (0: no limit; behind an ingress the source is the ingress: limit per client there)")
	fs.IntVar(&c.Gateway.MaxRedeemsInFlight, "max-redeems-in-flight", d.MaxRedeemsInFlight, "tickets the pod redeems at once; over it an upgrade is closed at once with 1013 and a retry hint instead of queueing (0: no limit)")
	fs.IntVar(&c.Gateway.MaxConnsPerUser, "max-connections-per-user", d.MaxConnsPerUser, "connections one user may hold on this pod; over it a new socket is closed with 4010 (0: no limit)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", DefaultHandshakeTimeout, "time a client has to send its upgrade request headers; also how long an idle keep-alive connection is kept (slowloris bound)")
	fs.StringVar(&c.Gateway.PresenceBucket, "presence-bucket", "ocvr_presence", "KV bucket of presence state")
	fs.DurationVar(&c.Gateway.PresenceGrace, "presence-grace", 10*time.Second, "time a user stays without connections before friends see them offline")
	fs.DurationVar(&c.Gateway.PresenceLeaseTTL, "presence-lease-ttl", 10*time.Second, "TTL of this pod's presence lease: a dead pod's users are cleaned up after it (plus the grace)")
	fs.DurationVar(&c.Gateway.ReadinessDelay, "readiness-delay", d.ReadinessDelay, "on SIGTERM, time unready before sockets are closed")
	fs.DurationVar(&c.Gateway.DrainWindow, "drain-window", d.DrainWindow, "on SIGTERM, sockets are closed with 1012 spread over this window")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 40*time.Second, "hard bound on the whole shutdown")
	fs.IntVar(&c.Gateway.Writers, "writers", 0, "shared socket writers (0: GOMAXPROCS)")
	fs.BoolVar(&c.Gateway.ReaderGoroutines, "reader-goroutines", false, "park a reader goroutine on every socket instead of waiting for idle sockets on the shared epoll poller (Linux)")
	fs.StringVar(&c.Gateway.StreamName, "stream-name", d.StreamName, "JetStream stream of channel and user events (continuity); one per environment, like the subject prefix")
	fs.DurationVar(&c.Gateway.ContinuityWindow, "continuity-window", d.ContinuityWindow, "how long the stream keeps events (its MaxAge): a client that reconnects within it resumes without loss")
	fs.IntVar(&c.Gateway.StreamReplicas, "stream-replicas", 0, "replicas of the event stream, 1 to 5 (0: 3 where the JetStream cluster holds them, else 1)")
	fs.Int64Var(&c.Gateway.StreamMaxBytes, "stream-max-bytes", 0, "storage bound of the event stream in bytes; when full the oldest events go and resumes needing them answer resumed:false (0: unlimited)")
	fs.StringVar(&c.Gateway.JetStreamDomain, "jetstream-domain", "", "JetStream domain holding the KV buckets and the event stream, e.g. a hub's when this gateway's NATS is a leafnode with its own JetStream (empty: the connected server's)")
	fs.BoolVar(&c.Gateway.NoContinuity, "no-continuity", false, "turn continuity off: no event stream is provisioned, events carry no position, nothing resumes, a full queue closes with 4009")
	fs.DurationVar(&c.Gateway.FleetInterval, "fleet-interval", d.FleetInterval, "how often the pod publishes its connection count to the other gateways over NATS (the fleet view rebalancing uses); a pod silent for 3 intervals is forgotten")
	fs.BoolVar(&c.Gateway.NoRebalance, "no-rebalance", false, "turn active rebalancing off: the pod never closes sockets because it holds more than the fleet's mean")
	fs.Float64Var(&c.Gateway.RebalanceMargin, "rebalance-margin", d.RebalanceMargin, "a pod above the fleet's mean connections by more than this fraction closes the excess with 1012 (clients reconnect elsewhere and resume), down to the mean")
	fs.DurationVar(&c.Gateway.RebalanceWindow, "rebalance-window", d.RebalanceWindow, "the excess is shed spread over this window")
	fs.Float64Var(&c.Gateway.RebalanceMaxRate, "rebalance-max-rate", d.RebalanceMaxRate, "most sockets per second a pod sheds while rebalancing")
	fs.BoolVar(&c.NoPodDeletionCost, "no-pod-deletion-cost", false, "do not keep the pod's controller.kubernetes.io/pod-deletion-cost annotation at its connection count (so that scale-down removes the emptiest pods first); off anyway outside Kubernetes")
	fs.StringVar(&c.PodNamespace, "pod-namespace", "", "this pod's namespace, for the deletion-cost annotation (empty: the service account's namespace)")
	fs.DurationVar(&c.Gateway.DeletionCostInterval, "pod-deletion-cost-interval", d.DeletionCostInterval, "how often the deletion-cost annotation is refreshed (only when the count changed)")
	fs.BoolVar(&c.Gateway.Pprof, "pprof", false, "serve /debug/pprof on the admin listener")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gateway [flags]\n\nThe OCVR WebSocket gateway. Every flag can also be set with the environment\nvariable OCVR_<FLAG> (upper case, dashes as underscores), e.g. OCVR_NATS_URL.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := applyEnv(fs, lookupEnv); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.NATS.URLs = splitList(natsURL)
	c.Gateway.AllowedOrigins = splitList(origins)
	if c.Gateway.AllowedOrigins == nil {
		// Set and empty means no browser origin at all, as for ticketsvc
		// (the library's nil would mean its localhost defaults).
		c.Gateway.AllowedOrigins = []string{}
	}
	if err := c.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return c, fmt.Errorf("--log-level: %w", err)
	}
	if len(c.NATS.URLs) == 0 {
		return c, errors.New("--nats-url: no server given")
	}
	if c.Gateway.HeartbeatTimeout <= c.Gateway.HeartbeatInterval {
		return c, errors.New("--heartbeat-timeout must exceed --heartbeat-interval")
	}
	if c.ShutdownTimeout <= 0 {
		return c, errors.New("--shutdown-timeout must be positive")
	}
	if c.HandshakeTimeout <= 0 {
		return c, errors.New("--handshake-timeout must be positive")
	}
	switch {
	case c.Gateway.MaxConnsPerUser < 0:
		return c, errors.New("--max-connections-per-user must not be negative")
	case c.Gateway.MaxConnsPerUser == 0:
		c.Gateway.MaxConnsPerUser = -1 // the library's "no limit"
	}
	switch {
	case c.Gateway.MaxRedeemsInFlight < 0:
		return c, errors.New("--max-redeems-in-flight must not be negative")
	case c.Gateway.MaxRedeemsInFlight == 0:
		c.Gateway.MaxRedeemsInFlight = -1 // the library's "no limit"
	}
	switch {
	case c.Gateway.MaxPreauthPerSource < 0:
		return c, errors.New("--max-preauth-per-source must not be negative")
	case c.Gateway.MaxPreauthPerSource == 0:
		c.Gateway.MaxPreauthPerSource = -1 // the library's "no limit"
	}
	if c.Gateway.SoftMaxReadyAgain < 0 || (c.Gateway.SoftMaxReadyAgain > 0 && c.Gateway.SoftMaxReadyAgain >= c.Gateway.SoftMaxConns) {
		return c, errors.New("--soft-max-ready-again must be below --soft-max-connections (0: 95% of it)")
	}
	if err := checkRebalance(c.Gateway); err != nil {
		return c, err
	}
	// Flags take the library's zero-means-default convention; everything
	// else out of range (negative limits, a bad prefix or origin) is refused
	// here rather than at startup.
	if err := c.Gateway.Validate(); err != nil {
		return c, err
	}
	if err := checkStream(c.Gateway); err != nil {
		return c, err
	}
	return c, nil
}

// checkRebalance refuses rebalancing and deletion-cost settings out of
// range (zero would silently mean the default).
func checkRebalance(g gateway.Config) error {
	switch {
	case g.FleetInterval <= 0:
		return errors.New("--fleet-interval must be positive")
	case !(g.RebalanceMargin > 0 && g.RebalanceMargin < 10):
		return errors.New("--rebalance-margin must be a fraction above 0 (e.g. 0.1 for 10%)")
	case g.RebalanceWindow <= 0:
		return errors.New("--rebalance-window must be positive")
	case !(g.RebalanceMaxRate > 0):
		return errors.New("--rebalance-max-rate must be positive")
	case g.DeletionCostInterval <= 0:
		return errors.New("--pod-deletion-cost-interval must be positive")
	}
	return nil
}

// maxStreamReplicas is JetStream's largest replica count.
const maxStreamReplicas = 5

// checkStream refuses continuity settings the stream would refuse at start
// (checked even with --no-continuity, so turning it back on cannot fail).
func checkStream(g gateway.Config) error {
	switch {
	case g.ContinuityWindow < 0:
		return errors.New("--continuity-window must not be negative")
	case g.StreamReplicas < 0 || g.StreamReplicas > maxStreamReplicas:
		return fmt.Errorf("--stream-replicas must be 0 (auto) to %d", maxStreamReplicas)
	case g.StreamMaxBytes < 0:
		return errors.New("--stream-max-bytes must not be negative (0: unlimited)")
	}
	if _, err := (stream.Config{Name: g.StreamName, Prefix: g.SubjectPrefix, Window: g.ContinuityWindow}).StreamConfig(); err != nil {
		return fmt.Errorf("--stream-name: %w", err)
	}
	return nil
}

// applyEnv sets every flag that has an OCVR_* variable, before the command
// line is parsed so that flags win.
// An empty variable counts as unset, except for --allowed-origins, where
// set-and-empty means "no browser origin" (a Helm value of [] renders so).
func applyEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "OCVR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookupEnv(name); ok && (v != "" || f.Name == "allowed-origins") && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
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
