// Command ticketsvc serves POST /v1/auth/ws-ticket: it verifies a bearer
// session and mints a single-use WebSocket connect ticket in NATS KV.
// Run `ticketsvc --help` for its flags; see ticketsvc/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ocvr/realtime/pkg/buildinfo"
	"github.com/ocvr/realtime/pkg/goruntime"
	"github.com/ocvr/realtime/ticketsvc/internal/config"
	"github.com/ocvr/realtime/ticketsvc/internal/server"
)

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("ticketsvc", buildinfo.Read())
		return 0
	}
	cfg, err := config.Parse(os.Args[1:], os.LookupEnv, os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ticketsvc: %v\nRun ticketsvc --help for the flags.\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	cfg.Server.Logger = log
	// GOMAXPROCS from the CPU request, GOMEMLIMIT from the memory limit
	// (pkg/goruntime).
	if _, err := goruntime.Apply(log); err != nil {
		fmt.Fprintf(os.Stderr, "ticketsvc: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	srv, err := server.New(cfg.Server)
	if err != nil {
		log.Error("ticketsvc failed to start", "err", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		log.Error("ticketsvc failed", "err", err)
		return 1
	}
	return 0
}
