package gateway

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
)

// testGateway is a gateway on an embedded NATS, not running: enough for
// white-box tests of the hub and the connection queue.
func testGateway(t *testing.T, tweak func(*Config)) *Gateway {
	t.Helper()
	ns := natsembed.Test(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var cfg Config
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := New(cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// heldConn is a connection whose writer is held, so queued frames stay in
// its queue for inspection.
func heldConn(g *Gateway, user int64, session string) *conn {
	return &conn{env: g.env, userID: user, sessionID: session, subs: map[string]struct{}{}, writing: true}
}

func (c *conn) queued() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, f := range c.queue {
		out = append(out, string(f.data))
	}
	return out
}

// TestDispatchDropsStaleSubscription: after the last connection left a
// subject and another joined it again, a message from the old NATS
// subscription (still in flight) is not delivered: the new one delivers it.
func TestDispatchDropsStaleSubscription(t *testing.T) {
	g := testGateway(t, nil)
	ctx := context.Background()
	subj, _ := g.subjects.Channel("ch_x")
	c := heldConn(g, 1, "ses_a")
	if _, err := g.hub.join(ctx, subj, protocol.ScopeChannel, "ch_x", c, nil); err != nil {
		t.Fatal(err)
	}
	old := g.hub.topic(subj).sub.Load()
	g.hub.leave(subj, c)
	if _, err := g.hub.join(ctx, subj, protocol.ScopeChannel, "ch_x", c, nil); err != nil {
		t.Fatal(err)
	}
	cur := g.hub.topic(subj).sub.Load()
	if cur == nil || cur == old {
		t.Fatalf("no new subscription: %p %p", cur, old)
	}
	data := protocol.MustEncode(protocol.TypeMessageDelete, protocol.MessageDelete{ID: "m", ChannelID: "ch_x"})
	g.hub.dispatch(&nats.Msg{Subject: subj, Sub: old, Data: data})
	g.hub.dispatch(&nats.Msg{Subject: subj, Sub: cur, Data: data})
	if q := c.queued(); len(q) != 1 {
		t.Fatalf("queued %d copies, want 1: %q", len(q), q)
	}
}

// TestSubscribedNeverAfterRemoval: the subscribed acknowledgement is not
// queued once the subscription has been ended, and the subscriptions gauge
// follows every add and removal.
func TestSubscribedNeverAfterRemoval(t *testing.T) {
	g := testGateway(t, nil)
	c := heldConn(g, 1, "ses_a")
	frame := []byte(`{"type":"subscribed","data":{"channel_id":"ch_x"}}`)
	if !c.addSub("ch_x") || c.addSub("ch_x") {
		t.Fatal("addSub")
	}
	if !c.removeSub("ch_x") {
		t.Fatal("removeSub")
	}
	if c.enqueueIfSubscribed("ch_x", frame) {
		t.Fatal("subscribed queued after the subscription ended")
	}
	c.addSub("ch_x")
	c.addSub("ch_y")
	if !c.enqueueIfSubscribed("ch_x", frame) || len(c.queued()) != 1 {
		t.Fatal("subscribed not queued")
	}
	c.takeSubs()
	if c.removeSub("ch_x") {
		t.Fatal("removeSub after takeSubs")
	}
	if got := gaugeValue(t, g, "ocvr_gateway_subscriptions"); got != 0 {
		t.Fatalf("subscriptions gauge %v, want 0", got)
	}
}

func gaugeValue(t *testing.T, g *Gateway, name string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not found", name)
	return 0
}

// TestQueueOverflow: a bus event that finds the queue full marks the
// connection a slow consumer, drops the backlog and refuses further frames;
// the gateway's own frames (a heartbeat_ack) have a small reserve past the
// bound, so that a connection kept full by a catch-up is not cut for them.
func TestQueueOverflow(t *testing.T) {
	g := testGateway(t, func(c *Config) { c.QueueSize = 3 })
	c := heldConn(g, 1, "ses_a")
	for i := 0; i < 3; i++ {
		if !c.enqueueAt(outFrame{data: []byte("x")}) {
			t.Fatalf("frame %d refused", i)
		}
	}
	if !c.enqueue([]byte("ack")) {
		t.Fatal("the gateway's own frame refused within the reserve")
	}
	if c.enqueueAt(outFrame{data: []byte("x")}) {
		t.Fatal("event over the queue size accepted")
	}
	if q := c.queued(); len(q) != 0 {
		t.Fatalf("backlog kept: %d frames", len(q))
	}
	c.mu.Lock()
	code, closing := c.closeCode, c.closing
	c.mu.Unlock()
	if !closing || code != protocol.CloseSlowConsumer {
		t.Fatalf("closing %v code %d", closing, code)
	}
	if c.enqueue([]byte("x")) {
		t.Fatal("frame accepted after the overflow")
	}
}

// TestFilter: the header filters of a bus message.
func TestFilter(t *testing.T) {
	a1 := &conn{userID: 1, sessionID: "ses_a1"}
	a2 := &conn{userID: 1, sessionID: "ses_a2"}
	b := &conn{userID: 2, sessionID: "ses_b"}
	cases := []struct {
		name string
		f    filter
		want [3]bool
	}{
		{"none", filter{}, [3]bool{true, true, true}},
		{"exclude user", filter{excludeUser: 1}, [3]bool{false, false, true}},
		{"one session", filter{sessions: "ses_a2"}, [3]bool{false, true, false}},
		{"session list", filter{sessions: "ses_a1,ses_b"}, [3]bool{true, false, true}},
		{"session list with spaces", filter{sessions: " ses_a1 , ses_b "}, [3]bool{true, false, true}},
		{"no prefix match", filter{sessions: "ses_a"}, [3]bool{false, false, false}},
		{"empty items", filter{sessions: ",,"}, [3]bool{false, false, false}},
		{"except session", filter{exceptSession: "ses_a1"}, [3]bool{false, true, true}},
		{"all three", filter{excludeUser: 2, sessions: "ses_a1,ses_a2,ses_b", exceptSession: "ses_a2"}, [3]bool{true, false, false}},
	}
	for _, tc := range cases {
		for i, c := range []*conn{a1, a2, b} {
			if got := tc.f.pass(c); got != tc.want[i] {
				t.Errorf("%s: pass(%s) = %v, want %v", tc.name, c.sessionID, got, tc.want[i])
			}
		}
	}
}

// TestOriginMatcher: the Origin allowlist.
func TestOriginMatcher(t *testing.T) {
	m, err := newOriginMatcher([]string{"https://app.ocvr.example", "https://*.ocvr.example", "http://localhost:*", " HTTPS://Caps.Example ", ""})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"":                                  true, // non-browser client
		"https://app.ocvr.example":          true,
		"https://APP.ocvr.example":          true,
		"https://eu.ocvr.example":           true,
		"https://caps.example":              true,
		"http://localhost:3000":             true,
		"http://localhost":                  true, // ":*" is any port or none (pkg/origin, as ticketsvc's)
		"https://ocvr.example":              false,
		"https://a.b.ocvr.example":          true, // "*." is one label or more
		"https://app.ocvr.example:8443":     false,
		"http://app.ocvr.example":           false,
		"https://app.ocvr.example.evil.com": false,
		"https://evil.com/.ocvr.example":    false,
		"https://evil.com#.ocvr.example":    false,
		"https://evil.com?.ocvr.example":    false,
		"https://x@app.ocvr.example":        false,
		"https://app.ocvr.example/":         false,
		"https://app.ocvr.example:443":      false, // browsers omit the default port
		"https://.ocvr.example":             false,
		"http://localhost:":                 false,
		"null":                              false,
		"file://":                           false,
		"ws://app.ocvr.example":             false,
		"https://":                          false,
		"%zz":                               false,
	} {
		if got := m.allowed(origin); got != want {
			t.Errorf("allowed(%q) = %v, want %v", origin, got, want)
		}
	}
	for _, p := range []string{"https://[x", "https://app-*.ocvr.example", "https://app.ocvr.example/"} {
		if _, err := newOriginMatcher([]string{p}); err == nil {
			t.Errorf("the malformed pattern %q was accepted", p)
		}
	}
	all, _ := newOriginMatcher([]string{"*"})
	if !all.allowed("https://anything.example") {
		t.Error(`"*" should allow every origin`)
	}
}
