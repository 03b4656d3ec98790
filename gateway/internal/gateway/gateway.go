// Package gateway is the OCVR WebSocket gateway: it accepts client sockets,
// speaks the client protocol (DESIGN.md §2) and fans bus events (§3) out to
// the local connections that should get them.
//
// Goroutines and their owners:
//   - Run's: the bus dispatchers, the poller, the directory and session
//     watches, the KV probe, the session re-check and the stream resync
//     after reconnects, the sweeper, the presence tracker, the fleet loop
//     (fleet.go: load reports, rebalancing) and the deletion-cost updater. They exit when Run's context ends;
//     Run waits for them (stop).
//   - serveConn, one per accepted socket, owned by its connection: it joins
//     the user's subjects, then returns (poller mode) or reads until the
//     socket ends (reader-goroutine mode).
//   - writer.run, one per writer while its ready list is not empty.
//   - conn.drain, owned by a connection whose socket did not take a whole
//     batch: it exits when the queue is written or a write fails.
//   - the close handshake and the teardown after a failed write, started by
//     a writer so that it never waits for one socket: they exit after
//     conn.finish.
//   - catchupLoop, owned by a connection that reads subjects from the event
//     stream (continuity.go, catchup.go): it exits when the connection is
//     live on all of them again, or ends.
//
// Files: accept.go (admission and upgrade), serve.go (reading, teardown),
// frames.go (subscribe, unsubscribe, typing), conn.go and lifecycle.go (a
// connection's queue and its end), writer.go, hub.go and event.go (bus fan-out),
// continuity.go, catchup.go and resume.go (positions, catch-up, resume),
// watch.go and liveness.go (revocation, membership, silence, expiry),
// typing.go, rejections.go (advisories), admin.go, softcap.go (readiness at
// the soft cap), drain.go, fleet.go and rebalance.go (active rebalancing),
// deletioncost.go (the pod's deletion cost), config.go.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocvr/realtime/gateway/internal/batchconn"
	"github.com/ocvr/realtime/gateway/internal/poller"
	"github.com/ocvr/realtime/gateway/internal/resume"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/stream"
	"github.com/ocvr/realtime/pkg/ticket"
	"github.com/ocvr/realtime/pkg/typing"
)

// stores are the KV-backed stores, opened once NATS is reachable.
type stores struct {
	tickets  *ticket.Store
	sessions *session.Store
	dir      *directory.Store
	presence *presence.Tracker
	typing   *typing.Throttle
	cont     *continuity // nil with continuity off
}

