package gateway

import (
	"context"
	"strconv"
	"time"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
)

// CodeUnavailable is an error-frame code of ours (an extension of DESIGN.md
// §2): the pod could not reach the bus or KV to serve a request; retry later.
const CodeUnavailable = protocol.CodeUnavailable

// subscribe authorizes and joins c to channel ch: membership is read from
// the directory's leader before and after joining (a removal between the
// first read and the join is not seen by the directory watch).
//
// A subscribe with a cursor (f.HasSeq) on a connection that presented a
// valid resume token resumes: it joins as catching up, and once
// acknowledged reads the events it missed from the stream (resume.go).
func (g *Gateway) subscribe(ctx context.Context, c *conn, f protocol.ClientFrame) {
	ch := f.ChannelID
	if c.hasSub(ch) {
		subj, _ := g.subjects.Channel(ch)
		g.repeatSubscribed(c, ch, subj) // harmless repeat
		return
	}
	if c.subCount() >= g.cfg.MaxSubscriptions {
		c.sendError(protocol.CodeTooManySubscriptions, "subscription limit of "+strconv.Itoa(g.cfg.MaxSubscriptions)+" per connection reached", ch)
		return
	}
	st := g.stores.Load()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Membership first: a member's channel exists, so the common case costs
	// one KV read; only a refusal looks up the channel to name the reason.
	member, err := st.dir.IsMember(ctx, ch, c.userID)
	if err != nil {
		g.unavailable(c, ch, err)
		return
	}
	if !member {
		exists, err := st.dir.ChannelExists(ctx, ch)
		switch {
		case err != nil:
			g.unavailable(c, ch, err)
		case !exists:
			c.sendError(protocol.CodeChannelNotFound, "channel does not exist", ch)
		default:
			c.sendError(protocol.CodeNotMember, "not a member of this channel", ch)
		}
		return
	}
	if !c.addSub(ch) {
		return // closing, or subscribed meanwhile
	}
	g.hooks.beforeChannelJoin(c)
	subj, _ := g.subjects.Channel(ch)
	var from *cursor
	if f.HasSeq && c.resumable && g.hub.cont.Load() != nil {
		now := g.now()
		from = &cursor{seq: f.Seq, at: now, started: now, reason: catchupResume}
	}
	pos, err := g.hub.join(ctx, subj, protocol.ScopeChannel, ch, c, from)
	if err != nil {
		c.removeSub(ch)
		g.unavailable(c, ch, err)
		return
	}
	if c.hasEnded() {
		// The connection ended while joining; its teardown may have left
		// the topic before the join entered it.
		g.hub.leave(subj, c)
		return
	}
	// Re-check after joining: a membership removed between the first check
	// and the join would not have been seen by the directory watcher.
	member, err = st.dir.IsMember(ctx, ch, c.userID)
	if err != nil || !member {
		// If the directory watcher already ended the subscription, its
		// unsubscribed frame is the answer: one answer per subscribe.
		if c.removeSub(ch) {
			g.hub.leave(subj, c)
			if err != nil {
				g.unavailable(c, ch, err)
			} else {
				c.sendError(protocol.CodeNotMember, "not a member of this channel", ch)
			}
		}
		return
	}
	ack, start := protocol.Subscribed{ChannelID: ch}, func() {}
	switch {
	case from != nil:
		ack, start = g.resumeChannel(ctx, c, ch, subj, f.Seq)
	case f.HasSeq && g.hub.cont.Load() != nil:
		// A cursor without a valid resume token: nothing is replayed.
		ack.Seq, ack.Resumed = pos, boolPtr(false)
		g.metrics.cont.resumes.WithLabelValues("channel", resumeInvalidToken).Inc()
	default:
		ack.Seq = pos
	}
	// Acknowledge unless the directory watcher ended the subscription in
	// the meantime: its unsubscribed frame is then the answer.
	if c.enqueueIfSubscribed(ch, protocol.MustEncode(protocol.TypeSubscribed, ack)) {
		g.metrics.frameOut(protocol.TypeSubscribed)
		start() // the missed events follow the acknowledgement
	}
}

func (g *Gateway) unavailable(c *conn, ch string, err error) {
	g.log.Error("subscribe", "conn", c.id, "err", err)
	c.sendError(CodeUnavailable, "the gateway cannot reach its backplane; retry later", ch)
}

func (g *Gateway) unsubscribe(c *conn, ch string) {
	if !c.removeSub(ch) {
		c.sendError(protocol.CodeNotSubscribed, "not subscribed to this channel", ch)
		return
	}
	subj, _ := g.subjects.Channel(ch)
	g.hub.leave(subj, c)
	c.send(protocol.TypeUnsubscribed, protocol.Unsubscribed{ChannelID: ch, Reason: protocol.ReasonClient})
}

// typing forwards a typing indicator to the channel's other subscribers,
// throttled per user per channel (typing.go).
func (g *Gateway) typing(ctx context.Context, c *conn, ch string) {
	if !c.hasSub(ch) {
		c.sendError(protocol.CodeNotSubscribed, "subscribe to the channel before sending typing", ch)
		return
	}
	if !g.typingThrottle.allow(ctx, c.userID, ch) {
		return // coalesced, not an error
	}
	err := g.pub.PublishToChannel(ctx, ch, protocol.TypeTypingStart, protocol.TypingStart{
		ChannelID: ch, UserID: c.userID, DisplayName: c.displayName,
	}, bus.Target{ExcludeUser: c.userID})
	if err != nil {
		g.log.Warn("publish typing", "err", err)
	}
}

// endSubscription ends c's subscription to ch on the server's initiative
// (membership removed or channel deleted).
func (g *Gateway) endSubscription(c *conn, ch, reason string) {
	if !c.removeSub(ch) {
		return
	}
	subj, _ := g.subjects.Channel(ch)
	g.hub.leave(subj, c)
	c.send(protocol.TypeUnsubscribed, protocol.Unsubscribed{ChannelID: ch, Reason: reason})
}
