// Package gateway is the OCVR WebSocket gateway: it accepts client sockets,
// speaks the client protocol (DESIGN.md §2) and fans bus events (§3) out to
// the local connections that should get them.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocvr/realtime/gateway/internal/batchconn"
	"github.com/ocvr/realtime/gateway/internal/poller"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/session"
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
	TicketsBucket    string
	// AllowedOrigins are origin patterns (path.Match on
	// "scheme://host[:port]", e.g. "https://*.ocvr.example"). Requests
	// without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string

	HeartbeatInterval time.Duration // advertised in ready (default 30s)
	HeartbeatTimeout  time.Duration // silence before 4004 (default 75s)
	SweepInterval     time.Duration // how often silence is checked (default 5s)
	ReadLimit         int64         // max client frame bytes (default 4096)
	MaxSubscriptions  int           // per connection (default 500)
	QueueSize         int           // outbound frames per connection (default 256)
	WriteTimeout      time.Duration // per batched write (default 10s)
	FrameRate         float64       // client frames per second per connection (default 20)
	FrameBurst        int           // token bucket size (default 40)
	FloodLimit        int           // frames refused in one rate-limited episode before 4008 (default 100)
	TypingThrottle    time.Duration // per user per channel (default 3s)
	SoftMaxConns      int           // over it /readyz fails (0: none)
	HardMaxConns      int           // at it new sockets are closed with 1013 (0: none)
	// MaxConnsPerUser caps one user's connections on this pod (default
	// DefaultMaxConnsPerUser; negative: no limit). Over it the new socket
	// is closed with 4010, the existing ones are kept.
	MaxConnsPerUser int
	ReadinessDelay  time.Duration // drain: unready before sockets are closed (default 5s)
	DrainWindow     time.Duration // drain: closes spread over this (default 20s)
	DispatchShards  int           // bus dispatcher goroutines (default 4)
	// Pprof serves /debug/pprof on the admin listener (profiling under load).
	Pprof bool
	// ReaderGoroutines parks a reader goroutine on every socket instead of
	// waiting for idle sockets on the shared epoll poller (the default on
	// Linux; elsewhere reader goroutines are always used).
	ReaderGoroutines bool
	// Writers is the number of shared socket writers (default GOMAXPROCS):
	// each writes its connections' queued frames with non-blocking writes
	// (writer.go). Negative: a goroutine per connection with frames to send,
	// writing with blocking writes (the simpler design, kept for comparison).
	Writers int
	// SocketSendBuffer is the kernel send buffer (SO_SNDBUF) of each client
	// socket in bytes; 0 keeps the OS default (autotuned, up to several MB
	// per socket). A small value bounds kernel memory per connection and
	// makes a client that stops reading overflow its queue (4009) sooner.
	SocketSendBuffer int

	Now    func() time.Time // injectable clock
	Logger *slog.Logger
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		PodName:           "gateway",
		SubjectPrefix:     bus.DefaultPrefix,
		SessionsBucket:    session.DefaultBucket,
		TicketsBucket:     ticket.DefaultBucket,
		AllowedOrigins:    []string{"http://localhost", "http://localhost:*", "http://127.0.0.1", "http://127.0.0.1:*"},
		HeartbeatInterval: 30 * time.Second,
		HeartbeatTimeout:  75 * time.Second,
		SweepInterval:     5 * time.Second,
		ReadLimit:         4096,
		MaxSubscriptions:  500,
		QueueSize:         256,
		WriteTimeout:      10 * time.Second,
		FrameRate:         20,
		FrameBurst:        40,
		FloodLimit:        100,
		TypingThrottle:    3 * time.Second,
		MaxConnsPerUser:   DefaultMaxConnsPerUser,
		ReadinessDelay:    5 * time.Second,
		DrainWindow:       20 * time.Second,
		DispatchShards:    4,
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
		{"dispatch shards", c.DispatchShards > 0},
		{"soft max connections", c.SoftMaxConns >= 0},
		{"hard max connections", c.HardMaxConns >= 0},
		{"readiness delay", c.ReadinessDelay >= 0},
		{"drain window", c.DrainWindow >= 0},
		{"socket send buffer", c.SocketSendBuffer >= 0},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("invalid gateway config: %s out of range", p.name)
		}
	}
	return nil
}

