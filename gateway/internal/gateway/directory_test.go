package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// expectUnsubscribed waits (at most within) for unsubscribed{ch, reason}
// as the connection's next frame.
func expectUnsubscribed(t *testing.T, c *client.Conn, ch, reason string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("no unsubscribed{%s,%s} within %v: %v", ch, reason, within, err)
	}
	var u protocol.Unsubscribed
	if f.Type != protocol.TypeUnsubscribed || f.Decode(&u) != nil || u.ChannelID != ch || u.Reason != reason {
		t.Fatalf("got %s, want unsubscribed{%s,%s}", f.Raw, ch, reason)
	}
}

// TestMembershipRemoved: removing a membership ends that user's
// subscriptions on the pod with unsubscribed{removed} within 2 s.
func TestMembershipRemoved(t *testing.T) { onEachNATS(t, membershipRemoved) }

func membershipRemoved(t *testing.T, newE envFunc) {
	e := newE(t, nil)
	e.channel("ch_x", 1, 2)
	e.channel("ch_y", 1)
	a1, a2 := e.dial(e.user(1, "Alice")), e.dial(e.user(1, "Alice"))
	bob := e.dial(e.user(2, "Bob"))
	for _, c := range []*client.Conn{a1, a2, bob} {
		subscribe(t, c, "ch_x")
	}
	subscribe(t, a1, "ch_y")
	ctx := context.Background()
	mustNoErr(t, e.dir.RemoveMember(ctx, "ch_x", 1))
	expectUnsubscribed(t, a1, "ch_x", protocol.ReasonRemoved, 2*time.Second)
	expectUnsubscribed(t, a2, "ch_x", protocol.ReasonRemoved, 2*time.Second)

	_, pub := e.backend()
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", 1)))
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_y", 2)))
	expectSeq(t, bob, 1)
	expectSeq(t, a1, 2) // other subscriptions are untouched
	quiet(t, a2, 100*time.Millisecond)
	quiet(t, bob, 100*time.Millisecond)

	mustNoErr(t, a1.Subscribe(ctx, "ch_x"))
	expectError(t, a1, protocol.CodeNotMember, "ch_x")
	mustNoErr(t, a1.Unsubscribe(ctx, "ch_x"))
	expectError(t, a1, protocol.CodeNotSubscribed, "ch_x")
	// Re-added, the user can subscribe again.
	mustNoErr(t, e.dir.AddMember(ctx, "ch_x", 1))
	subscribe(t, a1, "ch_x")
	if got := e.metric("ocvr_gateway_subscriptions"); got != 3 {
		t.Errorf("subscriptions = %v, want 3", got)
	}
}

// TestChannelDeleted: deleting a channel ends every subscription to it with
// unsubscribed{deleted}, once.
func TestChannelDeleted(t *testing.T) { onEachNATS(t, channelDeleted) }

func channelDeleted(t *testing.T, newE envFunc) {
	e := newE(t, nil)
	e.channel("ch_x", 1, 2)
	a, bob := e.dial(e.user(1, "Alice")), e.dial(e.user(2, "Bob"))
	subscribe(t, a, "ch_x")
	subscribe(t, bob, "ch_x")
	ctx := context.Background()
	mustNoErr(t, e.dir.DeleteChannel(ctx, "ch_x"))
	for _, c := range []*client.Conn{a, bob} {
		expectUnsubscribed(t, c, "ch_x", protocol.ReasonDeleted, 2*time.Second)
		alive(t, c) // and nothing else (no second unsubscribed) came first
		mustNoErr(t, c.Subscribe(ctx, "ch_x"))
		expectError(t, c, protocol.CodeChannelNotFound, "ch_x")
	}
	waitFor(t, 2*time.Second, func() bool { return e.metric("ocvr_gateway_bus_subscriptions") == 3 }) // two user subjects, broadcast
}

// TestDirectoryAfterNATSRestart: after the NATS server restarts, the pod
// still sees membership removals within 2 s, and channel events flow again
// without any client action.
func TestDirectoryAfterNATSRestart(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1, 2)
	a, bob := e.dial(e.user(1, "Alice")), e.dial(e.user(2, "Bob"))
	subscribe(t, a, "ch_x")
	subscribe(t, bob, "ch_x")

	mustNoErr(t, e.ns.Restart())
	// A flush right after the restart can still go out on the old socket
	// (its loss not yet noticed) and fail with "connection closed": retry
	// until one round trip succeeds on the new connection, which also means
	// the re-sent subscriptions are in place.
	waitFor(t, 10*time.Second, func() bool { return e.nc.IsConnected() && e.nc.FlushTimeout(time.Second) == nil })
	waitFor(t, 10*time.Second, func() bool { ok, _ := e.g.Ready(); return ok })

	// The KV API may need a moment after the restart.
	var removedAt time.Time
	waitFor(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		removedAt = time.Now()
		return e.dir.RemoveMember(ctx, "ch_x", 1) == nil
	})
	expectUnsubscribed(t, a, "ch_x", protocol.ReasonRemoved, 2*time.Second)
	t.Logf("removal seen after %v", time.Since(removedAt).Round(time.Millisecond))

	_, pub := e.backend()
	for i := 0; i < 10; i++ {
		mustNoErr(t, pub.MessageCreated(context.Background(), msg("ch_x", i)))
	}
	for i := 0; i < 10; i++ {
		expectSeq(t, bob, i)
	}
	quiet(t, a, 100*time.Millisecond)
	alive(t, a)
	alive(t, bob)
}

// TestDirectoryAfterPartition: a pod cut off from NATS while a membership
// is removed sees the removal once it is back, even when its watcher had
// seen no directory change before (a pod started on a settled directory).
func TestDirectoryAfterPartition(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1, 2)
	e.channel("ch_y", 2)
	px := newProxy(t, strings.TrimPrefix(e.ns.ClientURL(), "nats://"))
	p := e.pod(t, px.URL(), nil) // started after the directory settled
	a, bob := e.dialAt(t, p.wsURL, e.user(1, "Alice")), e.dialAt(t, p.wsURL, e.user(2, "Bob"))
	subscribe(t, a, "ch_x")
	subscribe(t, bob, "ch_x")

	px.cut()
	waitFor(t, 5*time.Second, func() bool { return !p.nc.IsConnected() })
	mustNoErr(t, e.dir.RemoveMember(context.Background(), "ch_x", 1))

	// Meanwhile a subscribe cannot be authorized: UNAVAILABLE, socket kept.
	mustNoErr(t, bob.Subscribe(context.Background(), "ch_y"))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	f, err := bob.Next(ctx)
	mustNoErr(t, err)
	var pe protocol.Error
	if f.Type != protocol.TypeError || f.Decode(&pe) != nil || pe.Code != gateway.CodeUnavailable || pe.ChannelID != "ch_y" {
		t.Fatalf("subscribe while cut off: %s", f.Raw)
	}
	px.heal()
	waitFor(t, 10*time.Second, func() bool { return p.nc.IsConnected() })
	mustNoErr(t, p.nc.FlushTimeout(5*time.Second))
	expectUnsubscribed(t, a, "ch_x", protocol.ReasonRemoved, 3*time.Second)

	// Sockets survived the partition; events flow again.
	_, pub := e.backend()
	mustNoErr(t, pub.MessageCreated(context.Background(), msg("ch_x", 1)))
	expectSeq(t, bob, 1)
	alive(t, a)
}
