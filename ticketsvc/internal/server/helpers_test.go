package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// testClock is the server's clock in tests: real time plus an offset the
// test moves forward instead of sleeping.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes every JSON log line.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// env is one ticketsvc running in-process against a real embedded NATS,
// plus the test's own connection and stores (the platform's auth service
// and a gateway, as far as ticketsvc can tell).
type env struct {
	t        *testing.T
	nats     *natsembed.Server
	srv      *Server
	clock    *testClock
	logs     *syncBuffer
	client   *http.Client
	base     string // http://public
	admin    string // http://admin
	nc       *nats.Conn
	sessions *session.Store
	tickets  *ticket.Store
}

type envOptions struct {
	config    func(*Config)
	beforeRun func(*Server)
	noNATS    bool // the caller starts NATS itself (config must set NATSURLs)
	noStores  bool // do not open the test-side stores (they would create the buckets)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, clock: &testClock{}, logs: &syncBuffer{}, client: &http.Client{Timeout: 15 * time.Second}}
	cfg := DefaultConfig()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Now = e.clock.Now
	cfg.ShutdownTimeout = 5 * time.Second
	if !o.noNATS {
		e.nats = natsembed.Test(t)
		cfg.NATSURLs = []string{e.nats.ClientURL()}
	}
	if o.config != nil {
		o.config(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	e.base, e.admin = "http://"+srv.Addr(), "http://"+srv.AdminAddr()
	if o.beforeRun != nil {
		o.beforeRun(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
		e.assertNoSecretsInLogs()
	})
	if !o.noNATS {
		// ticketsvc opens its stores in the background; tests start from a
		// ready service, as a load balancer would.
		eventually(t, 15*time.Second, "ticketsvc ready", func() bool { return e.readyz().status == http.StatusOK })
		if !o.noStores {
			e.connect(e.nats.ClientURL())
		}
	}
	return e
}

// connect opens the test side: a NATS connection that survives restarts
// and the session and ticket stores on it.
func (e *env) connect(url string) {
	t := e.t
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("test connect: %v", err)
	}
	t.Cleanup(nc.Close)
	subjects, err := bus.NewSubjects("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if e.sessions, err = session.Open(ctx, nc, "", bus.NewPublisher(nc, subjects)); err != nil {
		t.Fatalf("open sessions: %v", err)
	}
	if e.tickets, err = ticket.Open(ctx, nc, ""); err != nil {
		t.Fatalf("open tickets: %v", err)
	}
	e.nc = nc
}

// newSession creates a session as the platform's auth service would.
func (e *env) newSession(userID int64, name string) (string, session.Session) {
	e.t.Helper()
	token, sess, err := e.sessions.Create(context.Background(), userID, name, time.Hour)
	if err != nil {
		e.t.Fatalf("create session: %v", err)
	}
	return token, sess
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorBody(t *testing.T) ErrorBody {
	t.Helper()
	var eb ErrorResponse
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error.Code == "" {
		t.Fatalf("status %d: body %q is not a JSON error (%v)", r.status, r.body, err)
	}
	return eb.Error
}

func (r response) ticket(t *testing.T) TicketData {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s; want 200", r.status, r.body)
	}
	var tr TicketResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatalf("decode ticket response %q: %v", r.body, err)
	}
	return tr.Data
}

// do sends a request; headers are name, value pairs.
func (e *env) do(method, url string, body io.Reader, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// postTicket asks for a ticket with the session token (no header when empty).
func (e *env) postTicket(token string, headers ...string) response {
	e.t.Helper()
	if token != "" {
		headers = append(headers, "Authorization", "Bearer "+token)
	}
	return e.do(http.MethodPost, e.base+TicketPath, nil, headers...)
}

func (e *env) readyz() response {
	e.t.Helper()
	return e.do(http.MethodGet, e.admin+"/readyz", nil)
}

// eventually polls cond until it holds or the deadline passes: restarts and
// reconnects take as long as they take, never a fixed sleep.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metrics scrapes /metrics into series → value, the series written exactly
// as exposed, e.g. ocvr_ticketsvc_ticket_requests_total{result="ok"}.
func (e *env) metrics() map[string]float64 {
	e.t.Helper()
	r := e.do(http.MethodGet, e.admin+"/metrics", nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("/metrics: status %d", r.status)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(r.body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			e.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func (e *env) metric(series string) float64 {
	e.t.Helper()
	v, ok := e.metrics()[series]
	if !ok {
		e.t.Fatalf("metric %s not exposed", series)
	}
	return v
}

// assertNoSecretsInLogs runs after every test: no token or ticket may ever
// reach a log line.
func (e *env) assertNoSecretsInLogs() {
	logs := e.logs.String()
	for _, secret := range []string{session.TokenPrefix, ticket.Prefix, "Bearer", "Authorization"} {
		if strings.Contains(logs, secret) {
			e.t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
}
