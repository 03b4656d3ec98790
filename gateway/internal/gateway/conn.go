package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/batchconn"
	"github.com/ocvr/realtime/pkg/protocol"
)

// conn is one client socket. Its frames are read by the poller's read
// bursts (or a reader goroutine) and written by a shared writer (writer.go),
// or by a drain goroutine of its own while its socket does not take a whole
// batch. An idle connection has no goroutine.
type conn struct {
	id          string
	userID      int64
	sessionID   string
	displayName string
	opened      time.Time

	ws *websocket.Conn
	nc *batchconn.Conn // the hijacked socket under ws, for batched writes
	g  *Gateway
	w  *writer // writes the queue; nil: a drain goroutine does

	lastSeen atomic.Int64 // unix nanoseconds of the last client frame

	mu        sync.Mutex
	queue     []outFrame // outbound frames, FIFO, at most g.cfg.QueueSize
	writing   bool       // on a writer's list, or a drain goroutine is writing queue
	closing   bool       // no more frames are accepted
	closeCode websocket.StatusCode
	closeWhy  string
	subs      map[string]struct{} // channel ids this connection is subscribed to

	// Read-loop state (only the handler goroutine touches these).
	tokens     float64
	tokensAt   time.Time
	limited    bool // in a rate-limited episode: RATE_LIMITED already sent
	overLimit  int  // frames refused in the current episode
	closedOnce sync.Once
	finishOnce sync.Once
	leave      func()        // gives back the admission slot
	gate       chan struct{} // held while reading (poller mode) and during a close handshake
	pollToken  uint64        // the poller's token while the socket is armed (guarded by mu)
	done       chan struct{} // closed when the socket is gone
}

// outFrame is a queued frame and the time its event was published (unix
// nanoseconds, 0 when unknown), for the delivery-latency histogram.
type outFrame struct {
	data        []byte
	publishedAt int64
}

// enqueue queues frame for writing. It returns false if the connection is
// closing. A full queue makes this a slow consumer: it is closed with 4009
// and nobody else waits for it.
func (c *conn) enqueue(frame []byte) bool { return c.enqueueAt(frame, 0) }

func (c *conn) enqueueAt(frame []byte, publishedAt int64) bool {
	c.mu.Lock()
	ok, start := c.enqueueLocked(frame, publishedAt)
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
	return ok
}

// enqueueIfSubscribed queues frame only while c holds a subscription to
// ch, atomically with respect to removeSub: a subscribed acknowledgement
// can then never follow the unsubscribed that ended the subscription.
func (c *conn) enqueueIfSubscribed(ch string, frame []byte) bool {
	c.mu.Lock()
	if _, ok := c.subs[ch]; !ok {
		c.mu.Unlock()
		return false
	}
	ok, start := c.enqueueLocked(frame, 0)
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
	return ok
}

// enqueueLocked queues frame with c.mu held; start says the caller must
// start a writer once it has released c.mu.
func (c *conn) enqueueLocked(frame []byte, publishedAt int64) (ok, start bool) {
	if c.closing {
		return false, false
	}
	if len(c.queue) >= c.g.cfg.QueueSize {
		// Slow consumer: the backlog is dropped at once. Frames only wait
		// while a writer runs (or is held, see holdWith), so the writer
		// closes with 4009 once its in-flight write completes or hits the
		// write timeout: the client gets whole frames then the close code,
		// never a frame torn by a deadline.
		c.closing = true
		c.queue = nil
		c.closeCode, c.closeWhy = protocol.CloseSlowConsumer, "slow consumer"
		c.g.metrics.slowConsumers.Inc()
		return false, false
	}
	c.queue = append(c.queue, outFrame{frame, publishedAt})
	start = !c.writing
	c.writing = true
	return true, start
}

// holdWith queues frame as the connection's first and holds the writer
// (none starts) until release: frames queued meanwhile follow it.
func (c *conn) holdWith(frame []byte) {
	c.mu.Lock()
	c.queue = append(c.queue, outFrame{data: frame})
	c.writing = true // held: enqueue starts no writer
	c.mu.Unlock()
}

// release starts the writer held by holdWith.
func (c *conn) release() { c.startWriter() }

// startWriter has c's queue written; the caller has set c.writing.
func (c *conn) startWriter() {
	if c.w != nil {
		c.w.schedule(c)
		return
	}
	go c.drain()
}

// idleLocked marks c as having nothing left to write (c.mu held).
func (c *conn) idleLocked() {
	c.writing = false
	if cap(c.queue) > 16 {
		c.queue = nil // an idle connection keeps no burst-sized queue
	}
}

