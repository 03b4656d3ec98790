package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// pod is another gateway on the env's NATS server (a second replica).
type pod struct {
	g     *gateway.Gateway
	nc    *nats.Conn
	wsURL string
}

// pod starts another gateway connected to natsURL (the env's server, or a
// proxy in front of it), with the env's clock.
func (e *env) pod(t *testing.T, natsURL string, tweak func(*gateway.Config)) *pod {
	t.Helper()
	var gp atomic.Pointer[gateway.Gateway]
	nc, err := bus.Connect(bus.Config{URLs: []string{natsURL}, Name: "gateway-test-2", OnReconnect: func() {
		if g := gp.Load(); g != nil {
			g.NATSReconnected()
		}
	}})
	mustNoErr(t, err)
	t.Cleanup(nc.Close)
	cfg := gateway.Config{PodName: "test-2", Now: e.clock.Now, SweepInterval: 20 * time.Millisecond, ReadinessDelay: time.Millisecond, DrainWindow: 100 * time.Millisecond, NoRebalance: true}
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := gateway.New(cfg, nc)
	mustNoErr(t, err)
	gp.Store(g)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 5*time.Second, func() bool { ok, _ := g.Ready(); return ok })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return &pod{g: g, nc: nc, wsURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"}
}

// dialAt connects u to the gateway at wsURL.
func (e *env) dialAt(t *testing.T, wsURL string, u user) *client.Conn {
	t.Helper()
	c, err := e.dialTicket(wsURL, e.ticket(u))
	mustNoErr(t, err)
	return c
}

// proxy is a TCP proxy to NATS that a test can cut, to partition one pod
// from the bus while the rest of the system goes on.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustNoErr(t, err)
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// cut drops every proxied connection and refuses new ones until heal.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestTwoPods: with a second gateway on the same bus, events reach the
// subscribers of both pods exactly once and in order, typing skips the
// typer's devices on every pod, and a ticket is single-use across pods.
func TestTwoPods(t *testing.T) {
	e := newEnv(t, nil)
	p := e.pod(t, e.ns.ClientURL(), nil)
	e.channel("ch_x", 1, 2, 3)
	alice := e.user(1, "Alice")
	d1, d2 := e.dial(alice), e.dialAt(t, p.wsURL, alice)
	bob := e.dialAt(t, p.wsURL, e.user(2, "Bob"))
	carol := e.dial(e.user(3, "Carol"))
	all := []*client.Conn{d1, d2, bob, carol}
	for _, c := range all {
		subscribe(t, c, "ch_x")
	}
	_, pub := e.backend()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", i)))
	}
	for _, c := range all {
		for i := 0; i < 50; i++ {
			expectSeq(t, c, i)
		}
	}
	mustNoErr(t, d1.Typing(ctx, "ch_x"))
	alive(t, d1)                                             // the typing frame was handled
	mustNoErr(t, e.pub.MessageCreated(ctx, msg("ch_x", 50))) // ordered after the typing_start on d1's pod's connection
	for _, c := range []*client.Conn{bob, carol} {
		expect(t, c, "typing_start")
		expectSeq(t, c, 50)
	}
	for _, c := range []*client.Conn{d1, d2} {
		expectSeq(t, c, 50)
	}

	// Each ticket, redeemed on both pods at once, opens exactly one socket.
	for i := 0; i < 10; i++ {
		tk := e.ticket(alice)
		results := make(chan string, 2)
		for _, u := range []string{e.wsURL, p.wsURL} {
			go func(u string) {
				c, err := e.dialTicket(u, tk)
				if err != nil {
					results <- err.Error()
					return
				}
				c.CloseNow()
				results <- "ok"
			}(u)
		}
		r1, r2 := <-results, <-results
		if (r1 == "ok") == (r2 == "ok") {
			t.Fatalf("ticket redeemed on both pods or none: %q, %q", r1, r2)
		}
	}
}

// TestTypingThrottleIsClusterWide: a user typing from devices on two pods
// is forwarded once per window, not once per pod (DESIGN.md §2: one
// typing_start per user per channel per 3 s). Before, each pod throttled
// on its own and the channel saw one per pod.
func TestTypingThrottleIsClusterWide(t *testing.T) {
	e := newEnv(t, nil)
	p2 := e.pod(t, e.ns.ClientURL(), nil)
	e.channel("ch_x", 1, 2)
	alice := e.user(1, "Alice")
	d1, d2 := e.dial(alice), e.dialAt(t, p2.wsURL, alice)
	bob := e.dial(e.user(2, "Bob"))
	for _, c := range []*client.Conn{d1, d2, bob} {
		subscribe(t, c, "ch_x")
	}
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		mustNoErr(t, []*client.Conn{d1, d2}[i%2].Typing(ctx, "ch_x"))
	}
	alive(t, d1)
	alive(t, d2)
	expect(t, bob, protocol.TypeTypingStart)
	quiet(t, bob, 300*time.Millisecond)
	// The next window is open on both pods alike.
	e.clock.Advance(3 * time.Second)
	mustNoErr(t, d2.Typing(ctx, "ch_x"))
	expect(t, bob, protocol.TypeTypingStart)
	mustNoErr(t, d1.Typing(ctx, "ch_x"))
	quiet(t, bob, 300*time.Millisecond)
}
