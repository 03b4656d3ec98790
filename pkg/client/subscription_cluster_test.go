package client_test

// Subscriptions and tokens against the real gateway and ticketsvc
// (pkg/clustertest): Subscribe's answers, a subscribe made while
// disconnected, a channel refused after a reconnect and never asked
// again, and the token callback.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// refusals counts the error frames about ch that rec holds.
func refusals(t *testing.T, rec *recorder, ch string) int {
	t.Helper()
	n := 0
	for _, f := range rec.of(protocol.TypeError) {
		var e protocol.Error
		if f.Decode(&e) == nil && e.ChannelID == ch {
			n++
		}
	}
	return n
}

// TestSessionSubscriptionsAgainstGateway: Subscribe returns nil once the
// real gateway's subscribed arrived, the gateway's code for a channel of
// someone else or none; a Subscribe made while the session is away
// returns once the next connection subscribed it; a channel the user was
// removed from while away is refused on the resubscribe, reported, and
// not asked for again on the connection after (the old Session returned
// at once from every Subscribe and resubscribed the refused channel on
// every reconnect).
func TestSessionSubscriptionsAgainstGateway(t *testing.T) {
	f := newFixture(t, 1)
	f.c.Channel("ch_other", 99)
	f.c.Channel("ch_later", f.user.ID)
	ctx := context.Background()
	s, err := client.StartSession(ctx, client.SessionConfig{TicketURLs: []string{f.gate.url}, WSURLs: f.c.WSURLs(), Token: f.user.Token,
		BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, SubscribeTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec := record(s)
	t.Cleanup(func() { s.Close(); <-rec.done })

	if err := s.Subscribe(ctx, f.ch); err != nil {
		t.Fatalf("Subscribe(%s) = %v", f.ch, err)
	}
	if sub, ok := s.Subscription(f.ch); !ok || sub.State != client.Subscribed || sub.Continuity == nil {
		t.Errorf("%s after Subscribe: %+v", f.ch, sub)
	}
	for ch, code := range map[string]string{"ch_other": protocol.CodeNotMember, "ch_missing": protocol.CodeChannelNotFound} {
		var se *client.SubscribeError
		if err := s.Subscribe(ctx, ch); !errors.As(err, &se) || se.Code != code {
			t.Errorf("Subscribe(%s) = %v, want %s", ch, err, code)
		}
	}

	away := func() {
		t.Helper()
		f.gate.closed.Store(true)
		f.c.Gateways[0].Kill()
		clustertest.Eventually(t, 30*time.Second, "the connection to end", func() bool { return s.Conn() == nil })
	}
	back := func() {
		t.Helper()
		if err := f.c.Gateways[0].Restart(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		f.gate.closed.Store(false)
	}

	// Subscribed while away: it waits for the next connection.
	away()
	later := make(chan error, 1)
	go func() { later <- s.Subscribe(ctx, "ch_later") }() // owner: the test
	clustertest.Eventually(t, 10*time.Second, "ch_later in the session", func() bool { _, ok := s.Subscription("ch_later"); return ok })
	// Removed while away: the resubscription is refused.
	if err := f.c.Directory.RemoveMember(ctx, f.ch, f.user.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-later:
		t.Fatalf("Subscribe while away returned %v before any connection", err)
	default:
	}
	back()
	if err := <-later; err != nil {
		t.Errorf("Subscribe while away = %v, want nil after the reconnect", err)
	}
	clustertest.Eventually(t, 30*time.Second, f.ch+" refused", func() bool { return refusals(t, rec, f.ch) == 1 })
	var se *client.SubscribeError
	if sub, ok := s.Subscription(f.ch); !ok || sub.State != client.Unsubscribed || !errors.As(sub.Err, &se) || se.Code != protocol.CodeNotMember {
		t.Errorf("%s after the refusal: %+v", f.ch, sub)
	}

	// The next connection asks only for ch_later.
	away()
	back()
	clustertest.Eventually(t, 30*time.Second, "ch_later resubscribed", func() bool {
		sub, _ := s.Subscription("ch_later")
		return sub.State == client.Subscribed && sub.Continuity != nil && sub.Continuity.Reconnect
	})
	time.Sleep(300 * time.Millisecond) // a refusal of a resubscription sent with ch_later's would be in by now
	if n := refusals(t, rec, f.ch); n != 1 {
		t.Errorf("%d refusals of %s, want 1: the refused channel was subscribed again", n, f.ch)
	}
	if n := s.Connects(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestSessionTokenFunc: the token callback is asked before every ticket
// request; after ticketsvc's 401 it is asked again at once, and a token it
// then returns that works connects the session; a callback whose tokens
// are all refused ends the session with the 401.
func TestSessionTokenFunc(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	u := c.NewUser(1, "alice")
	const stale = "sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	t.Run("refreshed after a 401", func(t *testing.T) {
		var calls atomic.Int32
		var reconnects atomic.Int32
		s, err := client.StartSession(context.Background(), client.SessionConfig{TicketURLs: c.TicketURLs(), WSURLs: c.WSURLs(),
			TokenFunc: func(context.Context) (string, error) {
				if calls.Add(1) == 1 {
					return stale, nil // expired meanwhile
				}
				return u.Token, nil
			},
			OnReconnecting: func(client.Reconnecting) { reconnects.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		rec := record(s)
		t.Cleanup(func() { s.Close(); <-rec.done })
		waitIDs(t, rec, protocol.TypeReady, 1)
		if n := calls.Load(); n != 2 {
			t.Errorf("TokenFunc called %d times, want 2", n)
		}
		if n := reconnects.Load(); n != 0 {
			t.Errorf("%d backoff waits, want none: a refreshed token is tried at once", n)
		}
	})
	t.Run("every token refused", func(t *testing.T) {
		var calls atomic.Int32
		s, err := client.StartSession(context.Background(), client.SessionConfig{TicketURLs: c.TicketURLs(), WSURLs: c.WSURLs(),
			TokenFunc: func(context.Context) (string, error) { calls.Add(1); return stale, nil }})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		select {
		case <-s.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("the session did not end")
		}
		var he *client.HTTPError
		if err := s.Err(); !errors.As(err, &he) || he.Status != 401 {
			t.Errorf("Err = %v, want the 401", err)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("TokenFunc called %d times, want 2", n)
		}
	})
}
