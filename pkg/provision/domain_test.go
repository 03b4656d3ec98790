package provision_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/stream"
	"github.com/ocvr/realtime/pkg/ticket"
	"github.com/ocvr/realtime/pkg/typing"
)

// hubAndLeaf starts a hub server with JetStream domain "hub" and a leaf
// server with its own JetStream (domain "leaf") connected to it as a
// leafnode, as a gateway's local NATS at the edge would be.
func hubAndLeaf(t *testing.T) (hub, leaf *natsembed.Server) {
	t.Helper()
	var leafPort int
	var err error
	for attempt := 1; ; attempt++ {
		// The free port may be taken before the hub binds it (go test runs
		// packages in parallel): then again on another.
		if leafPort, err = natsembed.FreePort("127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		hub, err = natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), JetStreamDomain: "hub", Configure: func(o *server.Options) {
			o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", leafPort
		}})
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Shutdown)
	remote, _ := url.Parse("nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort))
	leaf, err = natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), JetStreamDomain: "leaf", Configure: func(o *server.Options) {
		o.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{remote}}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leaf.Shutdown)
	deadline := time.Now().Add(10 * time.Second)
	for leaf.NATS().NumLeafNodes() == 0 || hub.NATS().NumLeafNodes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the leafnode did not connect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return hub, leaf
}

// TestDomainAcrossLeafnode: a process connected to a leaf server opens
// every store and the event stream in the hub's domain — they are created
// on the hub, none on the leaf — and uses them: tickets minted and
// redeemed, sessions verified from the leader, typing windows written
// (the throttle publishes KV writes itself), presence read from the
// leader, an event published on the hub read back through the stream
// reader. Without the domain the same calls would use the leaf's own
// JetStream.
func TestDomainAcrossLeafnode(t *testing.T) {
	hub, leaf := hubAndLeaf(t)
	connect := func(s *natsembed.Server) *nats.Conn {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	edge, central := connect(leaf), connect(hub)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dctx := provision.WithDomain(ctx, "hub")

	tickets, err := ticket.Open(dctx, edge, "")
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.Open(dctx, edge, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := directory.Open(dctx, edge)
	if err != nil {
		t.Fatal(err)
	}
	pres, err := presence.Open(dctx, edge, "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	throttle, err := typing.Open(dctx, edge, "")
	if err != nil {
		t.Fatal(err)
	}
	scfg := stream.Config{Domain: "hub"}
	if _, err := stream.Ensure(ctx, edge, scfg); err != nil {
		t.Fatal(err)
	}

	// Every asset is on the hub, none on the leaf.
	hubJS, _ := jetstream.New(central)
	leafJS, _ := jetstream.New(edge)
	for _, name := range []string{"KV_ocvr_tickets", "KV_ocvr_sessions", "KV_ocvr_channels", "KV_ocvr_members", "KV_ocvr_friends", "KV_ocvr_presence", "KV_ocvr_typing", "OCVR_EVENTS"} {
		if _, err := hubJS.Stream(ctx, name); err != nil {
			t.Errorf("%s not on the hub: %v", name, err)
		}
		if _, err := leafJS.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("%s on the leaf too (%v)", name, err)
		}
	}

	tok, s, err := sessions.Create(ctx, 42, "Ada", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sessions.Verify(ctx, tok); err != nil || got.ID != s.ID {
		t.Fatalf("Verify through the leaf: %v", err)
	}
	tk, err := tickets.Mint(ctx, ticket.Identity{UserID: 42, SessionID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := tickets.Redeem(ctx, tk); err != nil || id.UserID != 42 {
		t.Fatalf("Redeem through the leaf: %v %v", id, err)
	}
	if ok, err := throttle.Allow(ctx, "ch_1", 42); err != nil || !ok {
		t.Fatalf("typing Allow through the leaf: %v %v", ok, err)
	}
	if ok, err := throttle.Allow(ctx, "ch_1", 42); err != nil || ok {
		t.Fatalf("second typing Allow in the window: %v %v (the window was not written on the hub)", ok, err)
	}
	if err := pres.SetStatus(ctx, 42, "here"); err != nil {
		t.Fatal(err)
	}
	if p, err := pres.Get(ctx, 42); err != nil || p.StatusText != "here" {
		t.Fatalf("presence through the leaf: %+v %v", p, err)
	}

	// An event published on the hub, read back at the edge.
	hubOld, _ := jetstream.New(central)
	ack, err := hubOld.Publish(ctx, stream.InputChannel("ocvr", "ch_1"), []byte(`{"type":"x","data":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := stream.NewReader(edge, scfg)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := r.At(ctx, ack.Sequence)
	if err != nil || string(ev.Data) != `{"type":"x","data":{}}` {
		t.Fatalf("stream read through the leaf: %+v %v", ev, err)
	}
}
