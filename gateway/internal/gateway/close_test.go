package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// TestInvalidTicket: every way a ticket can be bad completes the upgrade,
// sends an INVALID_TICKET error frame and closes with 4001.
func TestInvalidTicket(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := e.user(1, "Alice")

	forged := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return ticket.Prefix + base64.RawURLEncoding.EncodeToString(b)
	}
	used := e.ticket(alice)
	e.dial0(t, used).CloseNow()

	old, err := ticket.Open(ctx, e.nc, "")
	mustNoErr(t, err)
	old.Now = func() time.Time { return time.Now().Add(-31 * time.Second) }
	expired, err := old.Mint(ctx, ticket.Identity{SessionID: alice.sess.ID, UserID: 1, DisplayName: "Alice"})
	mustNoErr(t, err)

	// A ticket whose session is revoked between mint and redeem.
	victim := e.user(1, "Alice")
	revoked := e.ticket(victim)
	mustNoErr(t, e.sessions.Revoke(ctx, victim.sess.ID, "logout"))

	// A ticket whose session expired between mint and redeem.
	past, err := session.Open(ctx, e.nc, "", e.pub)
	mustNoErr(t, err)
	past.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	_, oldSess, err := past.Create(ctx, 1, "Alice", time.Hour)
	mustNoErr(t, err)
	sessionExpired, err := e.tickets.Mint(ctx, ticket.Identity{SessionID: oldSess.ID, UserID: 1, DisplayName: "Alice"})
	mustNoErr(t, err)

	cases := []struct {
		name, query, result string
	}{
		{"missing", "", "malformed"},
		{"empty", "ticket=", "malformed"},
		{"malformed", "ticket=wst_abc", "malformed"},
		{"wrong prefix", "ticket=" + strings.Replace(forged(), "wst_", "tkt_", 1), "malformed"},
		{"session token instead", "ticket=" + alice.token, "malformed"},
		{"forged", "ticket=" + forged(), "unknown"},
		{"used", "ticket=" + used, "unknown"},
		{"expired", "ticket=" + expired, "expired"},
		{"session revoked", "ticket=" + revoked, "session_invalid"},
		{"session expired", "ticket=" + sessionExpired, "session_invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.metric(label("ocvr_gateway_ticket_redeems_total", "result", tc.result))
			ws, _, err := e.rawDial(t, tc.query, nil)
			if err != nil {
				t.Fatalf("upgrade refused: %v (a browser could not read an HTTP status)", err)
			}
			f := rawRead(t, ws)
			var pe protocol.Error
			_ = json.Unmarshal(f.Data, &pe)
			if f.Type != protocol.TypeError || pe.Code != protocol.CodeInvalidTicket || pe.Message == "" {
				t.Fatalf("first frame %s %s, want error INVALID_TICKET", f.Type, f.Data)
			}
			if code := rawClose(t, ws); code != protocol.CloseInvalidTicket {
				t.Fatalf("close %d, want 4001", code)
			}
			if after := e.metric(label("ocvr_gateway_ticket_redeems_total", "result", tc.result)); after != before+1 {
				t.Errorf("ticket_redeems_total{result=%s}: %v → %v", tc.result, before, after)
			}
		})
	}
	if e.g.Connections() != 0 {
		t.Errorf("%d connections registered", e.g.Connections())
	}
	if got := e.metric(label("ocvr_gateway_connects_total", "result", "invalid_ticket")); got != float64(len(cases)) {
		t.Errorf("connects_total{invalid_ticket} = %v, want %d", got, len(cases))
	}
	if got := e.metric(label("ocvr_gateway_errors_total", "code", protocol.CodeInvalidTicket)); got != float64(len(cases)) {
		t.Errorf("errors_total{INVALID_TICKET} = %v, want %d", got, len(cases))
	}
}

// TestInvalidTicketClientDial: the Go client reports a refused ticket as a
// *client.CloseError with code 4001 carrying the INVALID_TICKET error.
func TestInvalidTicketClientDial(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.dialTicket("", "wst_nope")
	var ce *client.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("Dial returned %v, want a *client.CloseError", err)
	}
	if ce.Code != protocol.CloseInvalidTicket || ce.Err == nil || ce.Err.Code != protocol.CodeInvalidTicket || ce.Reconnect() {
		t.Fatalf("Dial: %+v (err %+v)", ce, ce.Err)
	}
}

func (e *env) dial0(t *testing.T, tk string) *client.Conn {
	t.Helper()
	c, err := e.dialTicket("", tk)
	mustNoErr(t, err)
	return c
}

