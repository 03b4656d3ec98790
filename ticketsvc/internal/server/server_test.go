package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/ticket"
)

func TestTicketIssuedAndRedeemable(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, sess := e.newSession(42, "Ada")

	for _, scheme := range []string{"Bearer", "bearer"} { // the scheme is case-insensitive
		r := e.do(http.MethodPost, e.base+TicketPath, nil, "Authorization", scheme+" "+token)
		data := r.ticket(t)
		if !ticket.Valid(data.Ticket) || data.ExpiresIn != 30 {
			t.Fatalf("got ticket %q expires_in %d; want a wst_ ticket and 30", data.Ticket, data.ExpiresIn)
		}
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", got)
		}
		if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id")
		}

		id, err := e.tickets.Redeem(context.Background(), data.Ticket)
		if err != nil {
			t.Fatalf("redeem: %v", err)
		}
		want := ticket.Identity{SessionID: sess.ID, UserID: 42, DisplayName: "Ada"}
		if id != want {
			t.Fatalf("redeemed identity %+v, want %+v", id, want)
		}
		if _, err := e.tickets.Redeem(context.Background(), data.Ticket); !errors.Is(err, ticket.ErrUnknown) {
			t.Fatalf("second redeem: %v, want ErrUnknown", err)
		}
	}
}

func TestUnauthorized(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Revoke flushes its session_revoked event, which needs a deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Expired: created by an auth service whose clock says it is two hours
	// ago, with a one-hour TTL, so the record is still in KV but past its
	// expiry.
	past := *e.sessions
	past.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, _, err := past.Create(ctx, 7, "Old", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	revoked, rs := e.newSession(8, "Gone")
	if err := e.sessions.Revoke(ctx, rs.ID, "logout"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	// Well-formed, never issued.
	unknown := "sess_" + strings.Repeat("A", 43)

	tests := []struct {
		name, auth, wantMsg string
	}{
		{"missing header", "", "missing bearer session token"},
		{"basic scheme", "Basic dXNlcjpwYXNz", "missing bearer session token"},
		{"bearer without token", "Bearer ", "missing bearer session token"},
		{"malformed token", "Bearer sess_short", "malformed session token"},
		{"ticket instead of session", "Bearer wst_" + strings.Repeat("A", 43), "malformed session token"},
		{"unknown token", "Bearer " + unknown, "unknown or revoked session"},
		{"expired session", "Bearer " + expired, "session expired"},
		{"revoked session", "Bearer " + revoked, "unknown or revoked session"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			r := e.do(http.MethodPost, e.base+TicketPath, nil, hdr...)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d body %s, want 401", r.status, r.body)
			}
			eb := r.errorBody(t)
			if eb.Code != CodeUnauthorized || eb.Message != tc.wantMsg {
				t.Fatalf("error %+v, want %s / %q", eb, CodeUnauthorized, tc.wantMsg)
			}
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if got := e.metric(`ocvr_ticketsvc_ticket_requests_total{result="unauthorized"}`); got != float64(len(tests)) {
		t.Errorf("unauthorized count %v, want %d", got, len(tests))
	}
	if got := e.metric("ocvr_ticketsvc_tickets_issued_total"); got != 0 {
		t.Errorf("tickets issued %v, want 0", got)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{}) // the default: 30 tickets per session per minute
	a, _ := e.newSession(1, "A")
	b, _ := e.newSession(2, "B")

	for i := range DefaultRateLimit {
		if r := e.postTicket(a); r.status != http.StatusOK {
			t.Fatalf("request %d: status %d body %s", i+1, r.status, r.body)
		}
	}
	r := e.postTicket(a)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("request 31: status %d, want 429", r.status)
	}
	if eb := r.errorBody(t); eb.Code != CodeRateLimited {
		t.Fatalf("error code %s, want %s", eb.Code, CodeRateLimited)
	}
	// 30 a minute refill one every 2 s; a little of it has already elapsed.
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q, want 1..2 seconds", r.header.Get("Retry-After"))
	}

	if r := e.postTicket(b); r.status != http.StatusOK {
		t.Fatalf("other session: status %d, want 200", r.status)
	}

	e.clock.Advance(2 * time.Second) // one token back
	if r := e.postTicket(a); r.status != http.StatusOK {
		t.Fatalf("after refill: status %d, want 200", r.status)
	}
	if r := e.postTicket(a); r.status != http.StatusTooManyRequests {
		t.Fatalf("after one refill token: status %d, want 429", r.status)
	}

	m := e.metrics()
	for series, want := range map[string]float64{
		"ocvr_ticketsvc_rate_limited_total":                           2,
		`ocvr_ticketsvc_ticket_requests_total{result="rate_limited"}`: 2,
		`ocvr_ticketsvc_ticket_requests_total{result="ok"}`:           DefaultRateLimit + 2,
		"ocvr_ticketsvc_tickets_issued_total":                         DefaultRateLimit + 2,
		"ocvr_ticketsvc_rate_limiter_sessions":                        2,
		`ocvr_ticketsvc_ticket_requests_total{result="unavailable"}`:  0,
		`ocvr_ticketsvc_ticket_requests_total{result="unauthorized"}`: 0,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
}

func TestRateLimitDisabled(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *Config) { c.RateLimit = 0 }})
	a, _ := e.newSession(1, "A")
	for i := range 40 {
		if r := e.postTicket(a); r.status != http.StatusOK {
			t.Fatalf("request %d: status %d", i+1, r.status)
		}
	}
}

