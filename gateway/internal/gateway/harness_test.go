package gateway_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// clock is an adjustable clock: real time plus an offset tests can advance.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// env is one gateway on a real embedded NATS, served on 127.0.0.1.
type env struct {
	t          testing.TB
	ns         *natsembed.Server  // the gateway's NATS server
	cluster    *natsembed.Cluster // newClusterEnv only
	backendURL string
	nc         *nats.Conn
	g          *gateway.Gateway
	srv        *httptest.Server
	wsURL      string
	clock      *clock
	sessions   *session.Store
	tickets    *ticket.Store
	dir        *directory.Store
	pub        *bus.Publisher
}

func newEnv(t testing.TB, tweak func(*gateway.Config)) *env {
	t.Helper()
	ns := natsembed.Test(t)
	e := &env{t: t, ns: ns, clock: &clock{}}
	e.start([]string{ns.ClientURL()}, ns.ClientURL(), tweak)
	return e
}

// newClusterEnv is newEnv on a 3-node JetStream cluster (R3 buckets): the
// gateway is connected to node 0 only, so stopping node 0 cuts it off; the
// backend (stores, publisher) to nodes 1 and 2.
func newClusterEnv(t testing.TB, tweak func(*gateway.Config)) *env {
	t.Helper()
	cl := natsembed.TestCluster(t, 3)
	e := &env{t: t, ns: cl.Servers[0], cluster: cl, clock: &clock{}}
	e.start([]string{cl.Servers[0].ClientURL()}, cl.Servers[1].ClientURL()+","+cl.Servers[2].ClientURL(), tweak)
	return e
}