// stores are the KV-backed stores, opened once NATS is reachable.
type stores struct {
	tickets  *ticket.Store
	sessions *session.Store
	dir      *directory.Store
	presence *presence.Tracker
}

// Gateway serves client sockets on one pod.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	nc       *nats.Conn
	subjects bus.Subjects
	pub      *bus.Publisher
	hub      *hub
	metrics  *metrics
	// rejections reports refused bus payloads (advisories).
	rejections *rejections
	pool       *batchconn.Pool
	writers    *writers // nil: drain goroutines write
	origins    *originMatcher
	poller     *poller.Poller // nil: a reader goroutine per socket
	perUser    *userConns     // per-user connection counts (MaxConnsPerUser)

	stores atomic.Pointer[stores]

	mu       sync.Mutex
	conns    map[*conn]struct{}
	nconn    atomic.Int64
	admitted atomic.Int64 // upgrades past admission (redeeming or open), for HardMaxConns

	typingMu   sync.Mutex
	typingLast map[typingKey]time.Time

	draining  atomic.Bool
	kvDown    atomic.Bool                   // the last KV probe failed
	watchers  atomic.Int32                  // directory watchers established at least once
	reconnect atomic.Pointer[chan struct{}] // closed and replaced on every NATS reconnect

	wg sync.WaitGroup // background goroutines
}

type typingKey struct {
	user    int64
	channel string
}

// New builds a gateway on an established NATS connection. Call Run to
// start its background work and Handler to serve sockets.
func New(cfg Config, nc *nats.Conn) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	subjects, err := bus.NewSubjects(cfg.SubjectPrefix)
	if err != nil {
		return nil, err
	}
	origins, err := newOriginMatcher(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:        cfg,
		log:        cfg.Logger.With("pod", cfg.PodName),
		nc:         nc,
		subjects:   subjects,
		pub:        bus.NewPublisher(nc, subjects),
		metrics:    newMetrics(),
		pool:       batchconn.NewPool(),
		origins:    origins,
		perUser:    newUserConns(),
		conns:      map[*conn]struct{}{},
		typingLast: map[typingKey]time.Time{},
	}
	g.hub = newHub(g, subjects, cfg.DispatchShards, 1<<16)
	g.rejections = newRejections(nc.Publish, subjects, cfg.PodName, g.log, g.now, g.metrics)
	if cfg.Writers > 0 {
		g.writers = newWriters(g, cfg.Writers)
	}
	if !cfg.ReaderGoroutines {
		if p, err := poller.New(); err == nil {
			g.poller = p
		}
	}
	g.metrics.setLimits(cfg.SoftMaxConns, cfg.HardMaxConns)
	g.metrics.connects.WithLabelValues(connectUserLimit)
	g.metrics.connects.WithLabelValues(redeemAborted)
	g.metrics.redeems.WithLabelValues(redeemAborted)
	ch := make(chan struct{})
	g.reconnect.Store(&ch)
	g.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: ns + "_nats_connected", Help: "1 while the NATS connection is up.",
	}, func() float64 {
		if nc.IsConnected() {
			return 1
		}
		return 0
	}))
	return g, nil
}

// Registry is the Prometheus registry holding the gateway's metrics.
func (g *Gateway) Registry() *prometheus.Registry { return g.metrics.reg }

// NATSReconnected must be called after every NATS reconnect (wire it to
// bus.Config.OnReconnect): KV watchers are re-established, since they go
// blind after a server restart.
func (g *Gateway) NATSReconnected() {
	g.metrics.natsReconnects.Inc()
	ch := make(chan struct{})
	old := g.reconnect.Swap(&ch)
	close(*old)
	if st := g.stores.Load(); st != nil {
		st.presence.NATSReconnected()
	}
}