func TestNATSOutageAndRecovery(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, sess := e.newSession(5, "Eve")
	e.postTicket(token).ticket(t)
	eventually(t, 10*time.Second, "ready", func() bool { return e.readyz().status == http.StatusOK })

	e.nats.Stop()
	var r response
	eventually(t, 10*time.Second, "503 while NATS is down", func() bool {
		r = e.postTicket(token)
		return r.status == http.StatusServiceUnavailable
	})
	if eb := r.errorBody(t); eb.Code != CodeUnavailable {
		t.Fatalf("error code %s, want %s", eb.Code, CodeUnavailable)
	}
	if r := e.readyz(); r.status != http.StatusServiceUnavailable || !bytes.Contains(r.body, []byte("nats not connected")) {
		t.Fatalf("readyz during outage: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, e.admin+"/healthz", nil); r.status != http.StatusOK {
		t.Fatalf("healthz during outage: %d", r.status)
	}
	if got := e.metric("ocvr_ticketsvc_nats_connected"); got != 0 {
		t.Errorf("nats_connected %v during outage", got)
	}

	if err := e.nats.Restart(); err != nil {
		t.Fatalf("restart NATS: %v", err)
	}
	var data TicketData
	eventually(t, 30*time.Second, "tickets after NATS restart", func() bool {
		r := e.postTicket(token)
		if r.status == http.StatusOK {
			data = r.ticket(t)
			return true
		}
		return false
	})
	eventually(t, 30*time.Second, "ready after NATS restart", func() bool { return e.readyz().status == http.StatusOK })
	var id ticket.Identity
	eventually(t, 30*time.Second, "redeem after restart", func() bool {
		var err error
		id, err = e.tickets.Redeem(context.Background(), data.Ticket)
		return err == nil
	})
	if id.SessionID != sess.ID {
		t.Fatalf("redeemed %+v, want session %s", id, sess.ID)
	}
	if got := e.metric("ocvr_ticketsvc_nats_connected"); got != 1 {
		t.Errorf("nats_connected %v after restart", got)
	}
	if got := e.metric("ocvr_ticketsvc_nats_reconnects_total"); got < 1 {
		t.Errorf("nats_reconnects_total %v, want ≥ 1", got)
	}
	if got := e.metric(`ocvr_ticketsvc_ticket_requests_total{result="unavailable"}`); got < 1 {
		t.Errorf("unavailable count %v, want ≥ 1", got)
	}
}

func TestStartsBeforeNATS(t *testing.T) {
	port, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	e := newEnv(t, envOptions{noNATS: true, config: func(c *Config) { c.NATSURLs = []string{url} }})

	if r := e.readyz(); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without NATS: %d %s", r.status, r.body)
	}
	r := e.postTicket("sess_" + strings.Repeat("A", 43))
	if r.status != http.StatusServiceUnavailable || r.errorBody(t).Code != CodeUnavailable {
		t.Fatalf("ticket without NATS: %d %s", r.status, r.body)
	}

	ns, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	// ticketsvc must create the buckets itself: nothing else has yet.
	eventually(t, 30*time.Second, "ready once NATS is up", func() bool { return e.readyz().status == http.StatusOK })

	e.connect(url)
	token, sess := e.newSession(9, "Late")
	e.postTicket(token).ticket(t)
	// The session service, added while NATS was down, answers too.
	if r := e.request("revoke", `{"session_id":"`+sess.ID+`"}`); r.Error != nil || string(r.Data) != `{"revoked":1}` {
		t.Fatalf("session service after NATS came up: data %s error %+v", r.Data, r.Error)
	}
}