func (e *env) start(gatewayURLs []string, backendURL string, tweak func(*gateway.Config)) {
	t := e.t
	e.backendURL = backendURL
	var gp atomic.Pointer[gateway.Gateway]
	onReconnect := func() {
		if g := gp.Load(); g != nil {
			g.NATSReconnected()
		}
	}
	var nc *nats.Conn
	var err error
	if e.cluster == nil {
		nc, err = bus.Connect(bus.Config{URLs: gatewayURLs, Name: "gateway-test", OnReconnect: onReconnect})
	} else {
		// Only ever node 0: a pod whose node stops is cut off, not moved
		// to a node it discovered.
		nc, err = nats.Connect(strings.Join(gatewayURLs, ","), nats.Name("gateway-test"), nats.IgnoreDiscoveredServers(),
			nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
			nats.ReconnectHandler(func(*nats.Conn) { onReconnect() }))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	// Rebalancing off: pods of one test would shed into each other as the
	// test moves its clock (rebalance_test.go turns it on).
	cfg := gateway.Config{PodName: "test", Now: e.clock.Now, SweepInterval: 20 * time.Millisecond, ReadinessDelay: time.Millisecond, DrainWindow: 100 * time.Millisecond, NoRebalance: true}
	// OCVR_TEST_READER_GOROUTINES=1 runs the suite in the reader-goroutine
	// mode (the non-Linux path) instead of on the epoll poller.
	cfg.ReaderGoroutines = os.Getenv("OCVR_TEST_READER_GOROUTINES") == "1"
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := gateway.New(cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	gp.Store(g)
	e.g = g
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 20*time.Second, func() bool { ok, _ := g.Ready(); return ok })

	e.srv = httptest.NewServer(g.Handler())
	t.Cleanup(e.srv.Close)
	e.wsURL = "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/ws"

	// The backend's stores and publisher on a connection of their own, as
	// a real backend's would be.
	bnc, err := nats.Connect(backendURL, nats.Name("backend-test"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bnc.Close)
	sub, _ := bus.NewSubjects("")
	// e.pub publishes on the pod's own NATS connection: what it publishes is
	// ordered after what the pod published (typing_start), which tests use
	// as a fence. The stores (and Revoke's session_revoked) use the backend's.
	e.pub = bus.NewPublisher(nc, sub)
	bg := context.Background()
	if e.sessions, err = session.Open(bg, bnc, "", bus.NewPublisher(bnc, sub)); err != nil {
		t.Fatal(err)
	}
	if e.tickets, err = ticket.Open(bg, bnc, ""); err != nil {
		t.Fatal(err)
	}
	if e.dir, err = directory.Open(bg, bnc); err != nil {
		t.Fatal(err)
	}
}

// user is a session of one user.
type user struct {
	id    int64
	name  string
	token string
	sess  session.Session
}

func (e *env) user(id int64, name string) user {
	e.t.Helper()
	tok, s, err := e.sessions.Create(context.Background(), id, name, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return user{id: id, name: name, token: tok, sess: s}
}

func (e *env) ticket(u user) string {
	e.t.Helper()
	tk, err := e.tickets.Mint(context.Background(), ticket.Identity{SessionID: u.sess.ID, UserID: u.id, DisplayName: u.name})
	if err != nil {
		e.t.Fatal(err)
	}
	return tk
}

// dialTicket is the one way the gateway tests open a socket with the
// protocol client: ticket tk, at wsURL (the env's gateway when ""). The
// connection is closed when the test ends.
func (e *env) dialTicket(wsURL, tk string) (*client.Conn, error) {
	if wsURL == "" {
		wsURL = e.wsURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, wsURL, tk, client.Options{Heartbeat: -1})
	if err == nil {
		e.t.Cleanup(c.CloseNow)
	}
	return c, err
}

// dial connects u to the env's gateway; the test fails if it cannot.
func (e *env) dial(u user) *client.Conn {
	e.t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := e.dialTicket("", e.ticket(u))
		var ce *client.CloseError
		if err != nil && e.cluster != nil && attempt < 5 && errors.As(err, &ce) && ce.Code == protocol.CloseTryAgainLater {
			// A young cluster may still be electing a stream leader, and
			// authorization reads are the leader's: try again, as clients do.
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if err != nil {
			e.t.Fatalf("dial: %v", err)
		}
		return c
	}
}

func (e *env) channel(id string, members ...int64) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.dir.CreateChannel(ctx, id); err != nil {
		e.t.Fatal(err)
	}
	for _, m := range members {
		if err := e.dir.AddMember(ctx, id, m); err != nil {
			e.t.Fatal(err)
		}
	}
}

// next returns the next frame or fails the test after timeout.
func next(t *testing.T, c *client.Conn) client.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("next frame: %v", err)
	}
	return f
}

// expect returns the next frame and checks its type.
func expect(t *testing.T, c *client.Conn, typ string) client.Frame {
	t.Helper()
	f := next(t, c)
	if f.Type != typ {
		t.Fatalf("got frame %s %s, want type %s", f.Type, f.Raw, typ)
	}
	return f
}

// quiet asserts no frame arrives within d.
func quiet(t *testing.T, c *client.Conn, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if f, err := c.Next(ctx); err == nil {
		t.Fatalf("unexpected frame %s", f.Raw)
	}
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// envFunc builds a test environment (newEnv, newClusterEnv).
type envFunc func(t testing.TB, tweak func(*gateway.Config)) *env

// onEachNATS runs an authorization test on one embedded server and on a
// 3-node JetStream cluster with R3 buckets, where a replica may lag: the
// gateway's authorization reads must hold on both.
func onEachNATS(t *testing.T, test func(t *testing.T, newE envFunc)) {
	t.Run("single", func(t *testing.T) { test(t, newEnv) })
	t.Run("3-node R3", func(t *testing.T) { test(t, newClusterEnv) })
}

// settle waits, on a cluster, for a subscription the gateway just made on
// its node to be known to the backend's nodes: interest crosses the
// cluster's routes asynchronously, so an event published on another node
// right after "subscribed" may find no interest there yet. (On one server
// "subscribed" is enough.)
func (e *env) settle() {
	if e.cluster != nil {
		time.Sleep(100 * time.Millisecond)
	}
}