// NATSAsyncError must be wired to bus.Config.OnAsyncError: it counts the
// pod falling behind the bus.
func (g *Gateway) NATSAsyncError(_ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		g.metrics.busDropped.Inc()
	}
}

func (g *Gateway) now() time.Time { return g.cfg.Now() }

// Connections is the number of open client sockets.
func (g *Gateway) Connections() int { return int(g.nconn.Load()) }

// Run opens the stores (retrying until NATS answers), starts the bus
// dispatchers, the directory watchers and the silence sweeper, and blocks
// until ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	g.hub.run(ctx, &g.wg)
	if g.poller != nil {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.poller.Run(ctx); err != nil {
				g.log.Error("poller stopped", "err", err)
			}
		}()
	}
	for g.stores.Load() == nil {
		st, err := g.openStores(ctx)
		if err == nil {
			g.stores.Store(st)
			break
		}
		g.log.Warn("stores not reachable yet", "err", err)
		select {
		case <-ctx.Done():
			g.wg.Wait()
			return nil
		case <-time.After(time.Second):
		}
	}
	st := g.stores.Load()
	g.wg.Add(3)
	watching := func() { g.watchers.Add(1) }
	go func() { defer g.wg.Done(); g.watch(ctx, st.dir.MembersKV(), g.onMemberDeleted, watching) }()
	go func() { defer g.wg.Done(); g.watch(ctx, st.dir.ChannelsKV(), g.onChannelDeleted, watching) }()
	go func() { defer g.wg.Done(); g.sweepLoop(ctx) }()
	g.wg.Add(1)
	go func() { defer g.wg.Done(); g.probeKV(ctx, st) }()
	g.wg.Add(1)
	go func() { defer g.wg.Done(); _ = st.presence.Run(ctx) }()
	<-ctx.Done()
	g.wg.Wait()
	return nil
}

func (g *Gateway) openStores(ctx context.Context) (*stores, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t, err := ticket.Open(ctx, g.nc, g.cfg.TicketsBucket)
	if err != nil {
		return nil, err
	}
	s, err := session.Open(ctx, g.nc, g.cfg.SessionsBucket, g.pub)
	if err != nil {
		return nil, err
	}
	d, err := directory.Open(ctx, g.nc)
	if err != nil {
		return nil, err
	}
	p, err := presence.Open(ctx, g.nc, g.cfg.PresenceBucket, d, g.pub)
	if err != nil {
		return nil, err
	}
	tr := p.NewTracker(presence.TrackerConfig{
		Pod:      g.cfg.PodName,
		Grace:    g.cfg.PresenceGrace,
		LeaseTTL: g.cfg.PresenceLeaseTTL,
		Logger:   g.log,
		OnTransition: func(state string) {
			g.metrics.presence.WithLabelValues(state).Inc()
		},
	})
	return &stores{tickets: t, sessions: s, dir: d, presence: tr}, nil
}

// probeKV checks every 2 s that JetStream answers (NATS can be up while
// JetStream is not); /readyz reports the last result.
func (g *Gateway) probeKV(ctx context.Context, st *stores) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := st.dir.ChannelsKV().Status(pctx)
			cancel()
			g.kvDown.Store(err != nil && ctx.Err() == nil)
		}
	}
}

// Ready reports whether the pod should receive new connections, and why not.
func (g *Gateway) Ready() (bool, string) {
	switch {
	case g.draining.Load():
		return false, "draining"
	case !g.nc.IsConnected():
		return false, "nats not connected"
	case g.stores.Load() == nil:
		return false, "kv stores not open"
	case g.kvDown.Load():
		return false, "kv not reachable"
	case g.watchers.Load() < 2:
		// Until the directory watch is live, a membership removed now would
		// not end the subscriptions it authorized.
		return false, "directory watch not started"
	case g.cfg.SoftMaxConns > 0 && g.Connections() >= g.cfg.SoftMaxConns:
		return false, "at soft connection limit"
	}
	return true, ""
}

