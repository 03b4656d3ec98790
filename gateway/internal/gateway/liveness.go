package gateway

import (
	"context"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
)

// Reasons of the session_revoked frames the gateway sends itself: when the
// revocation watch, the post-join re-check or the sweeper (rather than a
// backend's session_revoked on the bus) ends a connection.
const (
	reasonRevoked = "revoked"
	reasonExpired = "expired"
)

// sweepLoop closes silent connections (4004) and connections whose session
// expired (4003), and forgets stale typing throttle entries, every
// SweepInterval until ctx ends. Run owns its goroutine.
func (g *Gateway) sweepLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.sweep()
		}
	}
}

func (g *Gateway) sweep() {
	now := g.now()
	cutoff := now.Add(-g.cfg.HeartbeatTimeout).UnixNano()
	for _, c := range g.snapshot() {
		switch {
		case !c.expiresAt.IsZero() && !now.Before(c.expiresAt):
			g.revoke(c, reasonExpired)
		case c.lastSeen.Load() < cutoff:
			c.closeAfterQueue(protocol.CloseHeartbeatTimeout, "heartbeat timeout")
		}
	}
	g.typingThrottle.sweep(now)
}

// revoke sends session_revoked {reason} and closes c with 4003 once it is
// written.
func (g *Gateway) revoke(c *conn, reason string) {
	frame := protocol.MustEncode(protocol.TypeSessionRevoked, protocol.SessionRevoked{Reason: reason})
	c.enqueueThenClose(frame, 0, protocol.CloseSessionRevoked, "session revoked")
	g.metrics.frameOut(protocol.TypeSessionRevoked)
}

// onSessionDeleted is the revocation watch's callback: a session's record
// was deleted (revoked) or expired out of the bucket. Every connection of
// that session is closed, whether or not the bus's session_revoked reached
// it (a connection already closing is left as it is).
func (g *Gateway) onSessionDeleted(sessionID string) {
	for _, c := range g.snapshot() {
		if c.sessionID == sessionID {
			g.revoke(c, reasonRevoked)
		}
	}
}
