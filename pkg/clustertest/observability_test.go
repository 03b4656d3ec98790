//go:build unix

package clustertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// want is one expected series value on one process's /metrics.
type want struct {
	name    string
	labels  []string // e.g. `code="4009"`; none: the sum over all series
	value   float64
	atLeast bool // value is a lower bound (counts that depend on timing)
}

func (w want) String() string {
	return fmt.Sprintf("%s{%s}", w.name, strings.Join(w.labels, ","))
}

func eq(name string, v float64, labels ...string) want {
	return want{name: name, labels: labels, value: v}
}
func ge(name string, v float64, labels ...string) want {
	return want{name: name, labels: labels, value: v, atLeast: true}
}

// expectMetrics polls p's /metrics until every expectation holds (counters
// are updated asynchronously: deliveries, presence, closes) and fails with
// every mismatch otherwise.
func expectMetrics(t *testing.T, p *clustertest.Process, wants []want) {
	t.Helper()
	var bad []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		bad = bad[:0]
		for _, w := range wants {
			got, err := p.Metric(w.name, w.labels...)
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("%s: %v", w, err))
			case w.atLeast && got < w.value:
				bad = append(bad, fmt.Sprintf("%s = %v, want >= %v", w, got, w.value))
			case !w.atLeast && got != w.value:
				bad = append(bad, fmt.Sprintf("%s = %v, want %v", w, got, w.value))
			}
		}
		if len(bad) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(bad) > 0 {
		t.Errorf("%s /metrics:\n  %s", p.Name, strings.Join(bad, "\n  "))
	}
}