// AdminHandler serves /healthz, /readyz and /metrics.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if ok, why := g.Ready(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"unready","reason":%q}`, why)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	mux.Handle("GET /metrics", promhttpHandler(g.metrics.reg))
	if g.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func (g *Gateway) register(c *conn) {
	g.mu.Lock()
	g.conns[c] = struct{}{}
	g.mu.Unlock()
	g.nconn.Add(1)
	g.metrics.connections.Inc()
	g.stores.Load().presence.Connected(c.userID)
}

func (g *Gateway) unregister(c *conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	g.nconn.Add(-1)
	g.metrics.connections.Dec()
	g.stores.Load().presence.Disconnected(c.userID)
}

func (g *Gateway) snapshot() []*conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		out = append(out, c)
	}
	return out
}

// sweepLoop closes silent connections (4004) and forgets stale typing
// throttle entries.
func (g *Gateway) sweepLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.sweep()
		}
	}
}

func (g *Gateway) sweep() {
	now := g.now()
	cutoff := now.Add(-g.cfg.HeartbeatTimeout).UnixNano()
	for _, c := range g.snapshot() {
		if c.lastSeen.Load() < cutoff {
			c.requestClose(4004, "heartbeat timeout")
		}
	}
	g.typingMu.Lock()
	for k, at := range g.typingLast {
		if now.Sub(at) >= g.cfg.TypingThrottle {
			delete(g.typingLast, k)
		}
	}
	g.typingMu.Unlock()
}

// typingAllowed applies the typing throttle: one forwarded typing_start per
// user per channel per TypingThrottle on this pod.
func (g *Gateway) typingAllowed(user int64, channel string) bool {
	now := g.now()
	k := typingKey{user, channel}
	g.typingMu.Lock()
	defer g.typingMu.Unlock()
	if last, ok := g.typingLast[k]; ok && now.Sub(last) < g.cfg.TypingThrottle {
		return false
	}
	g.typingLast[k] = now
	return true
}

// Drain takes the pod out of service: /readyz fails at once; after the
// readiness delay (so load balancers stop sending new clients) every socket
// is closed with 1012, spread evenly over the drain window so clients
// reconnect elsewhere without a storm. It returns when all sockets are
// closed or ctx ends.
func (g *Gateway) Drain(ctx context.Context) {
	if g.draining.Swap(true) {
		return
	}
	g.metrics.draining.Set(1)
	g.log.Info("draining", "connections", g.Connections(), "readiness_delay", g.cfg.ReadinessDelay, "window", g.cfg.DrainWindow)
	select {
	case <-ctx.Done():
	case <-time.After(g.cfg.ReadinessDelay):
	}
	conns := g.snapshot()
	var step time.Duration
	if len(conns) > 0 {
		step = g.cfg.DrainWindow / time.Duration(len(conns))
	}
	for i, c := range conns {
		c.requestClose(1012, "server draining")
		if step > 0 && i < len(conns)-1 {
			select {
			case <-ctx.Done():
				step = 0
			case <-time.After(step):
			}
		}
	}
	// Upgrades in flight (admitted, not yet registered) are waited for too:
	// they see draining when they register and close themselves.
	for (g.Connections() > 0 || g.admitted.Load() > 0) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	g.log.Info("drained", "left", g.Connections())
	if st := g.stores.Load(); st != nil {
		// Hand the remaining presence entries to the surviving pods, which
		// apply the offline grace: reconnecting clients cause no flap.
		st.presence.Shutdown(ctx)
	}
}

// Draining reports whether Drain has started.
func (g *Gateway) Draining() bool { return g.draining.Load() }

func newConnID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "conn_" + base64.RawURLEncoding.EncodeToString(b[:])
}
