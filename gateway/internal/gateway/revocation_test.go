package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
)

// Revocation is durable: "log out everywhere" closes every socket of the
// session with 4003 even when the one session_revoked message on the bus
// never reaches it. Each sequence below lost the socket's revocation
// before (the gateway checked the session once, at redeem); all run on a
// 3-node JetStream cluster with R3 buckets.

// revokedWithin waits until c is closed with 4003 after a session_revoked.
func revokedWithin(t *testing.T, c *client.Conn, d time.Duration) {
	t.Helper()
	frames, _ := closed(t, c, protocol.CloseSessionRevoked, d)
	if len(frames) == 0 || frames[len(frames)-1].Type != protocol.TypeSessionRevoked {
		t.Fatalf("closed with 4003 after %d frames, the last not session_revoked", len(frames))
	}
}

// TestRevocationBetweenRedeemAndJoin: the revocation lands after the
// redeem's session check and before the connection joins its user
// subject, so its session_revoked reaches nobody.
func TestRevocationBetweenRedeemAndJoin(t *testing.T) {
	e := newClusterEnv(t, nil)
	u := e.user(1, "Alice")
	gateway.SetUserJoinHook(e.g, func(func()) {
		mustNoErr(t, e.sessions.Revoke(context.Background(), u.sess.ID, "logout_all"))
	})
	c := e.dial(u)
	revokedWithin(t, c, 5*time.Second)
}

// TestRevocationWhileCutOffFromNATS: the pod is cut off from NATS (its
// node stops; sockets are kept through an outage by design) when the
// session is revoked; once NATS is reachable again the socket is closed.
func TestRevocationWhileCutOffFromNATS(t *testing.T) {
	e := newClusterEnv(t, nil)
	u := e.user(1, "Alice")
	c := e.dial(u)
	other := e.dial(e.user(2, "Bob"))
	e.ns.Stop()
	mustNoErr(t, e.sessions.Revoke(context.Background(), u.sess.ID, "logout_all"))
	time.Sleep(500 * time.Millisecond)
	mustNoErr(t, e.ns.Restart())
	revokedWithin(t, c, 15*time.Second)
	alive(t, other)
}

// TestRevocationWhenTheBusDropsIt: the pod's dispatcher is stuck (its
// buffer overflows and NATS drops the user's messages, session_revoked
// among them); the socket is closed all the same.
func TestRevocationWhenTheBusDropsIt(t *testing.T) {
	hold := make(chan struct{})
	e := newClusterEnv(t, func(c *gateway.Config) { c.DispatchShards, c.DispatchBuffer = 1, 4 })
	u := e.user(1, "Alice")
	c := e.dial(u)
	gateway.SetDispatchHook(e.g, func() { <-hold })
	t.Cleanup(func() { close(hold) })
	nc, _ := e.backend()
	for i := 0; i < 64; i++ { // the first blocks the dispatcher, the buffer fills, the rest are dropped
		mustNoErr(t, nc.Publish("ocvr.user.1", []byte(`{"type":"notification","data":{}}`)))
	}
	mustNoErr(t, nc.Flush())
	mustNoErr(t, e.sessions.Revoke(context.Background(), u.sess.ID, "logout_all"))
	revokedWithin(t, c, 10*time.Second)
}

// TestRevokedSessionRefusedOnEveryNode: a ticket minted before its
// session's revocation is refused right after it, whichever node the
// gateway reads from: the redeem's session check reads from the stream's
// leader, never a replica that may lag.
func TestRevokedSessionRefusedOnEveryNode(t *testing.T) {
	e := newClusterEnv(t, nil)
	for i := 0; i < 30; i++ {
		u := e.user(int64(i+1), "U")
		tk := e.ticket(u)
		mustNoErr(t, e.sessions.Revoke(context.Background(), u.sess.ID, "logout"))
		c, err := e.dialTicket("", tk)
		for try := 0; try < 10; try++ {
			// A young cluster may still be electing a bucket's leader:
			// 1013 is the documented "try again", as clients do.
			var ce *client.CloseError
			if !errors.As(err, &ce) || ce.Code != protocol.CloseTryAgainLater {
				break
			}
			time.Sleep(500 * time.Millisecond)
			c, err = e.dialTicket("", tk)
		}
		if err == nil {
			c.CloseNow()
			t.Fatalf("iteration %d: a revoked session's ticket opened a socket", i)
		}
		if ce, ok := err.(*client.CloseError); !ok || ce.Code != protocol.CloseInvalidTicket {
			t.Fatalf("iteration %d: %v, want 4001", i, err)
		}
	}
}

// TestRevocationAfterTheMarkersAreGone: the pod was cut off for longer than
// a deletion's marker lives (session.TombstoneTTL; here the markers are
// purged while it is away), so the watch cannot learn of the revocation:
// the sessions of its sockets are read again after the reconnect.
func TestRevocationAfterTheMarkersAreGone(t *testing.T) {
	e := newClusterEnv(t, nil)
	u := e.user(1, "Alice")
	c := e.dial(u)
	other := e.dial(e.user(2, "Bob"))
	e.ns.Stop()
	// The sessions bucket's leader may have been on the stopped node: each
	// try gets its own deadline while the other two elect a new one.
	waitFor(t, 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := e.sessions.Revoke(ctx, u.sess.ID, "logout_all")
		return err == nil || errors.Is(err, session.ErrNotFound) // a try that timed out after deleting
	})
	nc, _ := e.backend()
	js, err := jetstream.New(nc)
	mustNoErr(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "ocvr_sessions")
	mustNoErr(t, err)
	mustNoErr(t, kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(-1)))
	mustNoErr(t, e.ns.Restart())
	revokedWithin(t, c, 15*time.Second)
	alive(t, other)
}