// TestFrameTooBig: the read limit is 4 KiB: a 4096-byte frame is served, a
// bigger one (and a 1 MiB one) closes with 1009.
func TestFrameTooBig(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	ctx := context.Background()
	frame := func(n int) []byte {
		b := []byte(`{"type":"heartbeat","pad":"`)
		b = append(b, strings.Repeat("x", n-len(b)-2)...)
		return append(b, `"}`...)
	}

	c := e.dial(alice)
	mustNoErr(t, c.SendRaw(ctx, frame(4096)))
	expect(t, c, protocol.TypeHeartbeatAck)
	_ = c.SendRaw(ctx, frame(4097))
	closed(t, c, protocol.CloseMessageTooBig, 10*time.Second)

	c = e.dial(alice)
	_ = c.SendRaw(ctx, frame(1<<20)) // may fail half-way: the server stops reading
	closed(t, c, protocol.CloseMessageTooBig, 10*time.Second)

	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 0 })
	if got := e.metric(label("ocvr_gateway_disconnects_total", "code", "1009")); got != 2 {
		t.Errorf("disconnects_total{1009} = %v", got)
	}
}

// TestSessionRevoked: revoking one session delivers session_revoked to its
// connections and closes them with 4003; the user's other sessions stay.
func TestSessionRevoked(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s1, s2, s3 := e.user(1, "Alice"), e.user(1, "Alice"), e.user(1, "Alice")
	e.channel("ch_a", 1)
	c1, c1b, c2, c3 := e.dial(s1), e.dial(s1), e.dial(s2), e.dial(s3)
	for _, c := range []*client.Conn{c1, c1b, c2, c3} {
		subscribe(t, c, "ch_a")
	}

	mustNoErr(t, e.sessions.Revoke(ctx, s1.sess.ID, "logout"))
	for _, c := range []*client.Conn{c1, c1b} {
		frames, ce := closed(t, c, protocol.CloseSessionRevoked, 10*time.Second)
		if len(frames) != 1 || frames[0].Type != protocol.TypeSessionRevoked {
			t.Fatalf("frames before 4003: %v", frames)
		}
		var sr protocol.SessionRevoked
		mustNoErr(t, frames[0].Decode(&sr))
		if sr.Reason != "logout" || ce.Reconnect() {
			t.Fatalf("session_revoked %+v, close %+v", sr, ce)
		}
	}
	alive(t, c2)
	alive(t, c3)

	// RevokeAll with an exception keeps the excepted session.
	n, err := e.sessions.RevokeAll(ctx, 1, "security", s2.sess.ID)
	mustNoErr(t, err)
	if n != 1 {
		t.Errorf("RevokeAll revoked %d sessions, want 1", n)
	}
	frames, _ := closed(t, c3, protocol.CloseSessionRevoked, 10*time.Second)
	if len(frames) != 1 || frames[0].Type != protocol.TypeSessionRevoked {
		t.Fatalf("frames before 4003: %v", frames)
	}
	alive(t, c2)
	// The survivor still gets channel events.
	_, pub := e.backend()
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_a", 1)))
	expect(t, c2, protocol.TypeMessageCreate)

	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 1 })
	if got := e.metric(label("ocvr_gateway_disconnects_total", "code", "4003")); got != 3 {
		t.Errorf("disconnects_total{4003} = %v", got)
	}
}

// TestHeartbeatTimeout: a connection silent for 75 s is closed with 4004; one
// that heartbeats is kept.
func TestHeartbeatTimeout(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	silent := e.dial(alice)
	talker := e.dial(alice)

	e.clock.Advance(50 * time.Second)
	alive(t, talker)
	e.clock.Advance(26 * time.Second) // silent: 76 s; talker: 26 s
	closed(t, silent, protocol.CloseHeartbeatTimeout, 5*time.Second)
	alive(t, talker)
	e.clock.Advance(76 * time.Second)
	_, ce := closed(t, talker, protocol.CloseHeartbeatTimeout, 5*time.Second)
	if !ce.Reconnect() {
		t.Errorf("4004 should be a reconnect code")
	}
}

// TestFlood: a client that keeps sending past RATE_LIMITED is closed with
// 4008.
func TestFlood(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.FrameRate = 1
		c.FrameBurst = 2
		c.FloodLimit = 5
	})
	c := e.dial(e.user(1, "Alice"))
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if err := c.Heartbeat(ctx); err != nil {
			break // the server may already have closed
		}
	}
	frames, _ := closed(t, c, protocol.CloseRateLimited, 10*time.Second)
	var acks, limited int
	for _, f := range frames {
		switch {
		case f.Type == protocol.TypeHeartbeatAck:
			acks++
		case f.Type == protocol.TypeError && strings.Contains(string(f.Data), protocol.CodeRateLimited):
			limited++
		default:
			t.Errorf("unexpected frame %s", f.Raw)
		}
	}
	if acks != 2 || limited != 1 {
		t.Errorf("got %d acks and %d RATE_LIMITED before 4008, want 2 and 1", acks, limited)
	}
}

