// Package server is ticketsvc: the echo application that turns a bearer
// session into a single-use WebSocket connect ticket (DESIGN.md §2), plus its
// admin listener (/healthz, /readyz, /metrics). main wires flags to Config;
// tests and development launchers run the same Server in-process.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/origin"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/redact"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
	"github.com/ocvr/realtime/ticketsvc/internal/ratelimit"
)

// Defaults of Config (and of the command-line flags).
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultAdminListen     = "127.0.0.1:9080"
	DefaultRateLimit       = 30 // tickets per session per minute
	DefaultBodyLimit       = 4 << 10
	DefaultShutdownTimeout = 15 * time.Second
	DefaultKVTimeout       = 3 * time.Second
	// DefaultMaxInflight bounds the ticket requests doing KV work at once.
	// At the ~10,000 tickets/s of two cores, 512 in flight is ~50 ms of
	// queue: enough to keep NATS busy, short enough that an admitted
	// client's latency stays bounded.
	DefaultMaxInflight = 512
	// DefaultMaxConns bounds the public listener's open connections. Each
	// holds about 20 KiB of heap and stack (24 KiB of RSS, measured), so
	// the cap stays under 100 MiB, inside the chart's 256 MiB limit, and
	// far below common descriptor limits.
	DefaultMaxConns = 4096
)

// DefaultAllowedOrigins is the default CORS allow-list: pages served by
// local dev servers on any port may fetch tickets.
func DefaultAllowedOrigins() []string { return []string{"http://localhost:*", "http://127.0.0.1:*"} }

// Config configures a Server. Start from DefaultConfig: New treats a zero
// RateLimit as "no limit" and an empty AllowedOrigins as "no cross-origin
// callers", which are deliberate settings rather than missing ones.
type Config struct {
	// Listen and AdminListen are host:port; port 0 picks a free port (see
	// Server.Addr and Server.AdminAddr).
	Listen      string
	AdminListen string

	// NATS connection (see bus.Config).
	NATSURLs        []string
	NATSCredsFile   string
	NATSTLSCAFile   string
	NATSTLSCertFile string
	NATSTLSKeyFile  string

	// SubjectPrefix is the bus environment: the session service's subjects
	// (<prefix>.svc.sessions.*) and the user subjects its revocations
	// publish session_revoked on. It must match the gateways'.
	SubjectPrefix  string
	SessionsBucket string // default session.DefaultBucket
	TicketsBucket  string // default ticket.DefaultBucket
	// JetStreamDomain is the JetStream domain holding the buckets ("": the
	// connected server's), e.g. a hub's across a leafnode.
	JetStreamDomain string

	// AllowedOrigins is the CORS allow-list (pkg/origin's grammar, the
	// gateway's too).
	AllowedOrigins []string

	RateLimit       int           // tickets per session per minute; 0 disables the limit
	BodyLimit       int64         // request body bytes; larger bodies get 413
	ShutdownTimeout time.Duration // how long in-flight requests get on shutdown
	KVTimeout       time.Duration // bound on each NATS KV call of a request
	// MaxInflight caps the ticket requests doing KV work at once; the ones
	// beyond it are refused at once with 503 UNAVAILABLE and Retry-After.
	MaxInflight int
	// MaxConns caps the public listener's open connections (see
	// connLimitListener); from 3/4 of it on, responses close their
	// connection instead of keeping it alive.
	MaxConns int

	// Logger receives JSON request and lifecycle logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the stores and the rate limiter; nil means
	// time.Now. Tests move it instead of sleeping.
	Now func() time.Time
}