// smallRcvBufClient's sockets have a 4 KiB receive buffer, so a client that
// stops reading pushes back on the server at once.
func smallRcvBufClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func httpStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestObservabilityScriptedSession runs a scripted session against real
// gateway and ticketsvc processes — connects (one refused ticket, one over
// the hard limit), subscribes, a heartbeat, client errors, events, an
// invalid bus payload, a slow client, a normal close, ticket requests that
// succeed, are unauthorized or rate limited, and a drain — and checks the
// values, not just the names, on each process's /metrics; the /readyz and
// /healthz answers along the way (soft limit, drain); and the JSON logs: one
// line per connection open and close with pod, reason and duration, and no
// ticket or session token anywhere.
func TestObservabilityScriptedSession(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{
		Gateways: 2,
		GatewayArgs: []string{
			"--soft-max-connections", "2", "--hard-max-connections", "2",
			"--presence-grace", "1s",
			"--queue-size", "16", "--socket-send-buffer", "4096",
			"--write-timeout", "5s", // the slow client's socket is dropped (and it goes offline) within it
			"--readiness-delay", "60s", // keeps the drained pod observable
		},
		TicketArgs: []string{"--rate-limit", "3"},
	})
	gw1, gw2, ts := c.Gateways[0], c.Gateways[1], c.Ticketsvcs[0]
	ctx := context.Background()
	ticketURL := c.TicketURLs()[0]
	c.Channel("ch_obs", 1, 2, 4)

	var secrets []string // every ticket and token of the session: never logged
	ticket := func(u clustertest.User) string {
		t.Helper()
		tk, err := client.GetTicket(ctx, nil, ticketURL, u.Token)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tk)
		return tk
	}
	dial := func(u clustertest.User, gw *clustertest.Process, o client.Options) *client.Conn {
		t.Helper()
		o.Heartbeat = -1 // heartbeats only where the script sends them
		conn, err := client.Dial(ctx, gw.WSURL(), ticket(u), o)
		if err != nil {
			t.Fatalf("dial %s as %s: %v", gw.Name, u.Name, err)
		}
		t.Cleanup(conn.CloseNow)
		return conn
	}
	user := func(id int64, name string) clustertest.User {
		u := c.NewUser(id, name)
		secrets = append(secrets, u.Token)
		return u
	}
	alice, bob, carol, slow, dave, erin := user(1, "Alice"), user(2, "Bob"), user(3, "Carol"), user(4, "Slow"), user(5, "Dave"), user(6, "Erin")

	// ticketsvc: a bad token (401), a 404, and a session over its rate
	// limit (3 per minute: 3 tickets, then 429).
	secrets = append(secrets, "sess_not-a-real-token")
	if _, err := client.GetTicket(ctx, nil, ticketURL, "sess_not-a-real-token"); !isHTTP(err, 401) {
		t.Fatalf("bad token: %v", err)
	}
	if code, _ := httpStatus(t, ticketURL+"/v1/nope"); code != 404 {
		t.Fatalf("unknown route: %d", code)
	}
	for i := 0; i < 3; i++ {
		ticket(erin)
	}
	if _, err := client.GetTicket(ctx, nil, ticketURL, erin.Token); !isHTTP(err, 429) {
		t.Fatalf("4th ticket of a session: %v", err)
	}

	// gateway-2: a malformed ticket is refused (4001) before anyone connects.
	if _, err := client.Dial(ctx, gw2.WSURL(), "wst_malformed", client.Options{Heartbeat: -1}); err == nil {
		t.Fatal("a malformed ticket connected")
	}

	// gateway-1: Alice and Carol reach the limits (soft 2: unready; hard 2:
	// Dave is refused with 1013).
	ca := clustertest.NewProbe(alice, dial(alice, gw1, client.Options{}))
	cc := dial(carol, gw1, client.Options{})
	if code, body := httpStatus(t, "http://"+gw1.Admin+"/readyz"); code != 503 || !strings.Contains(body, "soft connection limit") {
		t.Errorf("gateway-1 /readyz at its soft limit: %d %s", code, body)
	}
	var ce *client.CloseError
	if _, err := client.Dial(ctx, gw1.WSURL(), ticket(dave), client.Options{Heartbeat: -1}); !errors.As(err, &ce) || ce.Code != 1013 {
		t.Fatalf("a connect over the hard limit: %v, want close 1013", err)
	}
	// gateway-2: Bob, and a client that stops reading.
	cb := clustertest.NewProbe(bob, dial(bob, gw2, client.Options{}))
	cs := dial(slow, gw2, client.Options{HTTPClient: smallRcvBufClient(), Buffer: 1})

	ca.Subscribe(t, "ch_obs")
	cb.Subscribe(t, "ch_obs")
	mustOK(t, ca.Conn.Heartbeat(ctx))
	mustOK(t, ca.Conn.Subscribe(ctx, "ch_missing")) // CHANNEL_NOT_FOUND
	mustOK(t, cb.Conn.SendRaw(ctx, []byte(`{"type":"nope"}`)))
	clustertest.Eventually(t, 10*time.Second, "error frames", func() bool {
		return ca.Count(protocol.TypeError, protocol.CodeChannelNotFound) == 1 && cb.Count(protocol.TypeError, protocol.CodeInvalidMessage) == 1 &&
			ca.Count(protocol.TypeHeartbeatAck) == 1
	})

	// Three chat events and one invalid bus payload on ch_obs (both pods
	// subscribe to it).
	for i := 0; i < 3; i++ {
		mustOK(t, c.Publisher.MessageCreated(ctx, msg("ch_obs", fmt.Sprintf("obs%d", i))))
	}
	mustOK(t, c.NC.Publish("ocvr.channel.ch_obs", []byte("not a frame")))
	mustOK(t, c.NC.Flush())
	clustertest.Eventually(t, 10*time.Second, "the chat events", func() bool {
		return ca.Count(protocol.TypeMessageCreate) == 3 && cb.Count(protocol.TypeMessageCreate) == 3
	})

	// The slow client: user events it does not read overflow its queue
	// (4009: core publishes, without a stream position to catch up from).
	body := strings.Repeat("x", 2048)
	for i := 0; i < 400 && !closed(cs); i++ {
		mustOK(t, c.Publisher.Core().Notify(ctx, slow.ID, protocol.Notification{ID: fmt.Sprint("n", i), Type: "bulk", Title: "t", Body: body, CreatedAt: 1764417600}))
	}
	clustertest.Eventually(t, 15*time.Second, "the slow client closed", func() bool {
		n, _ := gw2.Metric("ocvr_gateway_slow_consumer_disconnects_total")
		return n == 1
	})

	// Carol leaves normally; gateway-1 is ready again under its soft limit.
	mustOK(t, cc.Close())
	clustertest.Eventually(t, 10*time.Second, "gateway-1 ready again", func() bool {
		ok, _ := gw1.Ready()
		return ok
	})

	expectMetrics(t, gw1, []want{
		eq("ocvr_gateway_connections", 1),
		eq("ocvr_gateway_connects_total", 2, `result="ok"`),
		eq("ocvr_gateway_connects_total", 1, `result="over_capacity"`),
		eq("ocvr_gateway_connects_total", 3),
		eq("ocvr_gateway_ticket_redeems_total", 2, `result="ok"`),
		eq("ocvr_gateway_ticket_redeems_total", 2),
		eq("ocvr_gateway_ticket_redeem_duration_seconds_count", 2),
		eq("ocvr_gateway_disconnects_total", 1, `code="1000"`),
		eq("ocvr_gateway_disconnects_total", 1),
		eq("ocvr_gateway_frames_in_total", 1, `type="heartbeat"`),
		eq("ocvr_gateway_frames_in_total", 2, `type="subscribe"`),
		eq("ocvr_gateway_frames_in_total", 3),
		eq("ocvr_gateway_frames_out_total", 2, `type="ready"`),
		eq("ocvr_gateway_frames_out_total", 1, `type="heartbeat_ack"`),
		eq("ocvr_gateway_frames_out_total", 1, `type="subscribed"`),
		eq("ocvr_gateway_frames_out_total", 1, `type="error"`),
		eq("ocvr_gateway_frames_out_total", 3, `type="message_create"`),
		eq("ocvr_gateway_frames_out_total", 8),
		eq("ocvr_gateway_errors_total", 1, `code="CHANNEL_NOT_FOUND"`),
		eq("ocvr_gateway_errors_total", 1),
		eq("ocvr_gateway_subscriptions", 1),
		eq("ocvr_gateway_bus_subscriptions", 3), // user 1, broadcast, ch_obs
		eq("ocvr_gateway_delivery_latency_seconds_count", 3),
		eq("ocvr_gateway_invalid_bus_payloads_total", 1),
		eq("ocvr_gateway_slow_consumer_disconnects_total", 0),
		eq("ocvr_gateway_bus_slow_consumer_events_total", 0),
		eq("ocvr_gateway_nats_connected", 1),
		eq("ocvr_gateway_nats_reconnects_total", 0),
		eq("ocvr_gateway_draining", 0),
		eq("ocvr_gateway_connection_limit", 2, `limit="soft"`),
		eq("ocvr_gateway_connection_limit", 2, `limit="hard"`),
	})
	expectMetrics(t, gw2, []want{
		eq("ocvr_gateway_connections", 1),
		eq("ocvr_gateway_connects_total", 2, `result="ok"`),
		eq("ocvr_gateway_connects_total", 1, `result="invalid_ticket"`),
		eq("ocvr_gateway_connects_total", 3),
		eq("ocvr_gateway_ticket_redeems_total", 2, `result="ok"`),
		eq("ocvr_gateway_ticket_redeems_total", 1, `result="malformed"`),
		eq("ocvr_gateway_disconnects_total", 1, `code="4009"`),
		eq("ocvr_gateway_disconnects_total", 1),
		eq("ocvr_gateway_frames_in_total", 1, `type="subscribe"`),
		eq("ocvr_gateway_frames_in_total", 1, `type="invalid"`),
		eq("ocvr_gateway_frames_in_total", 2),
		eq("ocvr_gateway_frames_out_total", 2, `type="ready"`),
		eq("ocvr_gateway_frames_out_total", 1, `type="subscribed"`),
		eq("ocvr_gateway_frames_out_total", 1, `type="error"`),
		eq("ocvr_gateway_frames_out_total", 3, `type="message_create"`),
		ge("ocvr_gateway_frames_out_total", 16, `type="notification"`), // the slow client's queue filled
		eq("ocvr_gateway_errors_total", 1, `code="INVALID_TICKET"`),
		eq("ocvr_gateway_errors_total", 1, `code="INVALID_MESSAGE"`),
		eq("ocvr_gateway_errors_total", 2),
		eq("ocvr_gateway_subscriptions", 1),
		eq("ocvr_gateway_bus_subscriptions", 3), // user 2, broadcast, ch_obs
		ge("ocvr_gateway_delivery_latency_seconds_count", 3),
		eq("ocvr_gateway_invalid_bus_payloads_total", 1),
		eq("ocvr_gateway_slow_consumer_disconnects_total", 1),
		eq("ocvr_gateway_nats_connected", 1),
		eq("ocvr_gateway_draining", 0),
	})
	// Presence: users 1-4 came online, Carol and Slow went offline after the
	// grace. Each transition is counted once, by the pod that announced it.
	clustertest.Eventually(t, 15*time.Second, "presence transitions", func() bool {
		return sumMetric(t, c.Gateways, "ocvr_gateway_presence_transitions_total", `presence="online"`) == 4 &&
			sumMetric(t, c.Gateways, "ocvr_gateway_presence_transitions_total", `presence="offline"`) == 2
	})

	const route = `url="/v1/auth/ws-ticket"`
	expectMetrics(t, ts, []want{
		eq("ocvr_ticketsvc_tickets_issued_total", 8), // Alice, Bob, Carol, Slow, Dave, Erin ×3
		eq("ocvr_ticketsvc_ticket_requests_total", 8, `result="ok"`),
		eq("ocvr_ticketsvc_ticket_requests_total", 1, `result="unauthorized"`),
		eq("ocvr_ticketsvc_ticket_requests_total", 1, `result="rate_limited"`),
		eq("ocvr_ticketsvc_ticket_requests_total", 0, `result="unavailable"`),
		eq("ocvr_ticketsvc_rate_limited_total", 1),
		eq("ocvr_ticketsvc_requests_total", 8, `code="200"`, route),
		eq("ocvr_ticketsvc_requests_total", 1, `code="401"`, route),
		eq("ocvr_ticketsvc_requests_total", 1, `code="429"`, route),
		eq("ocvr_ticketsvc_requests_total", 1, `code="404"`, `url=""`), // unmatched paths share one series
		eq("ocvr_ticketsvc_request_duration_seconds_count", 10, route),
		eq("ocvr_ticketsvc_nats_connected", 1),
		eq("ocvr_ticketsvc_nats_reconnects_total", 0),
		eq("ocvr_ticketsvc_rate_limiter_sessions", 6),
	})

	// Drain: SIGTERM makes gateway-2 unready at once and refuse upgrades,
	// while /healthz and /metrics keep answering.
	mustOK(t, gw2.Signal(syscall.SIGTERM))
	clustertest.Eventually(t, 5*time.Second, "gateway-2 draining", func() bool {
		n, _ := gw2.Metric("ocvr_gateway_draining")
		return n == 1
	})
	if code, body := httpStatus(t, "http://"+gw2.Admin+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("gateway-2 /readyz while draining: %d %s", code, body)
	}
	if code, _ := httpStatus(t, "http://"+gw2.Admin+"/healthz"); code != 200 {
		t.Errorf("gateway-2 /healthz while draining: %d", code)
	}
	if _, err := client.Dial(ctx, gw2.WSURL(), ticket(dave), client.Options{Heartbeat: -1}); err == nil {
		t.Error("a draining pod accepted a connection")
	}
	expectMetrics(t, gw2, []want{eq("ocvr_gateway_connects_total", 1, `result="draining"`)})
	for _, p := range []*clustertest.Process{gw1, ts} {
		if code, _ := httpStatus(t, "http://"+p.Admin+"/healthz"); code != 200 {
			t.Errorf("%s /healthz: %d", p.Name, code)
		}
		if ok, _ := p.Ready(); !ok {
			t.Errorf("%s not ready", p.Name)
		}
	}

	checkBoundedLabels(t, append(append([]*clustertest.Process{}, c.Gateways...), ts))
	checkConnectionLogs(t, gw1, map[string]int{"1000": 1}, 2)
	checkConnectionLogs(t, gw2, map[string]int{"4009": 1}, 2)
	for _, p := range []*clustertest.Process{gw1, gw2, ts} {
		log := p.Log()
		for _, s := range append(secrets, "ticket=") {
			if strings.Contains(log, s) {
				t.Errorf("%s log contains %q", p.Name, s)
			}
		}
	}
}

