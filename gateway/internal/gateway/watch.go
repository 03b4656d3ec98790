package gateway

import (
	"context"
	"time"

	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
)

// The pod's two watches make authorization durable: a membership removed,
// a channel deleted or a session revoked ends what it authorized on every
// pod within seconds, even when the pod was cut off from NATS at that
// moment (each watch resumes from the last revision it saw). Run owns their
// goroutines; /readyz waits until both are live.

// nextReconnect is the channel closed at the next NATS reconnect.
func (g *Gateway) nextReconnect() <-chan struct{} { return *g.reconnect.Load() }

func (g *Gateway) watchDirectory(ctx context.Context, st *stores) {
	err := st.dir.WatchRemovals(ctx, directory.WatchOptions{
		OnMemberRemoved:  g.onMemberRemoved,
		OnChannelDeleted: g.onChannelDeleted,
		Reconnected:      g.nextReconnect,
		Live:             func() { g.watchers.Add(1) },
		Log:              g.log,
	})
	if err != nil {
		g.log.Error("directory watch", "err", err)
	}
}

func (g *Gateway) watchSessions(ctx context.Context, st *stores) {
	err := st.sessions.WatchRevocations(ctx, session.WatchOptions{
		OnRevoked:   g.onSessionDeleted,
		Reconnected: g.nextReconnect,
		Live:        func() { g.watchers.Add(1) },
		Log:         g.log,
	})
	if err != nil {
		g.log.Error("session watch", "err", err)
	}
}

// watchCount is the number of watches /readyz waits for.
const watchCount = 2

func (g *Gateway) onMemberRemoved(ch string, user int64) {
	subj, _ := g.subjects.Channel(ch)
	t := g.hub.topic(subj)
	if t == nil {
		return
	}
	reason := ""
	for _, c := range t.snapshot() {
		if c.userID != user {
			continue
		}
		if reason == "" {
			reason = g.removalReason(ch)
		}
		g.endSubscription(c, ch, reason)
	}
}

// removalReason tells "deleted" from "removed": deleting a channel also
// deletes its memberships, and those events may arrive first.
func (g *Gateway) removalReason(ch string) string {
	st := g.stores.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ok, err := st.dir.ChannelExists(ctx, ch); err == nil && !ok {
		return protocol.ReasonDeleted
	}
	return protocol.ReasonRemoved
}

func (g *Gateway) onChannelDeleted(ch string) {
	subj, _ := g.subjects.Channel(ch)
	t := g.hub.topic(subj)
	if t == nil {
		return
	}
	for _, c := range t.snapshot() {
		g.endSubscription(c, ch, protocol.ReasonDeleted)
	}
}