// DefaultConfig returns the configuration of the development stack.
func DefaultConfig() Config {
	return Config{
		Listen:          DefaultListen,
		AdminListen:     DefaultAdminListen,
		NATSURLs:        []string{bus.DefaultURL},
		SubjectPrefix:   bus.DefaultPrefix,
		SessionsBucket:  session.DefaultBucket,
		TicketsBucket:   ticket.DefaultBucket,
		AllowedOrigins:  DefaultAllowedOrigins(),
		RateLimit:       DefaultRateLimit,
		BodyLimit:       DefaultBodyLimit,
		ShutdownTimeout: DefaultShutdownTimeout,
		KVTimeout:       DefaultKVTimeout,
		MaxInflight:     DefaultMaxInflight,
		MaxConns:        DefaultMaxConns,
	}
}

// stores are opened together once NATS answers; the pair is swapped
// atomically so requests never see half of it.
type stores struct {
	sessions *session.Store
	tickets  *ticket.Store
}

// Server is one ticketsvc instance. Create it with New and run it with Run.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	origins origin.List
	limiter *ratelimit.Limiter // nil when the limit is disabled
	admit   admission
	resp    responses

	echo        *echo.Echo
	publicHTTP  *http.Server
	adminHTTP   *http.Server
	publicLn    *connLimitListener
	adminLn     net.Listener
	registry    *prometheus.Registry
	metrics     *metrics
	provision   *provision.Observer // what opening the stores reports (replica gauge, warnings)
	nc          atomic.Pointer[nats.Conn]
	stores      atomic.Pointer[stores]
	storesKick  chan struct{}
	shutting    atomic.Bool
	ran         atomic.Bool
	releaseOnce sync.Once
}

// New validates cfg, binds both listeners and builds the application. It
// does not contact NATS: Run connects in the background, so a Server starts
// (and reports unready) while NATS is down. Call Run, or Close if Run will
// never be called, to release the listeners.
func New(cfg Config) (*Server, error) {
	if err := fillAndCheck(&cfg); err != nil {
		return nil, err
	}
	origins, err := origin.ParseList(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("ticketsvc config: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		now:        cfg.Now,
		origins:    origins,
		registry:   prometheus.NewRegistry(),
		storesKick: make(chan struct{}, 1),
		admit:      admission{max: int64(cfg.MaxInflight)},
		resp:       newResponses(),
	}
	if cfg.RateLimit > 0 {
		s.limiter = ratelimit.New(cfg.RateLimit, 0, cfg.Now)
	}
	s.metrics, err = newMetrics(s.registry, s)
	if err != nil {
		return nil, err
	}
	if s.provision, err = newProvisionObserver(s.log, s.registry); err != nil {
		return nil, err
	}
	if s.echo, err = s.newEcho(); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("ticketsvc: listen on %s: %w", cfg.Listen, err)
	}
	s.publicLn = newConnLimitListener(ln, cfg.MaxConns)
	if s.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		s.publicLn.Close()
		return nil, fmt.Errorf("ticketsvc: admin listen on %s: %w", cfg.AdminListen, err)
	}
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.publicHTTP = &http.Server{
		Handler:           s.publicLn.shedKeepAlive(s.echo),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10, // a bearer header is < 100 bytes; nothing legitimate needs more
		ErrorLog:          errLog,
	}
	s.adminHTTP = &http.Server{
		Handler:           s.adminMux(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          errLog,
	}
	return s, nil
}