func isHTTP(err error, status int) bool {
	var he *client.HTTPError
	return errors.As(err, &he) && he.Status == status
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func closed(c *client.Conn) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

func sumMetric(t *testing.T, ps []*clustertest.Process, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
	for _, p := range ps {
		v, err := p.Metric(name, labels...)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// checkBoundedLabels: no label value on any /metrics page carries an id,
// ticket or token — only bounded values (types, codes, results, routes).
func checkBoundedLabels(t *testing.T, ps []*clustertest.Process) {
	t.Helper()
	labelValue := regexp.MustCompile(`(\w+)="([^"]*)"`)
	leaks := regexp.MustCompile(`wst_|sess_|ses_|conn_|ch_obs|ch_missing|Alice|Bob|Carol`)
	allowed := map[string]bool{"type": true, "code": true, "result": true, "presence": true, "limit": true, "le": true,
		"method": true, "url": true, "host": true, "quantile": true, "version": true,
		// continuity: bounded sets too (resume scope, catch-up reason, replay source, stream read op)
		"scope": true, "reason": true, "source": true, "op": true,
		// provisioning: the KV buckets and the event stream a binary opened (a fixed set)
		"stream": true,
		// compression: whether a connection negotiated permessage-deflate, bytes by wire encoding
		"negotiated": true, "encoding": true}
	for _, p := range ps {
		resp, err := http.Get("http://" + p.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(page), "\n") {
			if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "ocvr_") {
				continue
			}
			for _, m := range labelValue.FindAllStringSubmatch(line, -1) {
				if !allowed[m[1]] {
					t.Errorf("%s: unexpected label %s in %s", p.Name, m[1], line)
				}
				if leaks.MatchString(m[2]) {
					t.Errorf("%s: label value %q looks like an id: %s", p.Name, m[2], line)
				}
			}
		}
	}
}

// checkConnectionLogs: the process log is JSON lines; there is one
// "connection opened" line per connection and one "connection closed" line
// per close, each with the pod; closes carry code, reason and duration.
func checkConnectionLogs(t *testing.T, p *clustertest.Process, closes map[string]int, opens int) {
	t.Helper()
	nOpen := 0
	gotCloses := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(p.Log()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("%s: log line is not JSON: %q", p.Name, line)
			continue
		}
		if rec["level"] == nil || rec["msg"] == nil || rec["time"] == nil {
			t.Errorf("%s: log line without time, level or msg: %q", p.Name, line)
		}
		switch rec["msg"] {
		case "connection opened":
			nOpen++
			if rec["pod"] != p.Name || rec["conn"] == nil {
				t.Errorf("%s: open line without pod or conn: %q", p.Name, line)
			}
		case "connection closed":
			if rec["pod"] != p.Name || rec["reason"] == nil || rec["duration"] == nil || rec["code"] == nil {
				t.Errorf("%s: close line without pod, code, reason or duration: %q", p.Name, line)
				continue
			}
			if _, err := time.ParseDuration(fmt.Sprint(rec["duration"])); err != nil {
				t.Errorf("%s: close line duration %v: %v", p.Name, rec["duration"], err)
			}
			gotCloses[fmt.Sprint(rec["code"])]++
		}
	}
	if nOpen != opens {
		t.Errorf("%s: %d 'connection opened' lines, want %d", p.Name, nOpen, opens)
	}
	for code, n := range closes {
		if gotCloses[code] != n {
			t.Errorf("%s: %d 'connection closed' lines with code %s, want %d (all: %v)", p.Name, gotCloses[code], code, n, gotCloses)
		}
	}
}
