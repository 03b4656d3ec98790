package gateway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// dialErr dials u with a fresh ticket and returns the error (nil: the
// connection is open and registered for cleanup).
func (e *env) dialErr(t *testing.T, u user) (*client.Conn, error) {
	t.Helper()
	return e.dialTicket("", e.ticket(u))
}

// wantUserLimit checks err is the per-user cap's refusal: close 4010, not
// a reconnect code.
func wantUserLimit(t *testing.T, err error) {
	t.Helper()
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseTooManyConns {
		t.Fatalf("dial: %v, want close 4010", err)
	}
	if ce.Reconnect() {
		t.Errorf("4010 must not be a reconnect code")
	}
}

// TestPerUserConnectionCap: a user's connections over the cap are refused
// with 4010 (the new one; the open ones are kept and keep working), other
// users are unaffected, the refusal is counted, and a closed connection
// gives its slot back.
func TestPerUserConnectionCap(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxConnsPerUser = 3 })
	alice, bob := e.user(1, "Alice"), e.user(2, "Bob")
	var open []*client.Conn
	for i := 0; i < 3; i++ {
		open = append(open, e.dial(alice))
	}
	_, err := e.dialErr(t, alice)
	wantUserLimit(t, err)

	// The raw refusal: the upgrade completes (a browser can read the close
	// code, not an HTTP status) and the close carries the reason.
	ws, _, err := e.rawDial(t, "ticket="+e.ticket(alice), nil)
	mustNoErr(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err = ws.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseTooManyConns || ce.Reason != "too many connections" {
		t.Fatalf("raw refusal: %v, want close 4010 \"too many connections\"", err)
	}

	for _, c := range open {
		alive(t, c)
	}
	for i := 0; i < 3; i++ {
		e.dial(bob) // another user has slots of their own
	}
	if got := e.metric(label("ocvr_gateway_connects_total", "result", "user_limit")); got != 2 {
		t.Errorf("connects_total{user_limit} = %v, want 2", got)
	}
	if e.g.Connections() != 6 {
		t.Errorf("%d connections, want 6", e.g.Connections())
	}

	// A slot comes back when a connection closes, whichever side closes.
	open[0].CloseNow()
	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 5 })
	open[0] = e.dial(alice)
	_, err = e.dialErr(t, alice)
	wantUserLimit(t, err)
}

// TestPerUserCapConcurrent: concurrent connects of one user cannot
// overshoot the cap, and every slot is given back afterwards.
func TestPerUserCapConcurrent(t *testing.T) {
	const limit, dials = 4, 30
	e := newEnv(t, func(c *gateway.Config) { c.MaxConnsPerUser = limit })
	alice := e.user(1, "Alice")
	tickets := make([]string, dials)
	for i := range tickets {
		tickets[i] = e.ticket(alice)
	}
	var (
		mu       sync.Mutex
		opened   []*client.Conn
		refused  int
		wg       sync.WaitGroup
		start    = make(chan struct{})
		unwanted []error
	)
	for _, tk := range tickets {
		wg.Add(1)
		go func(tk string) {
			defer wg.Done()
			<-start
			c, err := e.dialTicket("", tk)
			mu.Lock()
			defer mu.Unlock()
			var ce *client.CloseError
			switch {
			case err == nil:
				opened = append(opened, c)
			case errors.As(err, &ce) && ce.Code == protocol.CloseTooManyConns:
				refused++
			default:
				unwanted = append(unwanted, err)
			}
		}(tk)
	}
	close(start)
	wg.Wait()
	for _, c := range opened {
		t.Cleanup(c.CloseNow)
	}
	if len(unwanted) > 0 {
		t.Fatalf("unexpected dial errors: %v", unwanted)
	}
	if len(opened) != limit || refused != dials-limit {
		t.Fatalf("%d opened, %d refused; want %d and %d", len(opened), refused, limit, dials-limit)
	}
	// Every way out gives the slot back: a client close with and without a
	// handshake, a frame too big (1009).
	_ = opened[0].Close()
	opened[1].CloseNow()
	_ = opened[2].SendRaw(context.Background(), make([]byte, 10000))
	closed(t, opened[2], protocol.CloseMessageTooBig, 10*time.Second)
	waitFor(t, 10*time.Second, func() bool { return e.g.Connections() == 1 })
	for i := 0; i < limit-1; i++ {
		e.dial(alice)
	}
	_, err := e.dialErr(t, alice)
	wantUserLimit(t, err)
}

// TestPerUserCapDefault: without configuration a user gets 16 connections
// per pod; the 17th is refused.
func TestPerUserCapDefault(t *testing.T) {
	if got := gateway.DefaultConfig().MaxConnsPerUser; got != 16 || gateway.DefaultMaxConnsPerUser != 16 {
		t.Fatalf("default per-user cap %d, documented 16", got)
	}
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	for i := 0; i < 16; i++ {
		e.dial(alice)
	}
	_, err := e.dialErr(t, alice)
	wantUserLimit(t, err)
	if got := e.metric(label("ocvr_gateway_connects_total", "result", "user_limit")); got != 1 {
		t.Errorf("connects_total{user_limit} = %v", got)
	}
}

