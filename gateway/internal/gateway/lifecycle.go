package gateway

import (
	"errors"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/pkg/protocol"
)

// A connection ends in one of two ways, and finish runs once either way:
//
//   - closeAfterQueue (and enqueueThenClose): no more frames are accepted;
//     once the queued ones are written the writer runs the close handshake,
//     then finish. Drain (1012), silence (4004), flooding (4008), a revoked
//     or expired session (4003).
//   - abort: the queue is dropped and the socket goes now, the close frame
//     sent only if the socket takes it at once. A failed write, a slow
//     consumer (4009), a pod that cannot join the user's subject (1011).
//
// finish is also what the reader calls when the socket fails under it.

// closeAfterQueue closes with code once every queued frame is written.
func (c *conn) closeAfterQueue(code websocket.StatusCode, reason string) {
	c.enqueueThenClose(nil, 0, code, reason)
}

// enqueueThenClose queues a last frame (nil: none), then closes with code
// once it is written (session revoked).
func (c *conn) enqueueThenClose(frame []byte, publishedAt int64, code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if frame != nil {
		c.queue = append(c.queue, outFrame{data: frame, publishedAt: publishedAt})
	}
	c.closing = true
	c.closeCode, c.closeWhy = code, reason
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
}

// closeIfAsked runs the close handshake of a connection asked to close,
// once its queue is written; its writer calls it when the queue is empty.
func (c *conn) closeIfAsked() {
	c.mu.Lock()
	closing, code, why := c.closing, c.closeCode, c.closeWhy
	c.mu.Unlock()
	switch {
	case !closing || code == 0:
	case code == protocol.CloseSlowConsumer:
		c.closeSlow(code, why)
	default:
		c.closeHandshake(code, why)
	}
}

// abort drops the queue and ends the connection with code now: the close
// frame goes only if the socket takes it within a short grace.
func (c *conn) abort(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	if c.closeCode == 0 {
		c.closeCode, c.closeWhy = code, reason
	}
	c.mu.Unlock()
	c.closeSlow(code, reason)
}

// writeFailed ends a connection whose socket refused a write.
func (c *conn) writeFailed(err error) {
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	c.writing = false
	c.mu.Unlock()
	c.ws.CloseNow()
	c.finish(err)
}

// closeHandshake performs the close handshake with code (bounded by the
// library's own timeouts), then finishes the connection.
func (c *conn) closeHandshake(code websocket.StatusCode, reason string) {
	c.handshake.Do(func() {
		if c.acquireGate() {
			_ = c.ws.Close(code, reason)
			<-c.gate
		} else {
			c.ws.CloseNow() // a reader is stuck mid-frame: no handshake
		}
		c.finish(nil)
	})
}

// closeSlow sends the close frame if the socket takes it within a short
// deadline, then drops the connection: for slow consumers and aborts, whose
// socket may be full.
func (c *conn) closeSlow(code websocket.StatusCode, reason string) {
	c.handshake.Do(func() {
		// ws.Close would wait up to 5 s for a close reply that a client
		// which stopped reading never sends, and ws.CloseNow cannot cut an
		// ongoing Close short: closing the socket under it can.
		_ = c.nc.SetWriteDeadline(time.Now().Add(slowCloseGrace))
		drop := time.AfterFunc(slowCloseGrace, func() { _ = c.nc.Conn.Close() })
		if c.acquireGate() {
			_ = c.ws.Close(code, reason)
			<-c.gate
		}
		drop.Stop()
		c.ws.CloseNow()
		c.finish(nil)
	})
}

// slowCloseGrace bounds the close frame's write on an abort and the wait for
// the client's reply.
const slowCloseGrace = time.Second

// acquireGate takes the read gate, waiting briefly for a read burst to end.
func (c *conn) acquireGate() bool {
	select {
	case c.gate <- struct{}{}:
		return true
	case <-time.After(time.Second):
		return false
	}
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// hasEnded reports whether finish has run. Whoever adds c somewhere
// (a topic) checks it afterwards, and undoes the add if so: finish may have
// run between the add's start and its end.
func (c *conn) hasEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// finish is the one end of a connection: it runs once, whoever sees the end
// first (the reader when the socket fails, the closer after the handshake),
// marks the connection ended (so nothing is added to it any more), drops
// the socket and has the pod release what it holds for it.
func (c *conn) finish(err error) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended, c.closing = true, true
	c.queue = nil
	code, reason := int(c.closeCode), c.closeWhy
	c.mu.Unlock()
	if code == 0 {
		code, reason = int(websocket.CloseStatus(err)), "client"
		switch {
		case errors.Is(err, websocket.ErrMessageTooBig):
			code, reason = protocol.CloseMessageTooBig, "frame too big"
		case code == -1:
			code, reason = protocol.CloseAbnormal, "connection lost"
		}
	}
	c.ws.CloseNow()
	c.env.teardown(c, code, reason)
}
