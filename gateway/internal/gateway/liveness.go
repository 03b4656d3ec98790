package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
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
	revoked := g.revocations.due(now)
	for _, c := range g.snapshot() {
		switch {
		case revoked[c.sessionID]:
			g.revoke(c, reasonRevoked)
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
// that session is closed by the sweeper once revocationGrace has passed,
// whether or not the bus's session_revoked reached it: the grace lets the
// backend's own frame, with its reason ("logout_all"), arrive first (a
// revocation deletes the record, then publishes), and a connection already
// closing is left as it is.
func (g *Gateway) onSessionDeleted(sessionID string) {
	g.revocations.add(sessionID, g.now().Add(revocationGrace))
}

// revocationGrace is how long the watch leaves the bus's session_revoked to
// arrive before it closes the session's connections itself.
const revocationGrace = time.Second

// revokedMemory is how long the pod remembers a session the watch saw go:
// longer than a ticket lives, so that a connection whose ticket was
// redeemed just before the revocation, and registered after the watch
// reported it, is closed at registration (see serveConn).
const revokedMemory = time.Minute

// revocations are the sessions the watch saw go: until the sweeper has
// closed their connections, and for revokedMemory after.
type revocations struct {
	mu sync.Mutex
	at map[string]revocation
}

type revocation struct {
	closeAt  time.Time // when the sweeper closes the session's connections
	forgetAt time.Time
	closed   bool // the sweeper has closed them
}

func (r *revocations) add(sessionID string, closeAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[string]revocation{}
	}
	if _, ok := r.at[sessionID]; !ok {
		r.at[sessionID] = revocation{closeAt: closeAt, forgetAt: closeAt.Add(revokedMemory)}
	}
}

// revoked reports whether the watch saw the session go (recently).
func (r *revocations) revoked(sessionID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.at[sessionID]
	return ok
}

// due takes the sessions whose connections are to be closed now, and
// forgets the old ones.
func (r *revocations) due(now time.Time) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out map[string]bool
	for id, rv := range r.at {
		switch {
		case !now.Before(rv.forgetAt):
			delete(r.at, id)
		case !rv.closed && !now.Before(rv.closeAt):
			if out == nil {
				out = map[string]bool{}
			}
			out[id] = true
			rv.closed = true
			r.at[id] = rv
		}
	}
	return out
}

// recheckRate bounds the session reads of a re-check after a reconnect
// (leader reads, one per distinct session of the pod).
const recheckRate = 500 // per second

// recheckLoop re-reads the session of every local connection after each
// NATS reconnect, and closes those whose session is gone. The revocation
// watch resumes from the last revision it saw, but a deletion's marker
// lives only session.TombstoneTTL: a pod cut off for longer cannot learn
// the revocation from the watch. Run owns its goroutine.
func (g *Gateway) recheckLoop(ctx context.Context, st *stores) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.nextReconnect():
		}
		g.recheckSessions(ctx, st)
	}
}

func (g *Gateway) recheckSessions(ctx context.Context, st *stores) {
	seen := map[string]bool{}
	tick := time.NewTicker(time.Second / recheckRate)
	defer tick.Stop()
	for _, c := range g.snapshot() {
		if seen[c.sessionID] {
			continue
		}
		seen[c.sessionID] = true
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := st.sessions.Lookup(rctx, c.sessionID)
		cancel()
		if errors.Is(err, session.ErrUnauthorized) {
			g.revocations.add(c.sessionID, g.now()) // the sweeper closes them
		}
	}
}