func TestNATSRestartWithoutData(t *testing.T) {
	e := newEnv(t, envOptions{noStores: true})
	eventually(t, 10*time.Second, "ready", func() bool { return e.readyz().status == http.StatusOK })
	url := e.nats.ClientURL()
	e.nats.Stop()
	eventually(t, 10*time.Second, "unready", func() bool { return e.readyz().status != http.StatusOK })

	// A new, empty server on the same port: the buckets are gone.
	port, _ := strconv.Atoi(url[strings.LastIndexByte(url, ':')+1:])
	var ns *natsembed.Server
	eventually(t, 10*time.Second, "empty NATS on the old port", func() bool {
		var err error
		ns, err = natsembed.Start(natsembed.Options{Port: port, StoreDir: t.TempDir()})
		return err == nil
	})
	t.Cleanup(ns.Shutdown)
	eventually(t, 30*time.Second, "ready with recreated buckets", func() bool { return e.readyz().status == http.StatusOK })

	e.connect(url)
	token, _ := e.newSession(3, "Fresh")
	e.postTicket(token).ticket(t)
}

func TestCORS(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *Config) {
		c.AllowedOrigins = append(c.AllowedOrigins, "https://*.example.com")
	}})
	token, _ := e.newSession(11, "Web")

	preflight := func(origin string) response {
		return e.do(http.MethodOptions, e.base+TicketPath, nil,
			"Origin", origin,
			"Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization")
	}
	for _, origin := range []string{"http://localhost:5173", "http://127.0.0.1:3000", "http://localhost", "https://app.example.com"} {
		r := preflight(origin)
		if r.status != http.StatusNoContent {
			t.Errorf("%s: preflight status %d", origin, r.status)
		}
		if got := r.header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("%s: Access-Control-Allow-Origin %q", origin, got)
		}
		if got := r.header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
			t.Errorf("%s: Access-Control-Allow-Methods %q", origin, got)
		}
		if got := r.header.Get("Access-Control-Allow-Headers"); !strings.Contains(strings.ToLower(got), "authorization") {
			t.Errorf("%s: Access-Control-Allow-Headers %q", origin, got)
		}
	}
	for _, origin := range []string{"https://evil.example", "http://localhost.evil.example", "https://example.com", "http://app.example.com", "null"} {
		if got := preflight(origin).header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("foreign origin %s got Access-Control-Allow-Origin %q", origin, got)
		}
	}

	// The actual request: allowed, with the headers a script needs exposed.
	r := e.postTicket(token, "Origin", "http://localhost:5173")
	r.ticket(t)
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "http://localhost:5173" {
		t.Errorf("POST Access-Control-Allow-Origin %q", got)
	}
	if got := r.header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Retry-After") {
		t.Errorf("Access-Control-Expose-Headers %q lacks Retry-After", got)
	}
	// Errors carry CORS headers too, or the page could not read them.
	r = e.postTicket("", "Origin", "http://localhost:5173")
	if r.status != http.StatusUnauthorized || r.header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("401 from allowed origin: status %d, ACAO %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, _ := e.newSession(12, "Big")
	auth := []string{"Authorization", "Bearer " + token}

	tests := []struct {
		name   string
		body   io.Reader
		status int
	}{
		{"small body", strings.NewReader(strings.Repeat("x", 100)), http.StatusOK},
		{"exactly the limit", bytes.NewReader(make([]byte, DefaultBodyLimit)), http.StatusOK},
		{"over the limit", bytes.NewReader(make([]byte, DefaultBodyLimit+1)), http.StatusRequestEntityTooLarge},
		// No Content-Length: the limit applies while reading.
		{"chunked over the limit", io.MultiReader(strings.NewReader(strings.Repeat("x", 3000)), strings.NewReader(strings.Repeat("y", 3000))), http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodPost, e.base+TicketPath, tc.body, auth...)
			if r.status != tc.status {
				t.Fatalf("status %d body %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status == http.StatusRequestEntityTooLarge {
				if eb := r.errorBody(t); eb.Code != CodePayloadTooLarge {
					t.Fatalf("code %s", eb.Code)
				}
			}
		})
	}
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, TicketPath, http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{http.MethodPut, TicketPath, http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{http.MethodPost, "/v1/auth/nope", http.StatusNotFound, CodeNotFound},
		{http.MethodGet, "/", http.StatusNotFound, CodeNotFound},
	}
	for _, tc := range tests {
		r := e.do(tc.method, e.base+tc.path, nil)
		if r.status != tc.status || r.errorBody(t).Code != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := e.do(http.MethodGet, e.base+TicketPath, nil); !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Errorf("405 Allow header %q", r.header.Get("Allow"))
	}
}

func TestPanicRecovered(t *testing.T) {
	e := newEnv(t, envOptions{beforeRun: func(s *Server) {
		s.echo.GET("/test/panic", func(echo.Context) error { panic("boom") })
	}})
	r := e.do(http.MethodGet, e.base+"/test/panic", nil)
	if r.status != http.StatusInternalServerError || r.errorBody(t).Code != CodeInternal {
		t.Fatalf("panic: %d %s", r.status, r.body)
	}
	if bytes.Contains(r.body, []byte("boom")) {
		t.Errorf("panic detail leaked to the client: %s", r.body)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("500 without X-Request-Id")
	}
	token, _ := e.newSession(13, "After")
	e.postTicket(token).ticket(t) // still serving
	if !strings.Contains(e.logs.String(), "panic in handler") {
		t.Error("panic not logged")
	}
}