// Gateway serves client sockets on one pod.
type Gateway struct {
	cfg        Config
	log        *slog.Logger
	nc         *nats.Conn
	subjects   bus.Subjects
	pub        *bus.Publisher
	hub        *hub
	metrics    *metrics
	rejections *rejections // reports refused bus payloads (advisories)
	env        *connEnv    // what every connection needs from the pod
	pool       *batchconn.Pool
	writers    *writers
	origins    *originMatcher
	poller     *poller.Poller // nil: a reader goroutine per socket
	perUser    *slots[int64]  // connections per user (MaxConnsPerUser)
	preauth    *slots[string] // upgrades in flight per source (MaxPreauthPerSource)
	softCap    *softCap       // readiness at the soft connection limit, with hysteresis
	fleet      *fleet         // the other pods' connection counts (rebalance.go)
	deflate    *compression   // permessage-deflate (nil: off)

	typingThrottle *typingThrottle
	revocations    revocations // sessions the revocation watch saw go
	hooks          hooks       // tests only

	stores atomic.Pointer[stores]

	mu       sync.Mutex
	conns    map[*conn]struct{}
	nconn    atomic.Int64
	admitted atomic.Int64 // upgrades past admission (redeeming or open), for HardMaxConns
	redeems  atomic.Int64 // tickets being redeemed, for MaxRedeemsInFlight

	draining  atomic.Bool
	kvDown    atomic.Bool                   // the last KV probe failed
	watchers  atomic.Int32                  // watches established at least once
	reconnect atomic.Pointer[chan struct{}] // closed and replaced on every NATS reconnect

	wg sync.WaitGroup // background goroutines

	provision *provision.Observer // what opening the stores reports (replica gauge, warnings)
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
		cfg:            cfg,
		log:            cfg.Logger.With("pod", cfg.PodName),
		nc:             nc,
		subjects:       subjects,
		pub:            bus.NewPublisher(nc, subjects, bus.WithCore()), // typing indicators: ephemeral, no position
		metrics:        newMetrics(),
		pool:           batchconn.NewPool(),
		origins:        origins,
		perUser:        newSlots[int64](cfg.MaxConnsPerUser),
		preauth:        newSlots[string](cfg.MaxPreauthPerSource),
		softCap:        newSoftCap(cfg.SoftMaxConns, cfg.SoftMaxReadyAgain),
		fleet:          newFleet(cfg.PodName),
		typingThrottle: newTypingThrottle(cfg.TypingThrottle, cfg.Now),
		conns:          map[*conn]struct{}{},
		deflate:        newCompression(cfg),
	}
	g.provision = newProvisionObserver(g.log, g.metrics.reg)
	g.rejections = newRejections(nc.Publish, subjects, cfg.PodName, g.log, g.now, g.metrics)
	g.hub = newHub(nc, g.metrics, g.rejections, &g.hooks, cfg.DispatchShards, cfg.DispatchBuffer)
	g.hub.now, g.hub.streamName = cfg.Now, cfg.StreamName
	g.hub.enc = g.deflate.encoder()
	g.env = &connEnv{
		queueSize:    cfg.QueueSize,
		writeTimeout: cfg.WriteTimeout,
		frameRate:    cfg.FrameRate,
		frameBurst:   cfg.FrameBurst,
		floodLimit:   cfg.FloodLimit,
		metrics:      g.metrics,
		now:          cfg.Now,
		teardown:     g.teardown,
	}
	g.writers = newWriters(g.env, cfg.Writers)
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
			g.typingThrottle.setCluster(func(ctx context.Context, ch string, user int64) (bool, error) {
				return st.typing.AllowAt(ctx, ch, user, g.now())
			})
			g.hub.cont.Store(st.cont)
			g.stores.Store(st)
			break
		}
		g.log.Warn("stores not reachable yet", "err", err)
		select {
		case <-ctx.Done():
			g.stop()
			return nil
		case <-time.After(time.Second):
		}
	}
	st := g.stores.Load()
	for _, run := range []func(context.Context, *stores){g.watchDirectory, g.watchSessions, g.probeKV, g.recheckLoop} {
		g.wg.Add(1)
		go func() { defer g.wg.Done(); run(ctx, st) }()
	}
	g.wg.Add(4)
	go func() { defer g.wg.Done(); g.fleetLoop(ctx) }()
	go func() { defer g.wg.Done(); g.resyncLoop(ctx) }()
	go func() { defer g.wg.Done(); g.sweepLoop(ctx) }()
	go func() { defer g.wg.Done(); _ = st.presence.Run(ctx) }()
	if dc := g.cfg.DeletionCost; dc != nil {
		g.wg.Add(1)
		go func() { defer g.wg.Done(); g.deletionCostLoop(ctx, dc) }()
	}
	<-ctx.Done()
	g.stop()
	return nil
}

// stop waits for Run's goroutines and frees the poller (its epoll set and
// eventfd): a gateway started again in the same process leaks nothing.
func (g *Gateway) stop() {
	if g.poller != nil {
		if err := g.poller.Close(); err != nil {
			g.log.Warn("close poller", "err", err)
		}
	}
	g.wg.Wait()
}

func (g *Gateway) openStores(ctx context.Context) (*stores, error) {
	ctx = provision.WithDomain(provision.WithObserver(ctx, g.provision), g.cfg.JetStreamDomain)
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
	d, err := directory.Open(ctx, g.nc, directory.WithBuckets(g.cfg.DirectoryBuckets))
	if err != nil {
		return nil, err
	}
	p, err := presence.Open(ctx, g.nc, g.cfg.PresenceBucket, d, g.pub)
	if err != nil {
		return nil, err
	}
	ty, err := typing.Open(ctx, g.nc, g.cfg.TypingBucket, typing.WithWindow(g.cfg.TypingThrottle))
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
	st := &stores{tickets: t, sessions: s, dir: d, presence: tr, typing: ty}
	if !g.cfg.NoContinuity {
		if st.cont, err = g.openStream(ctx); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// openStream provisions the event stream (idempotent: every pod does it at
// start, the newest configuration wins) and returns what continuity needs.
func (g *Gateway) openStream(ctx context.Context) (*continuity, error) {
	cfg := stream.Config{
		Name:     g.cfg.StreamName,
		Prefix:   g.subjects.Prefix(),
		Window:   g.cfg.ContinuityWindow,
		Replicas: g.cfg.StreamReplicas,
		MaxBytes: g.cfg.StreamMaxBytes,
		Domain:   g.cfg.JetStreamDomain,
	}
	info, err := stream.Ensure(ctx, g.nc, cfg)
	if err != nil {
		return nil, err
	}
	r, err := stream.NewReader(g.nc, cfg)
	if err != nil {
		return nil, err
	}
	signer, err := resume.NewSigner(info.ResumeKey)
	if err != nil {
		return nil, err
	}
	g.log.Info("event stream ready", "stream", info.Config.Name, "replicas", info.Config.Replicas, "window", info.Config.MaxAge.String())
	return newContinuity(r, info.Config.MaxAge, signer), nil
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
func newConnID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "conn_" + base64.RawURLEncoding.EncodeToString(b[:])
}
