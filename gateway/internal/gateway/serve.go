package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/batchconn"
	"github.com/ocvr/realtime/pkg/protocol"
)

// open registers an upgraded socket as a connection and serves it on a
// fresh goroutine: the HTTP handler returns, and the server's
// per-connection state (request, headers, its buffered writer, the
// handshake's grown stack) becomes garbage instead of staying pinned for
// the connection's lifetime. release gives back the admission slot.
func (g *Gateway) open(ws *websocket.Conn, nc *batchconn.Conn, id identity, release func()) {
	ws.SetReadLimit(g.cfg.ReadLimit)
	if n := g.cfg.SocketSendBuffer; n > 0 {
		if sb, ok := nc.Conn.(interface{ SetWriteBuffer(int) error }); ok {
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
		expiresAt:   id.expiresAt,
		ws:          ws,
		nc:          nc,
		env:         g.env,
		w:           g.writers.pick(),
		subs:        map[string]struct{}{},
		gate:        make(chan struct{}, 1),
		deflate:     id.deflate,
		leave:       release,
		tokens:      float64(g.cfg.FrameBurst),
		tokensAt:    now,
	}
	c.lastSeen.Store(now.UnixNano())
	// Control frames (pings) are answered inside the library's Read and
	// never reach handleFrame: they are charged to the same token bucket
	// as they are read, so a ping flood cannot make the pod write pongs at
	// wire speed.
	nc.OnControlFrame(func() error {
		if !c.allowFrame(g.now()) && c.isClosing() {
			return errControlFlood // stop answering: the close is under way
		}
		return nil
	})
	g.register(c)
	g.metrics.connects.WithLabelValues("ok").Inc()
	g.metrics.compression.negotiated(id.deflate)
	if g.draining.Load() {
		// Drain set draining before it listed the connections; one
		// registered since is not on its list and is closed here.
		c.closeAfterQueue(protocol.CloseServiceRestart, "server draining")
	}
	go g.serveConn(c, id.resume)
}

// errControlFlood fails the read of a connection closed for flooding with
// control frames.
var errControlFlood = errors.New("control frame flood")

// serveConn joins the connection's user and broadcast subjects, re-checks
// its session, and reads its frames.
func (g *Gateway) serveConn(c *conn, req resumeReq) {
	ctx := context.Background() // a Read ctx expiry would close the socket; liveness is the sweeper's job

	// ready must be the first frame, yet events published once the user
	// and broadcast subjects are joined must not be lost: hold the writer,
	// join, put ready first, then release the writer.
	c.hold()
	g.hooks.beforeUserJoin(c)
	userSubj, _ := g.subjects.User(c.userID)
	ready, err := g.joinUser(ctx, c, userSubj, req)
	if err == nil {
		_, err = g.hub.join(ctx, g.subjects.Broadcast(), protocol.ScopeBroadcast, "", c, nil)
	}
	if err != nil {
		g.log.Error("join user subject", "conn", c.id, "err", err)
		c.abort(protocol.CloseInternalError, "bus unavailable")
		return
	}
	if c.hasEnded() {
		// Ended while joining: its teardown may have left before the joins.
		g.hub.leave(userSubj, c)
		g.hub.leave(g.subjects.Broadcast(), c)
		return
	}
	g.log.Info("connection opened", "conn", c.id, "user", c.userID, "session", c.sessionID)
	c.prepend(ready)
	g.metrics.frameOut(protocol.TypeReady)
	c.release()
	// A revocation after the redeem's session check (a leader read) and
	// before the join above did not reach this connection on the bus, and
	// the watch may have reported it before the connection was registered:
	// the pod remembers what the watch saw (revokedMemory). One reported
	// after the registration is the sweeper's.
	if g.revocations.revoked(c.sessionID) {
		g.revoke(c, reasonRevoked)
		return
	}
	if g.poller != nil {
		// Idle sockets wait on the shared poller, not on a parked goroutine.
		g.readBurst(c, false)
		return
	}
	c.finish(g.readLoop(ctx, c, nil))
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
		c.finish(err)
	}
}

// errIdle ends a read burst: nothing more is buffered.
var errIdle = errors.New("idle")

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
		g.subscribe(ctx, c, f)
	case protocol.TypeUnsubscribe:
		g.unsubscribe(c, f.ChannelID)
	case protocol.TypeTyping:
		g.typing(ctx, c, f.ChannelID)
	}
}

// teardown releases what the pod holds for a connection that ended (see
// conn.finish, its only caller).
func (g *Gateway) teardown(c *conn, code int, reason string) {
	c.mu.Lock()
	token := c.pollToken
	c.pollToken = 0
	c.mu.Unlock()
	if token != 0 {
		g.poller.Remove(c.nc, token)
	}
	userSubj, _ := g.subjects.User(c.userID)
	g.hub.leave(userSubj, c)
	g.hub.leave(g.subjects.Broadcast(), c)
	for _, ch := range c.takeSubs() {
		subj, _ := g.subjects.Channel(ch)
		g.hub.leave(subj, c)
	}
	if c.leave != nil {
		c.leave()
	}
	g.metrics.disconnected(code) // before unregister: Connections() going down means it is counted
	g.unregister(c)
	g.log.Info("connection closed", "conn", c.id, "user", c.userID, "session", c.sessionID, "code", code, "reason", reason, "duration", g.now().Sub(c.opened).Round(time.Millisecond).String())
}
