package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/ticket"
)

// TestOrigin: a foreign Origin gets HTTP 403 and no socket (and its ticket
// is not consumed); an allowed one and no Origin at all connect.
func TestOrigin(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.AllowedOrigins = []string{"https://app.ocvr.example", "https://*.ocvr.example"}
	})
	alice := e.user(1, "Alice")
	origin := func(o string) http.Header {
		if o == "" {
			return nil
		}
		return http.Header{"Origin": {o}}
	}
	for _, o := range []string{"https://evil.example", "http://app.ocvr.example", "https://app.ocvr.example.evil.example", "null", "https://ocvr.example"} {
		t.Run("refused "+o, func(t *testing.T) {
			tk := e.ticket(alice)
			ws, resp, err := e.rawDial(t, "ticket="+tk, origin(o))
			if err == nil || ws != nil {
				t.Fatalf("upgrade from %s succeeded", o)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %v %v, want HTTP 403", resp, err)
			}
			// The ticket was not consumed: it still works without the origin.
			ws, _, err = e.rawDial(t, "ticket="+tk, nil)
			mustNoErr(t, err)
			if f := rawRead(t, ws); f.Type != protocol.TypeReady {
				t.Fatalf("got %s", f.Type)
			}
			ws.CloseNow()
		})
	}
	for _, o := range []string{"https://app.ocvr.example", "https://eu.ocvr.example", "HTTPS://APP.OCVR.EXAMPLE", ""} {
		t.Run("allowed "+o, func(t *testing.T) {
			ws, _, err := e.rawDial(t, "ticket="+e.ticket(alice), origin(o))
			mustNoErr(t, err)
			if f := rawRead(t, ws); f.Type != protocol.TypeReady {
				t.Fatalf("got %s", f.Type)
			}
		})
	}
	if got := e.metric(label("ocvr_gateway_connects_total", "result", "origin_rejected")); got != 5 {
		t.Errorf("connects_total{origin_rejected} = %v", got)
	}
}

// TestOriginDefaults: the default allowlist admits local development
// origins only.
func TestOriginDefaults(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	for o, ok := range map[string]bool{
		"http://localhost:3000": true, "http://127.0.0.1:5173": true, "http://localhost": true,
		"https://example.com": false, "http://localhost.evil.example": false,
	} {
		ws, resp, err := e.rawDial(t, "ticket="+e.ticket(alice), http.Header{"Origin": {o}})
		if ok && err != nil {
			t.Errorf("%s: %v", o, err)
		}
		if !ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("%s: want 403, got %v", o, err)
		}
		if ws != nil {
			ws.CloseNow()
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a concurrent log handler.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTicketsNeverLogged: after good and bad connects at debug level, no
// ticket (nor session token) is in the logs.
func TestTicketsNeverLogged(t *testing.T) {
	var buf syncBuffer
	e := newEnv(t, func(c *gateway.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.AllowedOrigins = []string{"https://app.ocvr.example"}
	})
	alice := e.user(1, "Alice")
	var secrets []string
	good := e.ticket(alice)
	secrets = append(secrets, good)
	c := e.dial0(t, good)
	alive(t, c)
	c.CloseNow()

	b := make([]byte, 32)
	_, _ = rand.Read(b)
	forged := ticket.Prefix + base64.RawURLEncoding.EncodeToString(b)
	for _, q := range []string{"ticket=" + good, "ticket=" + forged, "ticket=wst_short", "ticket=" + alice.token, "x=1&ticket=" + forged + "&y=2"} {
		ws, _, err := e.rawDial(t, q, nil)
		mustNoErr(t, err)
		if code := rawClose(t, ws); code != protocol.CloseInvalidTicket {
			t.Errorf("%s: close %d", q, code)
		}
	}
	// Refused origin, with a valid ticket in the URL.
	tk := e.ticket(alice)
	_, _, _ = e.rawDial(t, "ticket="+tk, http.Header{"Origin": {"https://evil.example"}})
	secrets = append(secrets, forged, tk, alice.token)
	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 0 })

	logs := buf.String()
	if !strings.Contains(logs, "connection opened") || !strings.Contains(logs, "connect refused") || !strings.Contains(logs, "origin rejected") {
		t.Fatalf("the logs do not show the connects:\n%s", logs)
	}
	for _, bad := range append(secrets, "wst_", "sess_", "ticket=") {
		if strings.Contains(logs, bad) {
			t.Errorf("logs contain %q:\n%s", bad, logs)
		}
	}
}

