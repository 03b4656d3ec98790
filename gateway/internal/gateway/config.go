package gateway

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/ocvr/realtime/gateway/internal/deflate"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/stream"
	"github.com/ocvr/realtime/pkg/ticket"
)

// Config is the gateway's configuration. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	PodName        string
	PresenceBucket string
	// PresenceGrace is how long a user must stay without connections
	// before friends see them offline (default 10s).
	PresenceGrace time.Duration
	// PresenceLeaseTTL is the pod lease TTL: a pod that dies is cleaned up
	// this long after its last refresh (default 10s).
	PresenceLeaseTTL time.Duration
	SubjectPrefix    string
	SessionsBucket   string
	TypingBucket     string // the cluster-wide typing throttle's (default typing.DefaultBucket)
	// DirectoryBuckets name the channels, members and friends buckets
	// (defaults: directory's), so that environments sharing a NATS account
	// keep their authorization data apart, as they do their subjects.
	DirectoryBuckets directory.Buckets
	TicketsBucket    string
	// AllowedOrigins are origin patterns (pkg/origin's grammar, as
	// ticketsvc's, e.g. "https://*.ocvr.example"). Requests
	// without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string

	HeartbeatInterval time.Duration // advertised in ready (default 30s)
	HeartbeatTimeout  time.Duration // silence before 4004 (default 75s)
	SweepInterval     time.Duration // how often silence is checked (default 5s)
	ReadLimit         int64         // max client frame bytes (default 4096)
	MaxSubscriptions  int           // per connection (default 500)
	QueueSize         int           // outbound frames per connection (default 256)
	// WriteTimeout bounds each batched write (default 30s): a socket that
	// takes nothing for that long is dead. A slow reader holds no writer
	// (writer.go), and with continuity it catches up once it reads again.
	WriteTimeout   time.Duration
	FrameRate      float64       // client frames per second per connection (default 20)
	FrameBurst     int           // token bucket size (default 40)
	FloodLimit     int           // frames refused in one rate-limited episode before 4008 (default 100)
	TypingThrottle time.Duration // per user per channel (default 3s)
	SoftMaxConns   int           // over it /readyz fails (0: none)
	// SoftMaxReadyAgain is the soft cap's hysteresis: once /readyz failed at
	// SoftMaxConns it passes again only at or below this many connections
	// (0: 95% of SoftMaxConns; at least one below it).
	SoftMaxReadyAgain int
	HardMaxConns      int // at it new sockets are closed with 1013 (0: none)
	// MaxConnsPerUser caps one user's connections on this pod (default
	// DefaultMaxConnsPerUser; negative: no limit). Over it the new socket
	// is closed with 4010, the existing ones are kept.
	MaxConnsPerUser int
	// MaxPreauthPerSource bounds the upgrades one source address may have
	// in flight before their tickets are redeemed (default
	// DefaultMaxPreauthPerSource; negative: no limit). Over it the upgrade
	// is answered 429. Behind an ingress the source is the ingress.
	MaxPreauthPerSource int
	// MaxRedeemsInFlight bounds the tickets the pod redeems at once (KV work
	// in flight; default DefaultMaxRedeemsInFlight; negative: no limit).
	// Over it an upgrade is refused at once with 1013 and a retry hint
	// instead of queueing behind the others: in a reconnect storm the
	// admitted clients keep a bounded latency and the rest come back.
	MaxRedeemsInFlight int
	ReadinessDelay     time.Duration // drain: unready before sockets are closed (default 5s)
	DrainWindow        time.Duration // drain: closes spread over this (default 20s)
	DispatchShards     int           // bus dispatcher goroutines (default 4)
	// DispatchBuffer is each dispatcher's queue of bus messages (default
	// 65536); when it is full NATS drops messages for the pod (counted as
	// bus slow-consumer events).
	DispatchBuffer int
	// Pprof serves /debug/pprof on the admin listener (profiling under load).
	Pprof bool
	// ReaderGoroutines parks a reader goroutine on every socket instead of
	// waiting for idle sockets on the shared epoll poller (the default on
	// Linux; elsewhere reader goroutines are always used).
	ReaderGoroutines bool
	// Writers is the number of shared socket writers (default GOMAXPROCS):
	// each writes its connections' queued frames with non-blocking writes
	// (writer.go).
	Writers int
	// SocketSendBuffer is the kernel send buffer (SO_SNDBUF) of each client
	// socket in bytes; 0 keeps the OS default (autotuned, up to several MB
	// per socket). A small value bounds kernel memory per connection and
	// makes a client that stops reading overflow its queue (4009) sooner.
	SocketSendBuffer int
	// Compression negotiates permessage-deflate with the clients that
	// offer it (RFC 7692, no context takeover both ways; the binary's
	// --compression is on by default, the zero Config off): each event is
	// compressed once per pod and the same bytes go to every socket that
	// negotiated it (compression.go). Frames shorter than
	// CompressionMinSize (default 128 bytes) go uncompressed.
	Compression        bool
	CompressionMinSize int

	// Continuity (DESIGN.md §2a): the event stream's name (default
	// stream.DefaultName), how long it keeps events — the window a client
	// can resume within (default 2m) —, its replicas (0: 3 where the
	// JetStream cluster holds them, else 1) and its storage bound (0:
	// none). NoContinuity turns it off: no stream is provisioned, events
	// carry no position, nothing resumes, and a full queue is 4009 again.
	StreamName       string
	ContinuityWindow time.Duration
	StreamReplicas   int
	StreamMaxBytes   int64
	NoContinuity     bool

	// JetStreamDomain is the JetStream domain holding the buckets and the
	// event stream ("": the connected server's): gateways on a leafnode
	// use the hub's.
	JetStreamDomain string

	// Active rebalancing (rebalance.go): every FleetInterval (default 2s)
	// the pod publishes its connection count; a pod above the fleet's mean
	// by more than RebalanceMargin (a fraction, default 0.10) closes the
	// excess with 1012 spread over RebalanceWindow (default 1m), at most
	// RebalanceMaxRate sockets per second (default 50). NoRebalance turns
	// the shedding off (the pod still reports its load).
	FleetInterval    time.Duration
	NoRebalance      bool
	RebalanceMargin  float64
	RebalanceWindow  time.Duration
	RebalanceMaxRate float64

	// DeletionCost, when set, is told the pod's connection count every
	// DeletionCostInterval (default 30s), so that a scale-down removes the
	// emptiest pods first (deletioncost.go). Nil: off (outside Kubernetes).
	DeletionCost         DeletionCoster
	DeletionCostInterval time.Duration

	Now    func() time.Time // injectable clock
	Logger *slog.Logger
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		PodName:              "gateway",
		SubjectPrefix:        bus.DefaultPrefix,
		SessionsBucket:       session.DefaultBucket,
		TicketsBucket:        ticket.DefaultBucket,
		AllowedOrigins:       []string{"http://localhost", "http://localhost:*", "http://127.0.0.1", "http://127.0.0.1:*"},
		HeartbeatInterval:    30 * time.Second,
		HeartbeatTimeout:     75 * time.Second,
		SweepInterval:        5 * time.Second,
		ReadLimit:            4096,
		MaxSubscriptions:     500,
		QueueSize:            256,
		WriteTimeout:         30 * time.Second,
		FrameRate:            20,
		FrameBurst:           40,
		FloodLimit:           100,
		TypingThrottle:       3 * time.Second,
		MaxConnsPerUser:      DefaultMaxConnsPerUser,
		ReadinessDelay:       5 * time.Second,
		DrainWindow:          20 * time.Second,
		DispatchShards:       4,
		DispatchBuffer:       1 << 16,
		MaxPreauthPerSource:  DefaultMaxPreauthPerSource,
		MaxRedeemsInFlight:   DefaultMaxRedeemsInFlight,
		StreamName:           stream.DefaultName,
		ContinuityWindow:     stream.DefaultWindow,
		FleetInterval:        DefaultFleetInterval,
		RebalanceMargin:      DefaultRebalanceMargin,
		RebalanceWindow:      DefaultRebalanceWindow,
		RebalanceMaxRate:     DefaultRebalanceMaxRate,
		DeletionCostInterval: DefaultDeletionCostInterval,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.PodName == "" {
		c.PodName = d.PodName
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = d.SubjectPrefix
	}
	if c.SessionsBucket == "" {
		c.SessionsBucket = d.SessionsBucket
	}
	if c.TicketsBucket == "" {
		c.TicketsBucket = d.TicketsBucket
	}
	if c.AllowedOrigins == nil {
		c.AllowedOrigins = d.AllowedOrigins
	}
	setDur(&c.PresenceGrace, 10*time.Second)
	setDur(&c.PresenceLeaseTTL, 10*time.Second)
	setDur(&c.HeartbeatInterval, d.HeartbeatInterval)
	setDur(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDur(&c.SweepInterval, d.SweepInterval)
	setDur(&c.WriteTimeout, d.WriteTimeout)
	setDur(&c.TypingThrottle, d.TypingThrottle)
	setDur(&c.ContinuityWindow, d.ContinuityWindow)
	setDur(&c.FleetInterval, d.FleetInterval)
	setDur(&c.RebalanceWindow, d.RebalanceWindow)
	setDur(&c.DeletionCostInterval, d.DeletionCostInterval)
	if c.RebalanceMargin == 0 {
		c.RebalanceMargin = d.RebalanceMargin
	}
	if c.RebalanceMaxRate == 0 {
		c.RebalanceMaxRate = d.RebalanceMaxRate
	}
	if c.StreamName == "" {
		c.StreamName = d.StreamName
	}
	if c.CompressionMinSize == 0 {
		c.CompressionMinSize = deflate.DefaultMinSize
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = d.ReadLimit
	}
	if c.FrameRate == 0 {
		c.FrameRate = d.FrameRate
	}
	setInt(&c.MaxSubscriptions, d.MaxSubscriptions)
	setInt(&c.QueueSize, d.QueueSize)
	setInt(&c.FrameBurst, d.FrameBurst)
	setInt(&c.FloodLimit, d.FloodLimit)
	setInt(&c.DispatchShards, d.DispatchShards)
	setInt(&c.DispatchBuffer, d.DispatchBuffer)
	setInt(&c.MaxPreauthPerSource, d.MaxPreauthPerSource)
	setInt(&c.MaxRedeemsInFlight, d.MaxRedeemsInFlight)
	if c.Writers == 0 {
		c.Writers = runtime.GOMAXPROCS(0)
	}
	setInt(&c.MaxConnsPerUser, d.MaxConnsPerUser)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field of c, after zero fields have
// taken their defaults: negative sizes, rates or durations (a negative read
// limit would disable the frame size check altogether), a subject prefix
// that is not a valid token list, or a malformed origin pattern.
func (c Config) Validate() error {
	c.fill()
	if _, err := bus.NewSubjects(c.SubjectPrefix); err != nil {
		return err
	}
	if err := provision.CheckDomain(c.JetStreamDomain); err != nil {
		return err
	}
	if _, err := newOriginMatcher(c.AllowedOrigins); err != nil {
		return err
	}
	positive := []struct {
		name string
		ok   bool
	}{
		{"heartbeat interval", c.HeartbeatInterval > 0},
		{"heartbeat timeout", c.HeartbeatTimeout > 0},
		{"sweep interval", c.SweepInterval > 0},
		{"read limit", c.ReadLimit > 0},
		{"max subscriptions", c.MaxSubscriptions > 0},
		{"queue size", c.QueueSize > 0},
		{"write timeout", c.WriteTimeout > 0},
		{"frame rate", c.FrameRate > 0},
		{"frame burst", c.FrameBurst > 0},
		{"flood limit", c.FloodLimit > 0},
		{"typing throttle", c.TypingThrottle > 0},
		{"writers", c.Writers > 0},
		{"dispatch shards", c.DispatchShards > 0},
		{"dispatch buffer", c.DispatchBuffer > 0},
		{"soft max connections", c.SoftMaxConns >= 0},
		{"soft max ready-again threshold", c.SoftMaxReadyAgain >= 0},
		{"hard max connections", c.HardMaxConns >= 0},
		{"readiness delay", c.ReadinessDelay >= 0},
		{"drain window", c.DrainWindow >= 0},
		{"socket send buffer", c.SocketSendBuffer >= 0},
		{"compression minimum size", c.CompressionMinSize >= 0},
		{"fleet interval", c.FleetInterval > 0},
		{"rebalance margin", c.RebalanceMargin > 0 && c.RebalanceMargin < 10},
		{"rebalance window", c.RebalanceWindow > 0},
		{"rebalance max rate", c.RebalanceMaxRate > 0},
		{"deletion cost interval", c.DeletionCostInterval > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("invalid gateway config: %s out of range", p.name)
		}
	}
	return nil
}
