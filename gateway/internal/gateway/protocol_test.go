package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
)

func TestReadyFrame(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.HeartbeatInterval = 20 * time.Second })
	alice := e.user(7, "Alice")
	before := e.clock.Now().Unix()
	c := e.dial(alice)
	after := e.clock.Now().Unix()
	r := c.Ready
	if !strings.HasPrefix(r.ConnectionID, "conn_") || len(r.ConnectionID) < 10 {
		t.Errorf("connection_id %q", r.ConnectionID)
	}
	if r.UserID != 7 || r.SessionID != alice.sess.ID {
		t.Errorf("ready user/session = %d/%s, want 7/%s", r.UserID, r.SessionID, alice.sess.ID)
	}
	if r.HeartbeatInterval != 20000 {
		t.Errorf("heartbeat_interval %d, want 20000", r.HeartbeatInterval)
	}
	if r.ServerTime < before || r.ServerTime > after {
		t.Errorf("server_time %d not in [%d, %d]", r.ServerTime, before, after)
	}
	// Each connection has its own id.
	c2 := e.dial(alice)
	if c2.Ready.ConnectionID == r.ConnectionID {
		t.Errorf("two connections share id %s", r.ConnectionID)
	}
}

func TestHeartbeatAckServerTime(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(e.user(1, "Alice"))
	// The ack carries the (injected) server clock. Stay under the 75 s
	// silence limit: the sweeper runs on the advanced clock too.
	e.clock.Advance(30 * time.Second)
	before := e.clock.Now().Unix()
	mustNoErr(t, c.Heartbeat(context.Background()))
	f := expect(t, c, protocol.TypeHeartbeatAck)
	after := e.clock.Now().Unix()
	var a protocol.HeartbeatAck
	mustNoErr(t, f.Decode(&a))
	if a.ServerTime < before || a.ServerTime > after {
		t.Fatalf("server_time %d not in [%d, %d]", a.ServerTime, before, after)
	}
	// A heartbeat with an explicit empty or null data is a heartbeat too.
	for _, raw := range []string{`{"type":"heartbeat","data":{}}`, `{"type":"heartbeat","data":null}`, `{"type":"heartbeat","extra":1}`} {
		mustNoErr(t, c.SendRaw(context.Background(), []byte(raw)))
		expect(t, c, protocol.TypeHeartbeatAck)
	}
}

// TestChannelEventFrames: message_create, message_update and
// message_delete reach a subscriber as the exact bytes published, plus
// their stream position.
func TestChannelEventFrames(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	e.channel("ch_a", 1)
	c := e.dial(alice)
	subscribe(t, c, "ch_a")
	_, pub := e.backend()
	ctx := context.Background()
	cases := []struct {
		typ  string
		data any
	}{
		{protocol.TypeMessageCreate, msg("ch_a", 1)},
		{protocol.TypeMessageUpdate, protocol.MessageUpdate{ID: "msg_1", ChannelID: "ch_a", Content: "edited ✓", EditedAt: 1767225601}},
		{protocol.TypeMessageDelete, protocol.MessageDelete{ID: "msg_1", ChannelID: "ch_a"}},
	}
	for _, tc := range cases {
		mustNoErr(t, pub.PublishToChannel(ctx, "ch_a", tc.typ, tc.data, bus.Target{}))
		f := expect(t, c, tc.typ)
		if want := protocol.MustEncode(tc.typ, tc.data); !positionedOK(f.Raw, want, "ch_a") {
			t.Errorf("%s: got %s, want %s with its position", tc.typ, f.Raw, want)
		}
	}
}

// TestUserEventFrames: presence_update, notification and session_revoked
// published on the user subject reach every connection of that user, and
// no other user.
func TestUserEventFrames(t *testing.T) {
	e := newEnv(t, nil)
	a1 := e.dial(e.user(1, "Alice"))
	a2 := e.dial(e.user(1, "Alice"))
	bob := e.dial(e.user(2, "Bob"))
	_, pub := e.backend()
	ctx := context.Background()
	cases := []struct {
		typ  string
		data any
	}{
		{protocol.TypePresenceUpdate, protocol.PresenceUpdate{UserID: 2, Presence: protocol.PresenceOnline, StatusText: "in VR"}},
		{protocol.TypePresenceUpdate, protocol.PresenceUpdate{UserID: 2, Presence: protocol.PresenceOffline}},
		{protocol.TypeNotification, protocol.Notification{ID: "n_1", Type: "friend_request", Title: "Bob", Body: "wants to be friends", CreatedAt: 1767225600}},
	}
	for _, tc := range cases {
		mustNoErr(t, pub.PublishToUser(ctx, 1, tc.typ, tc.data, bus.Target{}))
		want := protocol.MustEncode(tc.typ, tc.data)
		for _, c := range []*clientConn{a1, a2} {
			if f := expect(t, c, tc.typ); !positionedOK(f.Raw, want, "") {
				t.Errorf("%s: got %s, want %s with its position", tc.typ, f.Raw, want)
			}
		}
	}
	quiet(t, bob, 200*time.Millisecond)

	// session_revoked without a session filter closes every connection of
	// the user, after delivering the frame.
	mustNoErr(t, pub.PublishToUser(ctx, 1, protocol.TypeSessionRevoked, protocol.SessionRevoked{Reason: "password_changed"}, bus.Target{}))
	for _, c := range []*clientConn{a1, a2} {
		frames, _ := closed(t, c, protocol.CloseSessionRevoked, 10*time.Second)
		if len(frames) != 1 || frames[0].Type != protocol.TypeSessionRevoked || !strings.Contains(string(frames[0].Data), "password_changed") {
			t.Fatalf("frames before 4003: %v", frames)
		}
	}
	alive(t, bob)
}