// TestMetricsAfterSession: /metrics reflects a scripted session.
func TestMetricsAfterSession(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1, 2)
	ctx := context.Background()
	c1, c2, c3 := e.dial(e.user(1, "Alice")), e.dial(e.user(2, "Bob")), e.dial(e.user(3, "Carol"))
	alive(t, c1)
	alive(t, c1)
	subscribe(t, c1, "ch_x")
	subscribe(t, c2, "ch_x")
	mustNoErr(t, c1.Typing(ctx, "ch_x"))
	expect(t, c2, protocol.TypeTypingStart)
	mustNoErr(t, c1.SendRaw(ctx, []byte(`{"type":"nope"}`)))
	expectError(t, c1, protocol.CodeInvalidMessage, "")
	mustNoErr(t, c2.Unsubscribe(ctx, "ch_y"))
	expectError(t, c2, protocol.CodeNotSubscribed, "ch_y")
	_, pub := e.backend()
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", 1)))
	expectSeq(t, c1, 1)
	expectSeq(t, c2, 1)
	mustNoErr(t, c3.Close())
	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 2 })

	m := e.metrics()
	want := map[string]float64{
		"ocvr_gateway_connections":                                              2,
		label("ocvr_gateway_connects_total", "result", "ok"):                    3,
		label("ocvr_gateway_ticket_redeems_total", "result", "ok"):              3,
		label("ocvr_gateway_disconnects_total", "code", "1000"):                 1,
		label("ocvr_gateway_frames_in_total", "type", "heartbeat"):              2,
		label("ocvr_gateway_frames_in_total", "type", "subscribe"):              2,
		label("ocvr_gateway_frames_in_total", "type", "typing"):                 1,
		label("ocvr_gateway_frames_in_total", "type", "unsubscribe"):            1,
		label("ocvr_gateway_frames_in_total", "type", "invalid"):                1,
		label("ocvr_gateway_frames_out_total", "type", "ready"):                 3,
		label("ocvr_gateway_frames_out_total", "type", "heartbeat_ack"):         2,
		label("ocvr_gateway_frames_out_total", "type", "subscribed"):            2,
		label("ocvr_gateway_frames_out_total", "type", "typing_start"):          1,
		label("ocvr_gateway_frames_out_total", "type", "error"):                 2,
		label("ocvr_gateway_frames_out_total", "type", "message_create"):        2,
		label("ocvr_gateway_errors_total", "code", protocol.CodeInvalidMessage): 1,
		label("ocvr_gateway_errors_total", "code", protocol.CodeNotSubscribed):  1,
		label("ocvr_gateway_errors_total", "code", protocol.CodeRateLimited):    0,
		"ocvr_gateway_subscriptions":                                            2,
		"ocvr_gateway_bus_subscriptions":                                        4, // users 1 and 2, broadcast, ch_x
		"ocvr_gateway_nats_connected":                                           1,
		"ocvr_gateway_draining":                                                 0,
		"ocvr_gateway_slow_consumer_disconnects_total":                          0,
		"ocvr_gateway_invalid_bus_payloads_total":                               0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("%s missing", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if m["ocvr_gateway_connections"] != float64(e.g.Connections()) {
		t.Errorf("connections gauge %v, Connections() %d", m["ocvr_gateway_connections"], e.g.Connections())
	}
	// Both message_create deliveries carried Ocvr-Published-At.
	if got := m["ocvr_gateway_delivery_latency_seconds_count"]; got < 2 {
		t.Errorf("delivery_latency_seconds_count = %v", got)
	}

	for path, code := range map[string]int{"/healthz": 200, "/readyz": 200, "/nope": 404} {
		rec := httptest.NewRecorder()
		e.g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != code {
			t.Errorf("%s: %d, want %d", path, rec.Code, code)
		}
	}
}

// TestReadyzUnready: /readyz fails with a reason while draining.
func TestReadyzUnready(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.g.Drain(ctx)
	rec := httptest.NewRecorder()
	e.g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "draining") {
		t.Errorf("/readyz: %d %s", rec.Code, rec.Body)
	}
	if got := e.metric("ocvr_gateway_draining"); got != 1 {
		t.Errorf("draining = %v", got)
	}
}

