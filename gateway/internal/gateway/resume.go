package gateway

import (
	"context"
	"net/url"
	"strconv"

	"github.com/ocvr/realtime/gateway/internal/resume"
	"github.com/ocvr/realtime/pkg/protocol"
)

// resumeReq is a reconnect's resume request (DESIGN.md §2a): the token
// from the previous connection's ready, and its cursor on the user subject.
// Query: GET /v1/ws?ticket=…&resume=<token>&seq=<cursor>.
type resumeReq struct {
	token  string
	seq    uint64
	hasSeq bool
}

func resumeRequest(q url.Values) resumeReq {
	r := resumeReq{token: q.Get("resume")}
	if v := q.Get("seq"); v != "" {
		if seq, err := strconv.ParseUint(v, 10, 64); err == nil {
			r.seq, r.hasSeq = seq, true
		}
	}
	return r
}

// checkToken tells whether tok was minted for this user and session: a
// forged or foreign token resumes nothing.
func (k *continuity) checkToken(tok string, userID int64, sessionID string) error {
	claims, err := k.signer.Check(tok)
	if err != nil {
		return err
	}
	if claims.UserID != userID || claims.SessionID != sessionID {
		return resume.ErrInvalid
	}
	return nil
}

// joinUser joins c to its user subject — resuming from the client's cursor
// when it asked and its token is good — and builds its ready frame.
func (g *Gateway) joinUser(ctx context.Context, c *conn, subj string, req resumeReq) ([]byte, error) {
	k := g.hub.cont.Load()
	ready := protocol.Ready{
		ConnectionID:      c.id,
		UserID:            c.userID,
		SessionID:         c.sessionID,
		HeartbeatInterval: g.cfg.HeartbeatInterval.Milliseconds(),
		ServerTime:        g.now().Unix(),
	}
	if k == nil {
		_, err := g.hub.join(ctx, subj, protocol.ScopeUser, "", c, nil)
		return protocol.MustEncode(protocol.TypeReady, ready), err
	}
	ready.ResumeToken = k.signer.Mint(resume.Claims{UserID: c.userID, SessionID: c.sessionID, Issued: g.now().Unix()})
	var tokenErr error
	if req.token != "" || req.hasSeq {
		tokenErr = k.checkToken(req.token, c.userID, c.sessionID)
		c.resumable = tokenErr == nil
	}
	var from *cursor
	if c.resumable && req.hasSeq {
		now := g.now()
		from = &cursor{seq: req.seq, at: now, started: now, reason: catchupResume}
	}
	pos, err := g.hub.join(ctx, subj, protocol.ScopeUser, "", c, from)
	if err != nil {
		return nil, err
	}
	g.hooks.afterUserJoin(c)
	t := g.hub.topic(subj)
	switch {
	case from != nil && t != nil:
		at, err := g.hub.checkCursor(ctx, req.seq)
		ready.Seq = g.hub.settleResume(t, c, at, err)
		ready.Resumed = boolPtr(err == nil)
		g.metrics.cont.resumes.WithLabelValues("user", resumeResult(err)).Inc()
		if err == nil {
			defer g.hub.startCatchup(c, t) // after ready is queued
			g.metrics.cont.catchups.WithLabelValues(catchupResume).Inc()
		}
	case req.token != "" || req.hasSeq:
		ready.Resumed = boolPtr(false)
		ready.Seq = pos // as of the join: events queued since follow ready
		g.metrics.cont.resumes.WithLabelValues("user", resumeResult(tokenErr)).Inc()
	default:
		ready.Seq = pos
	}
	return protocol.MustEncode(protocol.TypeReady, ready), nil
}

// resumeChannel settles a subscribe that asked to resume from a cursor
// (c joined the topic as catching up): it answers whether the events
// missed since follow, and starts the catch-up when they do.
func (g *Gateway) resumeChannel(ctx context.Context, c *conn, ch, subj string, seq uint64) (protocol.Subscribed, func()) {
	t := g.hub.topic(subj)
	ack := protocol.Subscribed{ChannelID: ch}
	if t == nil {
		return ack, func() {}
	}
	at, err := g.hub.checkCursor(ctx, seq)
	ack.Seq = g.hub.settleResume(t, c, at, err)
	ack.Resumed = boolPtr(err == nil)
	g.metrics.cont.resumes.WithLabelValues("channel", resumeResult(err)).Inc()
	if err != nil {
		return ack, func() {}
	}
	g.metrics.cont.catchups.WithLabelValues(catchupResume).Inc()
	return ack, func() { g.hub.startCatchup(c, t) }
}

// repeatSubscribed answers a subscribe to a channel c is subscribed to
// with its position, queued under the topic's lock: no event of the
// channel can come between the position and the frame.
func (g *Gateway) repeatSubscribed(c *conn, ch, subj string) {
	ack := protocol.Subscribed{ChannelID: ch}
	t := g.hub.topic(subj)
	if t == nil {
		c.send(protocol.TypeSubscribed, ack)
		return
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if cur, ok := t.catching[c]; ok {
		ack.Seq = cur.seq
	} else {
		ack.Seq = t.last
	}
	c.send(protocol.TypeSubscribed, ack)
}
