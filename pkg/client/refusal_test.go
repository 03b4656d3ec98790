package client_test

// Refusals of the real gateway and ticketsvc (pkg/clustertest: the
// binaries on an embedded NATS) and how a Session takes them: it reports
// each with its hint, waits at least the hint, and connects once the
// refusal ends. The hints' exact values are the servers' business; these
// tests hold the client to whatever the servers send.

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// reconnects records a Session's reconnecting events, each with when it
// was told.
type reconnects struct {
	mu     sync.Mutex
	events []client.Reconnecting
	at     []time.Time
}

func (r *reconnects) add(ev client.Reconnecting) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.at = append(r.at, time.Now())
}

func (r *reconnects) all() ([]client.Reconnecting, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Reconnecting(nil), r.events...), append([]time.Time(nil), r.at...)
}

// hintedSession starts a session that records its reconnects; the
// recorder's frames tell when it connected.
func hintedSession(t *testing.T, cfg client.SessionConfig) (*client.Session, *reconnects, *recorder) {
	t.Helper()
	rc := &reconnects{}
	cfg.OnReconnecting = rc.add
	s := client.NewSession(cfg)
	rec := record(s)
	t.Cleanup(func() { s.Close(); <-rec.done })
	return s, rc, rec
}

// readyAt waits for the session's first ready and returns when the test
// saw it.
func readyAt(t *testing.T, rec *recorder) time.Time {
	t.Helper()
	waitIDs(t, rec, protocol.TypeReady, 1)
	return time.Now()
}

// checkHonoured: every reconnect carries the hint of its error, waits at
// least that hint (and at most twice it), and the first ready came no
// earlier than the last wait (a lower bound only: the machine is busy).
func checkHonoured(t *testing.T, evs []client.Reconnecting, at []time.Time, ready time.Time) {
	t.Helper()
	for i, ev := range evs {
		if ev.RetryAfter != client.RetryAfter(ev.Err) {
			t.Errorf("reconnect %d: hint %v, its error %v carries %v", i+1, ev.RetryAfter, ev.Err, client.RetryAfter(ev.Err))
		}
		if ev.RetryAfter > 0 && (ev.Delay < ev.RetryAfter || ev.Delay > 2*ev.RetryAfter) {
			t.Errorf("reconnect %d: delay %v outside [hint, 2·hint] for hint %v", i+1, ev.Delay, ev.RetryAfter)
		}
		if ev.Attempt != i+1 {
			t.Errorf("reconnect %d: attempt %d", i+1, ev.Attempt)
		}
	}
	if n := len(evs); n > 0 {
		if gap := ready.Sub(at[n-1]); gap < evs[n-1].Delay {
			t.Errorf("connected %v after the last reconnect was scheduled, before its delay %v", gap, evs[n-1].Delay)
		}
	}
}