func TestMetricsAndRequestLogs(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, _ := e.newSession(14, "Metered")
	const issued = 3
	for range issued {
		e.postTicket(token).ticket(t)
	}
	e.postTicket("")
	r := e.postTicket(token, "X-Request-Id", "edge-1234.abc")
	if got := r.header.Get("X-Request-Id"); got != "edge-1234.abc" {
		t.Errorf("plain incoming request id not kept: %q", got)
	}
	// A token smuggled in as a request id must not be echoed or logged.
	r = e.postTicket(token, "X-Request-Id", token)
	if got := r.header.Get("X-Request-Id"); got == token || got == "" {
		t.Errorf("token request id: response id %q", got)
	}

	m := e.metrics()
	for series, want := range map[string]float64{
		"ocvr_ticketsvc_tickets_issued_total":                                                      issued + 2,
		`ocvr_ticketsvc_ticket_requests_total{result="ok"}`:                                        issued + 2,
		`ocvr_ticketsvc_ticket_requests_total{result="unauthorized"}`:                              1,
		"ocvr_ticketsvc_nats_connected":                                                            1,
		`ocvr_ticketsvc_requests_total{code="200",host="",method="POST",url="/v1/auth/ws-ticket"}`: issued + 2,
		`ocvr_ticketsvc_requests_total{code="401",host="",method="POST",url="/v1/auth/ws-ticket"}`: 1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (exposed %v), want %v", series, got, ok, want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "ocvr_ticketsvc_request_duration_seconds_count"} {
		found := false
		for series := range m {
			if strings.HasPrefix(series, name) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s not exposed", name)
		}
	}

	// One JSON line per request with the documented fields.
	var requests []map[string]any
	for _, l := range e.logs.lines(t) {
		if l["msg"] == "request" {
			requests = append(requests, l)
		}
	}
	if len(requests) != issued+3 {
		t.Fatalf("%d request log lines, want %d", len(requests), issued+3)
	}
	last := requests[len(requests)-1]
	for _, k := range []string{"method", "route", "status", "latency_ms", "request_id"} {
		if _, ok := last[k]; !ok {
			t.Errorf("request log lacks %q: %v", k, last)
		}
	}
	if last["request_id"] != r.header.Get("X-Request-Id") || last["route"] != TicketPath || last["status"] != float64(200) {
		t.Errorf("request log %v does not match the response (id %s)", last, r.header.Get("X-Request-Id"))
	}
	if requests[issued]["reason"] != "missing bearer session token" {
		t.Errorf("401 log line lacks its reason: %v", requests[issued])
	}
	e.assertNoSecretsInLogs()
}

func TestGracefulShutdown(t *testing.T) {
	ns := natsembed.Test(t)
	cfg := DefaultConfig()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.NATSURLs = []string{ns.ClientURL()}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv.echo.GET("/test/slow", func(c echo.Context) error {
		close(started)
		time.Sleep(300 * time.Millisecond)
		return c.String(http.StatusOK, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		r, err := http.Get("http://" + srv.Addr() + "/test/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		res <- result{r.StatusCode, string(b), err}
	}()
	<-started
	cancel() // SIGTERM, as far as Run can tell
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if r := <-res; r.err != nil || r.status != http.StatusOK || r.body != "done" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("public listener still accepting after Run returned")
	}
	if err := srv.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	base := DefaultConfig()
	base.Listen, base.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"no listen", func(c *Config) { c.Listen = "" }},
		{"negative rate limit", func(c *Config) { c.RateLimit = -1 }},
		{"zero body limit", func(c *Config) { c.BodyLimit = 0 }},
		{"bad origin", func(c *Config) { c.AllowedOrigins = []string{"http://a/b"} }},
		{"bad prefix", func(c *Config) { c.SubjectPrefix = "a.*" }},
		{"same buckets", func(c *Config) { c.TicketsBucket = c.SessionsBucket }},
		{"bad listen", func(c *Config) { c.Listen = "256.0.0.1:0" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			srv, err := New(cfg)
			if err == nil {
				srv.Close()
				t.Fatal("New accepted the config")
			}
		})
	}
	srv, err := New(base)
	if err != nil {
		t.Fatalf("New(defaults on port 0): %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestBuildInfoExported: /metrics says which build a pod runs.
func TestBuildInfoExported(t *testing.T) {
	e := newEnv(t, envOptions{})
	for series, v := range e.metrics() {
		if strings.HasPrefix(series, "go_build_info{") && v == 1 {
			return
		}
	}
	t.Fatal("no go_build_info series on /metrics")
}
