package gateway_test

import (
	"context"
	"testing"

	"github.com/ocvr/realtime/pkg/protocol"
)

func TestSmokeSubscribeAndDeliver(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	e.channel("ch_general", 1)
	c := e.dial(alice)
	if c.Ready.UserID != 1 || c.Ready.SessionID != alice.sess.ID || c.Ready.HeartbeatInterval != 30000 {
		t.Fatalf("ready = %+v", c.Ready)
	}
	ctx := context.Background()
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, c, protocol.TypeHeartbeatAck)
	if err := c.Subscribe(ctx, "ch_general"); err != nil {
		t.Fatal(err)
	}
	expect(t, c, protocol.TypeSubscribed)
	msg := protocol.MessageCreate{ID: "msg_1", ChannelID: "ch_general", Author: protocol.Author{ID: 2, DisplayName: "Bob"}, Content: "hi", CreatedAt: 1767225600}
	if err := e.pub.MessageCreated(ctx, msg); err != nil {
		t.Fatal(err)
	}
	f := expect(t, c, protocol.TypeMessageCreate)
	want := protocol.MustEncode(protocol.TypeMessageCreate, msg)
	if !positionedOK(f.Raw, want, "ch_general") {
		t.Fatalf("got %s want %s with its position", f.Raw, want)
	}
}