// TestDrain: Drain fails readiness, closes every socket with 1012 and
// refuses new upgrades.
func TestDrain(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	var conns []*client.Conn
	for i := 0; i < 5; i++ {
		conns = append(conns, e.dial(alice))
	}
	tk := e.ticket(alice)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.g.Drain(ctx)
	}()
	for _, c := range conns {
		_, ce := closed(t, c, protocol.CloseServiceRestart, 10*time.Second)
		if !ce.Reconnect() {
			t.Errorf("1012 should be a reconnect code")
		}
	}
	<-done
	if ok, why := e.g.Ready(); ok || why != "draining" {
		t.Errorf("Ready() = %v %q while draining", ok, why)
	}
	if e.g.Connections() != 0 {
		t.Errorf("%d connections left after Drain", e.g.Connections())
	}
	_, resp, err := e.rawDial(t, "ticket="+tk, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade while draining: %v (%v), want 503", err, resp)
	}
}

// TestHardMaxConns: at the hard limit a new socket is closed with 1013.
func TestHardMaxConns(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.HardMaxConns = 2; c.SoftMaxConns = 1 })
	alice := e.user(1, "Alice")
	if ok, _ := e.g.Ready(); !ok {
		t.Fatal("not ready below the soft limit")
	}
	c1 := e.dial(alice)
	if ok, why := e.g.Ready(); ok || why == "" {
		t.Errorf("Ready() = %v %q at the soft limit", ok, why)
	}
	e.dial(alice)
	ws, _, err := e.rawDial(t, "ticket="+e.ticket(alice), nil)
	mustNoErr(t, err)
	if code := rawClose(t, ws); code != websocket.StatusTryAgainLater {
		t.Fatalf("close %d, want 1013", code)
	}
	c1.CloseNow()
	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 1 })
	e.dial(alice) // room again
	if got := e.metric(label("ocvr_gateway_connects_total", "result", "over_capacity")); got != 1 {
		t.Errorf("connects_total{over_capacity} = %v", got)
	}
}

// TestHardMaxConnsConcurrent: concurrent connects cannot overshoot the hard
// limit.
func TestHardMaxConnsConcurrent(t *testing.T) {
	const limit, dials = 5, 40
	e := newEnv(t, func(c *gateway.Config) { c.HardMaxConns = limit })
	alice := e.user(1, "Alice")
	tickets := make([]string, dials)
	for i := range tickets {
		tickets[i] = e.ticket(alice)
	}
	var (
		mu      sync.Mutex
		ok, try int
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for _, tk := range tickets {
		wg.Add(1)
		go func(tk string) {
			defer wg.Done()
			<-start
			_, err := e.dialTicket("", tk)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
				return
			}
			var ce *client.CloseError
			if !errors.As(err, &ce) || ce.Code != protocol.CloseTryAgainLater {
				t.Errorf("dial: %v, want ready or 1013", err)
			}
			try++
		}(tk)
	}
	close(start)
	wg.Wait()
	if ok > limit || e.g.Connections() > limit {
		t.Fatalf("%d connections opened (%d registered), limit %d", ok, e.g.Connections(), limit)
	}
	if ok != limit || try != dials-limit {
		t.Errorf("%d opened, %d told to try later; want %d and %d", ok, try, limit, dials-limit)
	}
}

// TestDrainRacingConnects: connections that open while a drain starts are
// closed too; Drain does not wait for its deadline.
func TestDrainRacingConnects(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.ReadinessDelay = 0; c.DrainWindow = time.Millisecond })
	alice := e.user(1, "Alice")
	tickets := make([]string, 60)
	for i := range tickets {
		tickets[i] = e.ticket(alice)
	}
	var wg sync.WaitGroup
	for _, tk := range tickets {
		wg.Add(1)
		go func(tk string) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := e.dialTicket("", tk)
			if err == nil {
				// Read until the drain closes it.
				for {
					if _, err := c.Next(ctx); err != nil {
						return
					}
				}
			}
		}(tk)
	}
	waitFor(t, 10*time.Second, func() bool { return e.g.Connections() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	start := time.Now()
	e.g.Drain(ctx)
	if ctx.Err() != nil || e.g.Connections() != 0 {
		t.Fatalf("Drain gave up after %v with %d connections open", time.Since(start), e.g.Connections())
	}
	wg.Wait()
}
