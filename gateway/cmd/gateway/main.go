// Command gateway is the OCVR WebSocket gateway. Run with --help for flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/gateway/internal/config"
	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/gateway/internal/selfcheck"
	"github.com/ocvr/realtime/pkg/buildinfo"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/goruntime"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("gateway", buildinfo.Read())
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "selfcheck" {
		// The chart's helm test: a session, a ticket and a socket end to end.
		os.Exit(selfcheck.Main(context.Background(), os.Args[2:], os.LookupEnv, os.Stdout, os.Stderr))
	}
	cfg, err := config.Parse(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// GOMAXPROCS (and so the default writer count) comes from the CPU
	// request, GOMEMLIMIT from the memory limit (pkg/goruntime).
	if _, err := goruntime.Apply(log); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	if err := run(cfg, log); err != nil {
		log.Error("gateway failed", "err", err)
		os.Exit(1)
	}
}

func run(cfg config.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// The NATS hooks fire on other goroutines, possibly before New returns.
	var gp atomic.Pointer[gateway.Gateway]
	cfg.NATS.Name = "gateway/" + cfg.Gateway.PodName
	cfg.NATS.Logger = log
	cfg.NATS.RetryOnFailedConnect = true // start (unready) even before NATS is up
	cfg.NATS.OnReconnect = func() {
		if g := gp.Load(); g != nil {
			g.NATSReconnected()
		}
	}
	cfg.NATS.OnAsyncError = func(sub *nats.Subscription, err error) {
		if g := gp.Load(); g != nil {
			g.NATSAsyncError(sub, err)
		}
	}
	nc, err := bus.Connect(cfg.NATS)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg.Gateway.Logger = log
	cfg.Gateway.DeletionCost = deletionCoster(cfg, log)
	g, err := gateway.New(cfg.Gateway, nc)
	if err != nil {
		return err
	}
	gp.Store(g)

	// No TCP keep-alive on client sockets: liveness is the protocol's
	// heartbeat (a silent socket is closed after HeartbeatTimeout), and the
	// four setsockopt calls per accepted socket are measurable in a connect
	// storm.
	pub, err := (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	adm, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	// The public listener only upgrades sockets: a request's headers must
	// arrive within the handshake timeout, and a connection left idle after
	// a non-upgrade answer is closed after it too (without IdleTimeout
	// net/http would keep it forever). A hijacked socket keeps no deadline.
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		IdleTimeout:       cfg.HandshakeTimeout,
		MaxHeaderBytes:    config.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	admin := &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	done := make(chan struct{})
	go func() { _ = g.Run(runCtx); close(done) }()
	go func() { _ = srv.Serve(pub) }()
	go func() { _ = admin.Serve(adm) }()
	log.Info("gateway listening", "listen", pub.Addr().String(), "admin", adm.Addr().String(), "version", buildinfo.Read().String())

	<-ctx.Done()
	stop()
	log.Info("shutting down")
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Drain: unready now; new upgrades get 503 while load balancers catch
	// up; then sockets close with 1012 over the drain window.
	g.Drain(drainCtx)
	_ = srv.Shutdown(drainCtx)
	cancelRun()
	<-done
	_ = admin.Shutdown(drainCtx)
	return nil
}

// deletionCoster is the Kubernetes API client that keeps the pod's
// deletion-cost annotation, or nil: turned off, or not in Kubernetes (the
// feature is an optimisation of scale-down: its absence never stops the
// gateway).
func deletionCoster(cfg config.Config, log *slog.Logger) gateway.DeletionCoster {
	if cfg.NoPodDeletionCost {
		return nil
	}
	kp, err := gateway.InClusterPod(os.Getenv, gateway.ServiceAccountDir, cfg.PodNamespace, cfg.Gateway.PodName)
	switch {
	case errors.Is(err, gateway.ErrNotInCluster):
		log.Info("pod deletion cost off: not in a Kubernetes pod with a service account token", "why", err.Error())
		return nil
	case err != nil:
		log.Error("pod deletion cost off", "err", err)
		return nil
	}
	return kp
}
