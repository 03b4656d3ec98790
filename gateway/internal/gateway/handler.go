package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ocvr/realtime/gateway/internal/batchconn"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
	"github.com/ocvr/realtime/pkg/ticket"
)

// CodeUnavailable is an error-frame code of ours (an extension of DESIGN.md
// §2): the pod could not reach the bus or KV to serve a request; retry later.
const CodeUnavailable = "UNAVAILABLE"

func promhttpHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Handler serves GET /v1/ws.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", g.serveWS)
	return mux
}

// reject completes the upgrade, sends an optional error frame, and closes
// with code: a browser cannot read an HTTP error status on a failed
// upgrade, but it can read a close code.
func (g *Gateway) reject(w http.ResponseWriter, r *http.Request, code websocket.StatusCode, errFrame []byte, reason string) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if errFrame != nil {
		_ = ws.Write(ctx, websocket.MessageText, errFrame)
	}
	// The peer's close reply is not waited for: nothing more is owed to it.
	_ = ws.Close(code, reason)
}

var invalidTicketFrame = protocol.MustEncode(protocol.TypeError, protocol.Error{
	// The document's own example, byte for byte.
	Code: protocol.CodeInvalidTicket, Message: "WebSocket ticket is invalid or expired",
})

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if g.draining.Load() {
		g.metrics.connects.WithLabelValues("draining").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	if !g.origins.allowed(r.Header.Get("Origin")) {
		g.metrics.connects.WithLabelValues("origin_rejected").Inc()
		g.log.Warn("origin rejected", "origin", r.Header.Get("Origin"))
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	// Admission counts this upgrade against the hard limit from here on, not
	// from registration: otherwise any number of concurrent connects pass
	// the check while their tickets are being redeemed. The slot is given
	// back before a refusal's close handshake and when the connection ends.
	// Once the ticket is redeemed the connection also holds one of its
	// user's slots (MaxConnsPerUser); leave gives both back.
	var once sync.Once
	var slotUser int64
	leave := func() {
		once.Do(func() {
			g.admitted.Add(-1)
			if slotUser != 0 {
				g.perUser.release(slotUser)
			}
		})
	}
	handedOff := false
	defer func() {
		if !handedOff {
			leave()
		}
	}()
	if n := g.admitted.Add(1); g.cfg.HardMaxConns > 0 && n > int64(g.cfg.HardMaxConns) {
		leave()
		g.metrics.connects.WithLabelValues("over_capacity").Inc()
		g.reject(w, r, protocol.CloseTryAgainLater, nil, "pod at connection limit")
		return
	}
	st := g.stores.Load()
	if st == nil {
		leave()
		g.metrics.connects.WithLabelValues("unavailable").Inc()
		g.reject(w, r, protocol.CloseTryAgainLater, nil, "not ready")
		return
	}
	id, result, err := g.redeem(r.Context(), st, r.URL.Query().Get("ticket"))
	g.metrics.redeems.WithLabelValues(result).Inc()
	if err != nil {
		leave()
		if result == redeemAborted {
			// The client left while its ticket was being redeemed (its
			// request context ended): nothing to answer, and no outage —
			// counting it as "unavailable" would page operators for
			// clients that drop mid-handshake.
			g.metrics.connects.WithLabelValues(redeemAborted).Inc()
			g.log.Info("connect aborted by the client during ticket redemption")
			return
		}
		if result == "error" {
			g.metrics.connects.WithLabelValues("unavailable").Inc()
			g.log.Error("redeem ticket", "err", err)
			g.reject(w, r, protocol.CloseTryAgainLater, nil, "try again later")
			return
		}
		g.metrics.connects.WithLabelValues("invalid_ticket").Inc()
		g.metrics.errorSent(protocol.CodeInvalidTicket)
		g.log.Info("connect refused", "reason", result)
		g.reject(w, r, protocol.CloseInvalidTicket, invalidTicketFrame, "invalid ticket")
		return
	}
	if !g.perUser.acquire(id.UserID, g.cfg.MaxConnsPerUser) {
		// The new socket is refused, the user's open ones are kept: an
		// attacker holding a stolen session cannot disconnect its owner.
		leave()
		g.metrics.connects.WithLabelValues(connectUserLimit).Inc()
		g.log.Warn("connect refused", "reason", connectUserLimit, "user", id.UserID, "limit", g.cfg.MaxConnsPerUser)
		g.reject(w, r, protocol.CloseTooManyConns, nil, "too many connections")
		return
	}
	slotUser = id.UserID

	bw := batchconn.Wrap(w, g.pool)
	ws, err := websocket.Accept(bw, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // origin checked above
	if err != nil {
		g.log.Warn("upgrade failed", "err", err)
		return
	}
	ws.SetReadLimit(g.cfg.ReadLimit)
	if n := g.cfg.SocketSendBuffer; n > 0 {
		if sb, ok := bw.Conn().Conn.(interface{ SetWriteBuffer(int) error }); ok {
			if err := sb.SetWriteBuffer(n); err != nil {
				g.log.Warn("set socket send buffer", "err", err)
			}
		}
	}
	now := g.now()
	c := &conn{
		id:          newConnID(),
		userID:      id.UserID,
		sessionID:   id.SessionID,
		displayName: id.DisplayName,
		opened:      now,
		ws:          ws,
		nc:          bw.Conn(),
		g:           g,
		w:           g.writers.pick(),
		subs:        map[string]struct{}{},
		gate:        make(chan struct{}, 1),
		leave:       leave,
		tokens:      float64(g.cfg.FrameBurst),
		tokensAt:    now,
	}
	c.lastSeen.Store(now.UnixNano())
	handedOff = true // from here on the connection's cleanup gives the slot back
	g.register(c)
	g.metrics.connects.WithLabelValues("ok").Inc()
	if g.draining.Load() {
		// Drain set draining before it listed the connections; one
		// registered since is not on its list and is closed here.
		c.requestClose(protocol.CloseServiceRestart, "server draining")
	}
	// A fresh goroutine serves the socket and this handler returns: the
	// HTTP server's per-connection state (request, headers, its buffered
	// writer, the handshake's grown stack) becomes garbage instead of
	// staying pinned for the connection's lifetime.
	go g.serveConn(c)
}

// redeem consumes the ticket and re-checks its session. result is a metrics
// label: ok, malformed, unknown, expired, session_invalid, aborted (the
// client went away meanwhile) or error.
func (g *Gateway) redeem(ctx context.Context, st *stores, t string) (ticket.Identity, string, error) {
	start := time.Now()
	defer func() { g.metrics.redeemLatency.Observe(time.Since(start).Seconds()) }()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id, err := st.tickets.Redeem(ctx, t)
	switch {
	case errors.Is(err, ticket.ErrMalformed):
		return id, "malformed", err
	case errors.Is(err, ticket.ErrUnknown):
		return id, "unknown", err
	case errors.Is(err, ticket.ErrExpired):
		return id, "expired", err
	case err != nil:
		return id, failedRedeem(ctx), err
	}
	if _, err := st.sessions.Lookup(ctx, id.SessionID); err != nil {
		if errors.Is(err, session.ErrUnauthorized) {
			return id, "session_invalid", err
		}
		return id, failedRedeem(ctx), err
	}
	return id, "ok", nil
}

// serveConn runs one connection on the handler goroutine until it closes;
// leave gives back its admission slot.
func (g *Gateway) serveConn(c *conn) {
	ctx := context.Background() // a Read ctx expiry would close the socket; liveness is the sweeper's job

	// ready must be the first frame, yet events published once the user
	// and broadcast subjects are joined must not be lost: queue ready with
	// the writer held, join, then release the writer.
	c.holdWith(protocol.MustEncode(protocol.TypeReady, protocol.Ready{
		ConnectionID:      c.id,
		UserID:            c.userID,
		SessionID:         c.sessionID,
		HeartbeatInterval: g.cfg.HeartbeatInterval.Milliseconds(),
		ServerTime:        g.now().Unix(),
	}))
	userSubj, _ := g.subjects.User(c.userID)
	err := g.hub.join(ctx, userSubj, protocol.ScopeUser, "", c)
	if err == nil {
		err = g.hub.join(ctx, g.subjects.Broadcast(), protocol.ScopeBroadcast, "", c)
	}
	if err != nil {
		g.log.Error("join user subject", "conn", c.id, "err", err)
		c.dropHeld()
		c.close(protocol.CloseInternalError, "bus unavailable")
		return
	}
	g.log.Info("connection opened", "conn", c.id, "user", c.userID, "session", c.sessionID)
	g.metrics.frameOut(protocol.TypeReady)
	c.release()
	if g.poller != nil {
		// Idle sockets wait on the shared poller, not on a parked goroutine.
		g.readBurst(c, false)
		return
	}
	g.finish(c, g.readLoop(ctx, c, nil))
}

// readBurst reads what a socket has (at least one message when the poller
// reported it readable; only already-buffered ones otherwise), then arms
// the poller to run it again when more arrives. It holds the connection's
// read gate: the buffered-bytes check touches the websocket library's read
// buffer, which a close handshake also reads.
func (g *Gateway) readBurst(c *conn, readable bool) {
	c.gate <- struct{}{}
	if c.isClosing() {
		<-c.gate // the closer owns the socket now
		return
	}
	var err error
	if readable || c.nc.Pending() {
		err = g.readLoop(context.Background(), c, c.nc.Pending)
	} else {
		err = errIdle
	}
	if errors.Is(err, errIdle) {
		c.mu.Lock()
		token := c.pollToken
		c.mu.Unlock()
		if token == 0 {
			token, err = g.poller.Add(c.nc, func() { g.readBurst(c, true) })
			if err == nil {
				c.mu.Lock()
				c.pollToken = token
				c.mu.Unlock()
			}
		} else {
			err = g.poller.Rearm(c.nc, token)
		}
	}
	<-c.gate
	if err != nil {
		g.finish(c, err)
	}
}

// errIdle ends a read burst: nothing more is buffered.
var errIdle = errors.New("idle")

// finish releases everything a connection holds, once, whoever notices its
// end first: its reader, or the goroutine that closed it.
func (g *Gateway) finish(c *conn, err error) {
	c.finishOnce.Do(func() { g.cleanup(c, err) })
}

func (g *Gateway) cleanup(c *conn, err error) {
	c.mu.Lock()
	token := c.pollToken
	c.pollToken = 0
	c.mu.Unlock()
	if token != 0 {
		g.poller.Remove(c.nc, token)
	}
	userSubj, _ := g.subjects.User(c.userID)
	// Cleanup: leave every topic, then account for the close.
	g.hub.leave(userSubj, c)
	g.hub.leave(g.subjects.Broadcast(), c)
	for _, ch := range c.takeSubs() {
		subj, _ := g.subjects.Channel(ch)
		g.hub.leave(subj, c)
	}
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	code := int(c.closeCode)
	reason := c.closeWhy
	c.mu.Unlock()
	if code == 0 {
		code = int(websocket.CloseStatus(err))
		reason = "client"
		switch {
		case errors.Is(err, websocket.ErrMessageTooBig):
			code, reason = protocol.CloseMessageTooBig, "frame too big"
		case code == -1:
			code, reason = 1006, "connection lost"
		}
	}
	c.ws.CloseNow()
	if c.leave != nil {
		c.leave()
	}
	g.metrics.disconnected(code) // before unregister: Connections() going down means it is counted
	g.unregister(c)
	g.log.Info("connection closed", "conn", c.id, "user", c.userID, "session", c.sessionID, "code", code, "reason", reason, "duration", g.now().Sub(c.opened).Round(time.Millisecond).String())
}

// readLoop reads and handles client frames until the socket fails or, when
// more is given, until more reports that nothing is buffered (errIdle).
func (g *Gateway) readLoop(ctx context.Context, c *conn, more func() bool) error {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		g.handleFrame(ctx, c, typ, data)
		if more != nil && !more() {
			return errIdle
		}
	}
}

func (g *Gateway) handleFrame(ctx context.Context, c *conn, typ websocket.MessageType, data []byte) {
	now := g.now()
	c.lastSeen.Store(now.UnixNano())
	if !c.allowFrame(now) {
		return
	}
	if typ != websocket.MessageText {
		g.metrics.frameIn("invalid")
		c.sendError(protocol.CodeInvalidMessage, "binary frames are not supported: send JSON text frames", "")
		return
	}
	f, perr := protocol.DecodeClientFrame(data)
	if perr != nil {
		g.metrics.frameIn("invalid")
		c.sendError(perr.Code, perr.Message, perr.ChannelID)
		return
	}
	g.metrics.frameIn(f.Type)
	switch f.Type {
	case protocol.TypeHeartbeat:
		c.send(protocol.TypeHeartbeatAck, protocol.HeartbeatAck{ServerTime: now.Unix()})
	case protocol.TypeSubscribe:
		g.subscribe(ctx, c, f.ChannelID)
	case protocol.TypeUnsubscribe:
		g.unsubscribe(c, f.ChannelID)
	case protocol.TypeTyping:
		g.typing(ctx, c, f.ChannelID)
	}
}

// allowFrame applies the per-connection token bucket. The first refused
// frame of an episode gets RATE_LIMITED; a client that keeps flooding past
// FloodLimit refused frames is closed with 4008.
func (c *conn) allowFrame(now time.Time) bool {
	cfg := &c.g.cfg
	c.tokens += now.Sub(c.tokensAt).Seconds() * cfg.FrameRate
	if max := float64(cfg.FrameBurst); c.tokens > max {
		c.tokens = max
	}
	c.tokensAt = now
	if c.tokens >= 1 {
		c.tokens--
		c.limited, c.overLimit = false, 0
		return true
	}
	c.overLimit++
	if !c.limited {
		c.limited = true
		c.sendError(protocol.CodeRateLimited, "too many frames: slow down", "")
	}
	if c.overLimit > cfg.FloodLimit {
		c.requestClose(protocol.CloseRateLimited, "rate limit abuse")
	}
	return false
}

func (c *conn) send(typ string, data any) {
	if c.enqueue(protocol.MustEncode(typ, data)) {
		c.g.metrics.frameOut(typ)
	}
}

func (c *conn) sendError(code, msg, channelID string) {
	c.g.metrics.errorSent(code)
	c.send(protocol.TypeError, protocol.Error{Code: code, Message: msg, ChannelID: channelID})
}

func (g *Gateway) subscribe(ctx context.Context, c *conn, ch string) {
	if c.hasSub(ch) {
		c.send(protocol.TypeSubscribed, protocol.Subscribed{ChannelID: ch}) // harmless repeat
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
		return
	}
	subj, _ := g.subjects.Channel(ch)
	if err := g.hub.join(ctx, subj, protocol.ScopeChannel, ch, c); err != nil {
		c.removeSub(ch)
		g.unavailable(c, ch, err)
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
	// Acknowledge unless the directory watcher ended the subscription in
	// the meantime: its unsubscribed frame is then the answer.
	if c.enqueueIfSubscribed(ch, protocol.MustEncode(protocol.TypeSubscribed, protocol.Subscribed{ChannelID: ch})) {
		g.metrics.frameOut(protocol.TypeSubscribed)
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

func (g *Gateway) typing(ctx context.Context, c *conn, ch string) {
	if !c.hasSub(ch) {
		c.sendError(protocol.CodeNotSubscribed, "subscribe to the channel before sending typing", ch)
		return
	}
	if !g.typingAllowed(c.userID, ch) {
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
