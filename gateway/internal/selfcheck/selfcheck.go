// Package selfcheck is `gateway selfcheck`, the chart's `helm test`: the
// path a client takes, end to end, through the cluster's Services. It
// creates a short-lived session in NATS (as the platform's auth would),
// gets a connect ticket from ticketsvc with it, opens a socket to the
// gateway with the ticket and waits for the gateway's ready frame, then
// closes the socket and revokes the session. NATS settings are the
// gateway's own (OCVR_NATS_*, OCVR_SESSIONS_BUCKET, OCVR_SUBJECT_PREFIX).
// The session token and the ticket are never printed.
package selfcheck

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/ocvr/realtime/gateway/internal/config"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/session"
)

// Options are the check's settings.
type Options struct {
	TicketsvcURL   string // ticketsvc's base URL (it serves POST /v1/auth/ws-ticket)
	WSURL          string // the gateway's /v1/ws
	UserID         int64  // the session's user: one the platform never gives out
	Timeout        time.Duration
	NATS           bus.Config
	SessionsBucket string
	SubjectPrefix  string
}

// Main parses the selfcheck's arguments (the NATS settings from the
// environment, as the gateway reads them), runs it and returns the exit
// code: 0 passed, 1 failed, 2 bad arguments.
func Main(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway selfcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.TicketsvcURL, "ticketsvc-url", "http://127.0.0.1:8080", "ticketsvc's base URL (POST /v1/auth/ws-ticket)")
	fs.StringVar(&o.WSURL, "ws-url", "ws://127.0.0.1:8081/v1/ws", "the gateway's socket endpoint")
	fs.Int64Var(&o.UserID, "user", 0, "user id of the test session (one the platform never gives out)")
	fs.DurationVar(&o.Timeout, "timeout", time.Minute, "time for the whole check")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: gateway selfcheck --ticketsvc-url URL --ws-url URL --user ID [--timeout 1m]\n\n"+
			"Creates a session in NATS, gets a ticket from ticketsvc with it, opens a socket to the gateway\n"+
			"and waits for its ready frame, then revokes the session. NATS settings come from the\n"+
			"gateway's OCVR_* environment (see gateway --help).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.UserID <= 0 {
		fmt.Fprintln(stderr, "gateway selfcheck: --user must be a positive user id")
		return 2
	}
	cfg, err := config.Parse(nil, lookupEnv, io.Discard)
	if err != nil {
		fmt.Fprintf(stderr, "gateway selfcheck: the NATS settings in the environment: %v\n", err)
		return 2
	}
	o.NATS, o.SessionsBucket, o.SubjectPrefix = cfg.NATS, cfg.Gateway.SessionsBucket, cfg.Gateway.SubjectPrefix
	o.NATS.Name = "gateway-selfcheck"
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	report, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "gateway selfcheck: FAILED: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "gateway selfcheck: passed:", report)
	return 0
}

// Run performs the check and says what it saw.
func Run(ctx context.Context, o Options) (string, error) {
	start := time.Now()
	subjects, err := bus.NewSubjects(o.SubjectPrefix)
	if err != nil {
		return "", err
	}
	nc, err := bus.Connect(o.NATS)
	if err != nil {
		return "", fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	store, err := session.Open(ctx, nc, o.SessionsBucket, bus.NewPublisher(nc, subjects))
	if err != nil {
		return "", fmt.Errorf("open the sessions bucket %s: %w", o.SessionsBucket, err)
	}
	token, sess, err := store.Create(ctx, o.UserID, "ocvr selfcheck", o.Timeout+time.Minute)
	if err != nil {
		return "", fmt.Errorf("create a session for user %d: %w", o.UserID, err)
	}
	defer func() {
		// Revoked even when the check failed or its deadline passed.
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = store.Revoke(rctx, sess.ID, "selfcheck")
	}()
	ticket, err := client.GetTicket(ctx, nil, o.TicketsvcURL, token)
	if err != nil {
		return "", fmt.Errorf("ticket from %s: %w", o.TicketsvcURL, err)
	}
	conn, err := client.Dial(ctx, o.WSURL, ticket, client.Options{Heartbeat: -1})
	if err != nil {
		return "", fmt.Errorf("socket to %s: %w", o.WSURL, err)
	}
	ready := conn.ReadyFrame()
	if err := conn.Close(); err != nil {
		return "", fmt.Errorf("close the socket: %w", err)
	}
	if ready.Type != "ready" {
		return "", fmt.Errorf("the gateway's first frame is %q, want ready", ready.Type)
	}
	return fmt.Sprintf("session for user %d, ticket from %s, socket to %s ready, in %s",
		o.UserID, o.TicketsvcURL, o.WSURL, time.Since(start).Round(time.Millisecond)), nil
}