func fillAndCheck(cfg *Config) error {
	if cfg.Listen == "" || cfg.AdminListen == "" {
		return errors.New("ticketsvc config: listen and admin listen addresses are required")
	}
	if len(cfg.NATSURLs) == 0 {
		cfg.NATSURLs = []string{bus.DefaultURL}
	}
	if _, err := bus.NewSubjects(cfg.SubjectPrefix); err != nil {
		return fmt.Errorf("ticketsvc config: %w", err)
	}
	if cfg.SessionsBucket == "" {
		cfg.SessionsBucket = session.DefaultBucket
	}
	if cfg.TicketsBucket == "" {
		cfg.TicketsBucket = ticket.DefaultBucket
	}
	if cfg.SessionsBucket == cfg.TicketsBucket {
		return fmt.Errorf("ticketsvc config: sessions and tickets need different buckets (both %q)", cfg.TicketsBucket)
	}
	if cfg.RateLimit < 0 {
		return fmt.Errorf("ticketsvc config: rate limit %d is negative", cfg.RateLimit)
	}
	if cfg.BodyLimit <= 0 {
		return fmt.Errorf("ticketsvc config: body limit %d must be positive", cfg.BodyLimit)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.KVTimeout <= 0 {
		cfg.KVTimeout = DefaultKVTimeout
	}
	if cfg.MaxInflight < 0 || cfg.MaxConns < 0 {
		return fmt.Errorf("ticketsvc config: max in-flight %d and max connections %d must not be negative", cfg.MaxInflight, cfg.MaxConns)
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// Addr is the bound address of the public listener (useful with port 0).
func (s *Server) Addr() string { return s.publicLn.Addr().String() }

// AdminAddr is the bound address of the admin listener.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Close releases the listeners of a Server whose Run was never called.
func (s *Server) Close() error {
	var err error
	s.releaseOnce.Do(func() {
		err = errors.Join(s.publicLn.Close(), s.adminLn.Close())
	})
	return err
}

// Run serves until ctx is cancelled, then shuts down gracefully: /readyz
// turns unready, the public listener stops accepting, in-flight requests get
// up to ShutdownTimeout, and the NATS connection is closed. It returns nil
// after a clean shutdown and an error if a listener failed. Run may be
// called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("ticketsvc: Run called twice")
	}
	nc, err := bus.Connect(bus.Config{
		URLs:                 s.cfg.NATSURLs,
		CredsFile:            s.cfg.NATSCredsFile,
		TLSCAFile:            s.cfg.NATSTLSCAFile,
		TLSCertFile:          s.cfg.NATSTLSCertFile,
		TLSKeyFile:           s.cfg.NATSTLSKeyFile,
		Name:                 "ocvr-ticketsvc",
		RetryOnFailedConnect: true, // start and answer 503 until NATS is up
		Logger:               s.log,
		OnReconnect: func() {
			s.metrics.natsReconnects.Inc()
			// A restarted NATS may have lost its data: make sure the buckets exist.
			s.kickStores()
		},
	})
	if err != nil {
		s.Close()
		return fmt.Errorf("ticketsvc: %w", err)
	}
	s.nc.Store(nc)
	defer nc.Close()
	s.log.Info("ticketsvc started",
		"listen", s.Addr(), "admin_listen", s.AdminAddr(),
		"nats", redact.URLs(s.cfg.NATSURLs), "rate_limit_per_min", s.cfg.RateLimit)

	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { s.maintainStores(bgCtx, nc) })
	defer func() {
		stopBg()
		bg.Wait()
	}()
	svc, err := s.startSessionService(bgCtx, nc)
	if err != nil {
		s.Close()
		return fmt.Errorf("ticketsvc: %w", err)
	}
	defer func() { _ = svc.Stop() }() // before nc closes: in-flight requests finish

	errc := make(chan error, 2)
	go func() { errc <- serve(s.publicHTTP, s.publicLn, "public") }()
	go func() { errc <- serve(s.adminHTTP, s.adminLn, "admin") }()

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("ticketsvc shutting down")
	case runErr = <-errc:
		s.log.Error("ticketsvc listener failed", "err", runErr)
	}
	s.shutting.Store(true)

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	// Public first, admin last: probes keep seeing "unready" while the
	// in-flight ticket requests finish.
	if err := s.publicHTTP.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("ticketsvc: shutdown public listener: %w", err))
	}
	if err := s.adminHTTP.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("ticketsvc: shutdown admin listener: %w", err))
	}
	s.releaseOnce.Do(func() {}) // the http servers closed the listeners
	s.log.Info("ticketsvc stopped")
	return runErr
}

func serve(srv *http.Server, ln net.Listener, name string) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s listener: %w", name, err)
	}
	return nil
}