func TestErrorCodes(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.MaxSubscriptions = 2 })
	alice := e.user(1, "Alice")
	e.channel("ch_1", 1)
	e.channel("ch_2", 1)
	e.channel("ch_3", 1)
	e.channel("ch_bob", 2)
	c := e.dial(alice)
	ctx := context.Background()

	t.Run("INVALID_MESSAGE", func(t *testing.T) {
		mustNoErr(t, c.SendRaw(ctx, []byte(`{"type":"dance"}`)))
		expectError(t, c, protocol.CodeInvalidMessage, "")
		alive(t, c)
	})
	t.Run("CHANNEL_NOT_FOUND", func(t *testing.T) {
		mustNoErr(t, c.Subscribe(ctx, "ch_missing"))
		expectError(t, c, protocol.CodeChannelNotFound, "ch_missing")
		alive(t, c)
	})
	t.Run("NOT_MEMBER", func(t *testing.T) {
		mustNoErr(t, c.Subscribe(ctx, "ch_bob"))
		expectError(t, c, protocol.CodeNotMember, "ch_bob")
		alive(t, c)
	})
	t.Run("NOT_SUBSCRIBED unsubscribe", func(t *testing.T) {
		mustNoErr(t, c.Unsubscribe(ctx, "ch_1"))
		expectError(t, c, protocol.CodeNotSubscribed, "ch_1")
		alive(t, c)
	})
	t.Run("NOT_SUBSCRIBED typing", func(t *testing.T) {
		mustNoErr(t, c.Typing(ctx, "ch_1"))
		expectError(t, c, protocol.CodeNotSubscribed, "ch_1")
		alive(t, c)
	})
	t.Run("TOO_MANY_SUBSCRIPTIONS", func(t *testing.T) {
		subscribe(t, c, "ch_1")
		subscribe(t, c, "ch_2")
		mustNoErr(t, c.Subscribe(ctx, "ch_3"))
		expectError(t, c, protocol.CodeTooManySubscriptions, "ch_3")
		// Re-subscribing to a channel already held is not a new one.
		subscribe(t, c, "ch_2")
		// Freeing a slot allows a new subscription.
		mustNoErr(t, c.Unsubscribe(ctx, "ch_1"))
		expect(t, c, protocol.TypeUnsubscribed)
		subscribe(t, c, "ch_3")
		alive(t, c)
	})

	m := e.metrics()
	for code, want := range map[string]float64{
		protocol.CodeInvalidMessage: 1, protocol.CodeChannelNotFound: 1, protocol.CodeNotMember: 1,
		protocol.CodeNotSubscribed: 2, protocol.CodeTooManySubscriptions: 1,
	} {
		if got := m[label("ocvr_gateway_errors_total", "code", code)]; got != want {
			t.Errorf("errors_total{code=%s} = %v, want %v", code, got, want)
		}
	}
}

func TestRateLimited(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.FrameRate = 1
		c.FrameBurst = 3
		c.FloodLimit = 1000
	})
	c := e.dial(e.user(1, "Alice"))
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		mustNoErr(t, c.Heartbeat(ctx))
	}
	for i := 0; i < 3; i++ {
		expect(t, c, protocol.TypeHeartbeatAck)
	}
	// One RATE_LIMITED per episode, not one per refused frame.
	expectError(t, c, protocol.CodeRateLimited, "")
	quiet(t, c, 200*time.Millisecond)
	// Tokens refill with time; the connection stays open.
	e.clock.Advance(5 * time.Second)
	alive(t, c)
	if got := e.metric(label("ocvr_gateway_errors_total", "code", protocol.CodeRateLimited)); got != 1 {
		t.Errorf("errors_total{RATE_LIMITED} = %v", got)
	}
}