// closeWritten closes c once its queue is written, when it was asked to.
func (c *conn) closeWritten(code websocket.StatusCode, why string) {
	if code == protocol.CloseSlowConsumer {
		c.closeNow(code, why)
		return
	}
	c.close(code, why)
}

// stopWriting ends c's writing after a failed write; the caller then drops
// the socket (ws.CloseNow, finish).
func (c *conn) stopWriting() {
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	c.writing = false
	c.mu.Unlock()
}

// dropHeld discards what holdWith queued, for a connection that closes
// before it was ever served.
func (c *conn) dropHeld() {
	c.mu.Lock()
	c.queue = nil
	c.writing = false
	c.mu.Unlock()
}

// enqueueThenClose queues a last frame, then closes with code once it is
// written (session revoked).
func (c *conn) enqueueThenClose(frame []byte, publishedAt int64, code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, outFrame{frame, publishedAt})
	c.closing = true
	c.closeCode, c.closeWhy = code, reason
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
}

// closeAfterQueue closes with code once every queued frame is written.
func (c *conn) closeAfterQueue(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
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

// drain writes queued frames with blocking writes bounded by the write
// timeout, coalescing each round into one syscall, until the queue is
// empty; on a closing connection it finishes with the close handshake. It
// runs for a socket that did not take a whole batch at once (see writer),
// or for every connection when there are no writers.
func (c *conn) drain() {
	// The rest of a batch the writer could not finish goes first.
	if err := c.nc.Flush(c.g.cfg.WriteTimeout); err != nil {
		c.drainFailed(err)
		return
	}
	var batch []outFrame
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.idleLocked()
			closing, code, why := c.closing, c.closeCode, c.closeWhy
			c.mu.Unlock()
			if closing && code != 0 {
				c.closeWritten(code, why)
			}
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()

		c.nc.Begin()
		for _, f := range batch {
			c.nc.AppendText(f.data)
		}
		err := c.nc.Flush(c.g.cfg.WriteTimeout)
		if err == nil {
			c.g.metrics.written(batch, c.g.now())
		}
		clear(batch) // drop references to frame bytes
		if err != nil {
			c.drainFailed(err)
			return
		}
	}
}

func (c *conn) drainFailed(err error) {
	c.stopWriting()
	c.ws.CloseNow()
	c.g.finish(c, err)
}

// close performs the close handshake with code (bounded by the library's
// own timeouts).
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closedOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		if c.closeCode == 0 {
			c.closeCode, c.closeWhy = code, reason
		}
		c.mu.Unlock()
		if c.acquireGate() {
			_ = c.ws.Close(code, reason)
			<-c.gate
		} else {
			c.ws.CloseNow() // a reader is stuck mid-frame: no handshake
		}
		c.g.finish(c, nil)
	})
}

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

// closeNow sends the close frame if the socket takes it within a short
// deadline, then drops the connection: for slow consumers, whose socket may
// be full. Only the writer goroutine calls it, after its last write.
func (c *conn) closeNow(code websocket.StatusCode, reason string) {
	c.closedOnce.Do(func() {
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
		c.g.finish(c, nil)
	})
}

// slowCloseGrace bounds the 4009 close frame's write and the wait for the
// client's reply.
const slowCloseGrace = time.Second

// requestClose asks the connection to close with code after its queued
// frames (used by drain, heartbeat timeout, rate-limit abuse).
func (c *conn) requestClose(code websocket.StatusCode, reason string) {
	c.closeAfterQueue(code, reason)
}

// addSub records a subscription; it reports false when already present.
// The subscriptions gauge follows the set: every add and every removal
// (removeSub, takeSubs) moves it, so concurrent endings cannot skew it.
func (c *conn) addSub(ch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.subs[ch]; ok {
		return false
	}
	c.subs[ch] = struct{}{}
	c.g.metrics.subscriptions.Inc()
	return true
}

// removeSub forgets a subscription; it reports false when absent.
func (c *conn) removeSub(ch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.subs[ch]; !ok {
		return false
	}
	delete(c.subs, ch)
	c.g.metrics.subscriptions.Dec()
	return true
}

func (c *conn) hasSub(ch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.subs[ch]
	return ok
}

func (c *conn) subCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

// takeSubs empties the subscription set and returns what it held.
func (c *conn) takeSubs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.subs))
	for ch := range c.subs {
		out = append(out, ch)
	}
	c.subs = map[string]struct{}{}
	c.g.metrics.subscriptions.Sub(float64(len(out)))
	return out
}