// TestPerUserCapDisabled: a negative cap means no limit.
func TestPerUserCapDisabled(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxConnsPerUser = -1 })
	alice := e.user(1, "Alice")
	for i := 0; i < 20; i++ {
		e.dial(alice)
	}
}

// TestPerUserCapKeepsHardCapSlots: a socket refused for the user cap gives
// its pod admission slot back: the hard cap still admits other users up to
// its value.
func TestPerUserCapKeepsHardCapSlots(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxConnsPerUser = 1; c.HardMaxConns = 3 })
	alice := e.user(1, "Alice")
	e.dial(alice)
	for i := 0; i < 5; i++ {
		_, err := e.dialErr(t, alice)
		wantUserLimit(t, err)
	}
	e.dial(e.user(2, "Bob"))
	e.dial(e.user(3, "Carol"))
	ws, _, err := e.rawDial(t, "ticket="+e.ticket(e.user(4, "Dave")), nil)
	mustNoErr(t, err)
	if code := rawClose(t, ws); code != websocket.StatusTryAgainLater {
		t.Fatalf("close %d at the hard cap, want 1013", code)
	}
}

// TestAbortedHandshakeIsNotAnOutage is the regression test of a defect the
// soak found: a client that went away while its ticket was being redeemed
// was counted as connects_total{result="unavailable"} (the metric of the
// critical OCVRGatewayConnectsFailing alert) and logged at ERROR. It is
// now counted as "aborted" and logged at info; a redemption that fails
// while the client waits is still "unavailable".
func TestAbortedHandshakeIsNotAnOutage(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, func(c *gateway.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tk := e.ticket(e.user(1, "Alice"))
	e.ns.Stop() // redemption now waits for the store
	t.Cleanup(func() { _ = e.ns.Restart() })

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	mustNoErr(t, err)
	_, err = io.WriteString(conn, "GET /v1/ws?ticket="+tk+" HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	mustNoErr(t, err)
	time.Sleep(300 * time.Millisecond) // the handler is redeeming
	conn.Close()
	waitFor(t, 10*time.Second, func() bool {
		return e.metric(label("ocvr_gateway_connects_total", "result", "aborted")) == 1
	})
	if v := e.metric(label("ocvr_gateway_connects_total", "result", "unavailable")); v != 0 {
		t.Errorf("connects_total{unavailable} = %v for a client that left", v)
	}
	if v := e.metric(label("ocvr_gateway_ticket_redeems_total", "result", "aborted")); v != 1 {
		t.Errorf("ticket_redeems_total{aborted} = %v", v)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("an aborted handshake was logged as an error:\n%s", logs.String())
	}

	// A client that waits through the store's 5 s timeout still sees the
	// outage counted as one.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.wsURL+"?ticket="+tk, nil)
	if err != nil {
		t.Fatalf("the upgrade is refused with an HTTP error, want 1013 after it: %v", err)
	}
	if code := rawClose(t, ws); code != protocol.CloseTryAgainLater {
		t.Errorf("close %d while the store is unreachable, want 1013", code)
	}
	waitFor(t, 5*time.Second, func() bool {
		return e.metric(label("ocvr_gateway_connects_total", "result", "unavailable")) == 1
	})
}

// TestRedeemsInFlightAreBounded: past MaxRedeemsInFlight an upgrade is
// refused at once with 1013 and a retry hint, its ticket untouched (it
// connects later); the held ones complete; the refusal is counted.
func TestRedeemsInFlightAreBounded(t *testing.T) {
	const limit = 2
	e := newEnv(t, func(c *gateway.Config) { c.MaxRedeemsInFlight = limit })
	alice := e.user(1, "Alice")
	entered := make(chan struct{}, limit+1)
	release := make(chan struct{})
	gateway.SetRedeemHook(e.g, func() {
		entered <- struct{}{}
		<-release
	})
	errs := make(chan error, limit)
	for range limit {
		tk := e.ticket(alice)
		go func() {
			_, err := e.dialTicket("", tk)
			errs <- err
		}()
	}
	for range limit {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("redeems did not start")
		}
	}
	tk := e.ticket(alice)
	_, err := e.dialTicket("", tk)
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseTryAgainLater || !strings.HasSuffix(ce.Reason, "; retry_after=1") {
		t.Fatalf("dial over the cap: %v, want 1013 with retry_after=1", err)
	}
	if len(entered) != 0 {
		t.Fatal("the refused upgrade reached the redeem")
	}
	close(release)
	for range limit {
		mustNoErr(t, <-errs)
	}
	gateway.SetRedeemHook(e.g, nil)
	if _, err := e.dialTicket("", tk); err != nil {
		t.Fatalf("the refused upgrade's ticket: %v, want it still good", err)
	}
	if got := e.metric(label("ocvr_gateway_connects_total", "result", "busy")); got != 1 {
		t.Errorf("connects_total{busy} = %v, want 1", got)
	}
}

// TestRefusalsCarryRetryHints: every 1013 a client can meet says when to
// come back (the pod at its hard cap: 5 s, a moment's business: 1 s).
func TestRefusalsCarryRetryHints(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.HardMaxConns = 1 })
	alice := e.user(1, "Alice")
	e.dial(alice)
	_, err := e.dialErr(t, alice)
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseTryAgainLater || ce.Reason != "pod at connection limit; retry_after=5" {
		t.Fatalf("dial at the hard cap: %v", err)
	}
}