// TestSessionPodAtCapacity: a gateway at its hard connection limit (1, held
// by another client) refuses the session's upgrade with 1013; the session
// retries — after the reason's retry_after= when the gateway sends one
// (5 s at the hard cap), with its jittered backoff otherwise — and
// connects once the slot is free.
func TestSessionPodAtCapacity(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{GatewayArgs: []string{"--hard-max-connections", "1"}})
	holder, err := c.Dial(c.NewUser(1, "holder"), 0)
	if err != nil {
		t.Fatal(err)
	}
	u := c.NewUser(2, "late")
	s, rc, rec := hintedSession(t, client.SessionConfig{TicketURLs: c.TicketURLs(), WSURLs: c.WSURLs(), Token: u.Token,
		BaseBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	clustertest.Eventually(t, 30*time.Second, "a refusal", func() bool { evs, _ := rc.all(); return len(evs) >= 1 })
	holder.Close()
	ready := readyAt(t, rec)

	evs, at := rc.all()
	var hinted int
	for i, ev := range evs {
		var ce *client.CloseError
		if !errors.As(ev.Err, &ce) || ce.Code != protocol.CloseTryAgainLater {
			if i == 0 { // later ones may race the holder's leaving
				t.Errorf("reconnect %d: %v, want close 1013", i+1, ev.Err)
			}
			continue
		}
		if want := client.ReasonRetryAfter(ce.Reason); ce.RetryAfter != want || ev.RetryAfter != want {
			t.Errorf("reconnect %d: close reason %q, hint %v / %v, want %v", i+1, ce.Reason, ce.RetryAfter, ev.RetryAfter, want)
		}
		if ev.RetryAfter > 0 {
			hinted++
		}
		t.Logf("reconnect %d: %v, delay %v, hint %v", i+1, ce, ev.Delay, ev.RetryAfter)
	}
	t.Logf("%d of %d refusals carried retry_after", hinted, len(evs))
	checkHonoured(t, evs, at, ready)
	if n := s.Connects(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestSessionTicketRateLimited: ticketsvc's 429 RATE_LIMITED comes with
// Retry-After; the session waits at least that long before it asks again,
// and then connects.
func TestSessionTicketRateLimited(t *testing.T) {
	// 60 a minute: a burst of 60, then one a second, so Retry-After is 1.
	c := clustertest.Start(t, clustertest.Options{TicketArgs: []string{"--rate-limit", "60"}})
	u := c.NewUser(1, "eager")
	// A refill can slip in between the test's 429 and the session's
	// first request; then the session connects at once, and the test
	// tries again.
	for try := 1; ; try++ {
		exhaust(t, c.TicketURLs()[0], u.Token)
		s, rc, rec := hintedSession(t, client.SessionConfig{TicketURLs: c.TicketURLs(), WSURLs: c.WSURLs(), Token: u.Token,
			BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		ready := readyAt(t, rec)
		evs, at := rc.all()
		if len(evs) == 0 && try < 3 {
			s.Close()
			continue
		}
		if len(evs) == 0 {
			t.Fatal("three sessions connected without a 429")
		}
		var he *client.HTTPError
		if !errors.As(evs[0].Err, &he) || he.Status != http.StatusTooManyRequests || he.Code != "RATE_LIMITED" || he.RetryAfter <= 0 {
			t.Fatalf("first reconnect: %v, want 429 RATE_LIMITED with Retry-After", evs[0].Err)
		}
		t.Logf("%v: delay %v, hint %v", he, evs[0].Delay, evs[0].RetryAfter)
		checkHonoured(t, evs, at, ready)
		return
	}
}

// exhaust asks for tickets until ticketsvc answers 429.
func exhaust(t *testing.T, ticketURL, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := client.GetTicket(ctx, nil, ticketURL, token)
		var he *client.HTTPError
		if errors.As(err, &he) && he.Status == http.StatusTooManyRequests {
			return
		}
		if err != nil {
			t.Fatalf("ticket: %v", err)
		}
	}
}

// TestSessionGatewayDraining: a draining gateway answers upgrades with
// HTTP 503 and Retry-After before the ticket is touched (an
// *UpgradeError); that refusal is the pod's, so the session's next
// attempt goes to the other gateway at once, and the reconnecting event
// still carries the hint.
func TestSessionGatewayDraining(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 2, GatewayArgs: []string{"--readiness-delay", "20s", "--drain-window", "100ms"}})
	if err := c.Gateways[0].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, "gateway 1 unready", func() bool { ok, _ := c.Gateways[0].Ready(); return !ok })

	// What Dial says.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := c.NewUser(1, "draining")
	_, err := client.Connect(ctx, c.TicketURLs()[0], c.WSURLs()[0], u.Token, client.Options{})
	var ue *client.UpgradeError
	if !errors.As(err, &ue) || ue.Status != http.StatusServiceUnavailable {
		t.Fatalf("Connect to the draining gateway: %v, want an *UpgradeError 503", err)
	}
	t.Logf("%v", err)

	// What a session does: gateway 1 refuses, gateway 2 takes it.
	s, rc, rec := hintedSession(t, client.SessionConfig{TicketURLs: c.TicketURLs(), WSURLs: c.WSURLs(), Token: u.Token,
		BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	ready := readyAt(t, rec)
	evs, at := rc.all()
	if len(evs) != 1 {
		t.Fatalf("%d reconnects, want 1: %+v", len(evs), evs)
	}
	var refused *client.UpgradeError
	if !errors.As(evs[0].Err, &refused) || refused.Status != http.StatusServiceUnavailable || refused.RetryAfter <= 0 || evs[0].RetryAfter != refused.RetryAfter {
		t.Errorf("reconnect: %+v, want the 503 with its Retry-After as the hint", evs[0])
	}
	if evs[0].Delay > 100*time.Millisecond {
		t.Errorf("reconnect: delay %v, want at most 100ms (another gateway is free)", evs[0].Delay)
	}
	t.Logf("connected %v after the refusal (hint %v)", ready.Sub(at[0]), refused.RetryAfter)
	if n := s.Connects(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}
