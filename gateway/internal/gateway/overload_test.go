package gateway

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/protocol"
)

// TestBusOverloadIsCounted: a pod that falls behind the bus (its dispatch
// shard full: here nothing drains it) loses messages only as NATS
// slow-consumer events, and every such event is counted in
// ocvr_gateway_bus_slow_consumer_events_total — overload is never silent,
// and what the shard holds is kept intact.
func TestBusOverloadIsCounted(t *testing.T) {
	ns := natsembed.Test(t)
	var gw atomic.Pointer[Gateway]
	nc, err := nats.Connect(ns.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
		if g := gw.Load(); g != nil {
			g.NATSAsyncError(s, err)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	g, err := New(Config{DispatchShards: 1}, nc) // not running: the shard is never drained
	if err != nil {
		t.Fatal(err)
	}
	gw.Store(g)
	subj, _ := g.subjects.Channel("ch_x")
	if _, err := g.hub.join(context.Background(), subj, protocol.ScopeChannel, "ch_x", heldConn(g, 1, "ses_a"), nil); err != nil {
		t.Fatal(err)
	}
	pub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	shard := g.hub.shards[0]
	payload := protocol.MustEncode(protocol.TypeMessageCreate, protocol.MessageCreate{ID: "m", ChannelID: "ch_x", Author: protocol.Author{ID: 2, DisplayName: "b"}, Content: "x", CreatedAt: 1764374400})
	for i := 0; i < cap(shard)+500; i++ {
		if err := pub.Publish(subj, payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	counted := func() float64 {
		var m dto.Metric
		_ = g.metrics.busDropped.Write(&m)
		return m.GetCounter().GetValue()
	}
	deadline := time.Now().Add(20 * time.Second)
	for counted() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("shard holds %d of %d, no slow-consumer event counted", len(shard), cap(shard))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every message is accounted for: held by the shard or dropped by the
	// NATS client (which reported it above), none silently lost.
	sub := g.hub.topic(subj).sub.Load()
	published := cap(shard) + 500
	for {
		n, err := sub.Dropped()
		if err != nil {
			t.Fatal(err)
		}
		if len(shard)+n == published {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard holds %d, NATS dropped %d: %d of %d messages unaccounted for", len(shard), n, published-len(shard)-n, published)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(shard) != cap(shard) {
		t.Fatalf("shard holds %d of %d messages", len(shard), cap(shard))
	}
}