// TestNoGoroutineLeaks: once every connection is closed, whatever way, no
// goroutine it started is left.
func TestNoGoroutineLeaks(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1, 2)
	alice, bob := e.user(1, "Alice"), e.user(2, "Bob")
	_, pub := e.backend()
	tickets := make([]string, 12)
	for i := range tickets {
		tickets[i] = e.ticket(alice)
	}
	bobTicket := e.ticket(bob)
	// The publisher's first stream publish starts its connection's reply
	// subscription (nats.go's request mux), which lives as long as the
	// connection: start it before the snapshot.
	mustNoErr(t, pub.MessageCreated(context.Background(), msg("ch_warmup", 0)))
	// Let the server and client plumbing that predates the connections settle.
	opts := []goleak.Option{goleak.IgnoreCurrent()}

	ctx := context.Background()
	var conns []*client.Conn
	for _, tk := range tickets {
		c := e.dial0(t, tk)
		conns = append(conns, c)
	}
	b := e.dial0(t, bobTicket)
	for _, c := range append(conns, b) {
		subscribe(t, c, "ch_x")
	}
	mustNoErr(t, conns[0].Typing(ctx, "ch_x"))
	expect(t, b, protocol.TypeTypingStart)
	for i := 0; i < 20; i++ {
		mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", i)))
	}
	for i := 0; i < 20; i++ {
		expectSeq(t, b, i)
	}
	// Bad tickets, a too-big frame, a server-initiated close, client closes
	// with and without a handshake.
	for _, q := range []string{"ticket=wst_bad", "", "ticket=" + tickets[0]} {
		ws, _, err := e.rawDial(t, q, nil)
		mustNoErr(t, err)
		rawClose(t, ws)
	}
	_ = conns[1].SendRaw(ctx, bytes.Repeat([]byte("x"), 10000))
	closed(t, conns[1], protocol.CloseMessageTooBig, 10*time.Second)
	for i, c := range append(conns[2:], b) {
		if i%2 == 0 {
			_ = c.Close()
		} else {
			c.CloseNow()
		}
	}
	conns[0].CloseNow()
	waitFor(t, 10*time.Second, func() bool { return e.g.Connections() == 0 })
	goleak.VerifyNone(t, opts...)
	if got := e.metric("ocvr_gateway_subscriptions"); got != 0 {
		t.Errorf("subscriptions = %v after every connection closed", got)
	}
	if got := e.metric("ocvr_gateway_bus_subscriptions"); got != 0 {
		t.Errorf("bus_subscriptions = %v after every connection closed", got)
	}
}

// TestBuildInfoExported: /metrics says which build a pod runs
// (go_build_info{path,version,checksum} 1), for dashboards during rollouts.
func TestBuildInfoExported(t *testing.T) {
	e := newEnv(t, nil)
	for series, v := range e.metrics() {
		if strings.HasPrefix(series, "go_build_info{") && v == 1 {
			return
		}
	}
	t.Fatal("no go_build_info series on /metrics")
}
