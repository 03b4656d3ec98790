package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/batchconn"
	"github.com/ocvr/realtime/pkg/protocol"
)

// connEnv is what every connection of a pod needs from the pod: its limits,
// its metrics and clock, and the one teardown of a connection. One per pod,
// shared; a connection holds no pointer to the Gateway.
type connEnv struct {
	queueSize    int
	writeTimeout time.Duration
	frameRate    float64
	frameBurst   int
	floodLimit   int
	metrics      *metrics
	now          func() time.Time
	// teardown releases what the pod holds for an ended connection (its
	// topics, poller registration, admission slot, presence); finish calls
	// it exactly once.
	teardown func(c *conn, code int, reason string)
}

// conn is one client socket. Its frames are read by the poller's read
// bursts (or a reader goroutine) and written by a shared writer (writer.go),
// or by a drain goroutine of its own while its socket does not take a whole
// batch. An idle connection has no goroutine.
//
// Its end has one owner: finish (lifecycle.go), which runs once, whoever
// sees the end first. The ways to ask for an end are closeAfterQueue (the
// close handshake after the queued frames) and abort (drop the queue, close
// frame best effort).
type conn struct {
	id          string
	userID      int64
	sessionID   string
	displayName string
	opened      time.Time
	expiresAt   time.Time // the session's expiry (zero: none known)

	ws *websocket.Conn
	nc *batchconn.Conn // the hijacked socket under ws, for batched writes
	// deflate: the client negotiated permessage-deflate (events with a
	// compressed form are written compressed)
	deflate bool
	env     *connEnv
	w       *writer // writes the queue (a drain goroutine finishes what the socket did not take)

	lastSeen atomic.Int64 // unix nanoseconds of the last client frame

	mu        sync.Mutex
	queue     []outFrame // outbound frames, FIFO, at most env.queueSize
	writing   bool       // on a writer's list, or a drain goroutine is writing queue
	closing   bool       // no more frames are accepted
	ended     bool       // finish has run: nothing may be added to it any more
	closeCode websocket.StatusCode
	closeWhy  string
	subs      map[string]struct{} // channel ids this connection is subscribed to
	pollToken uint64              // the poller's token while the socket is armed
	catchup   *catchup            // while it reads subjects from the stream (catchup.go)
	resumable bool                // it presented a valid resume token: subscribes may resume (set before it serves)

	// Read-loop state (only the reading goroutine touches these).
	tokens    float64
	tokensAt  time.Time
	limited   bool // in a rate-limited episode: RATE_LIMITED already sent
	overLimit int  // frames refused in the current episode

	leave     func()        // gives back the admission slot (teardown)
	handshake sync.Once     // the close handshake runs once
	gate      chan struct{} // held while reading (poller mode) and during a close handshake
}

// outFrame is a queued frame, its compressed payload when the connection
// gets it compressed (nil: uncompressed), and the time its event was
// published (unix nanoseconds, 0 when unknown), for the delivery-latency
// histogram.
type outFrame struct {
	data        []byte
	z           []byte
	publishedAt int64
}

// enqueue queues a frame of the gateway's own (heartbeat_ack, error,
// subscribed, …) for writing. It returns false if the connection is
// closing. These frames may use a small reserve past the queue's bound: a
// connection catching up keeps its queue full of events, and the answer to
// its heartbeat must not make it a slow consumer. (The client's frame rate
// limit bounds them.)
func (c *conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	ok, start := c.enqueueLocked(outFrame{data: frame}, c.env.queueSize+controlReserve)
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
	return ok
}

// controlReserve is the room past the queue's bound for the gateway's own
// frames.
const controlReserve = 32

// enqueueAt queues a bus event without a position. A full queue makes this
// a slow consumer: it is aborted with 4009 and nobody else waits for it.
func (c *conn) enqueueAt(f outFrame) bool {
	c.mu.Lock()
	ok, start := c.enqueueLocked(f, c.env.queueSize)
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
	ok, start := c.enqueueLocked(outFrame{data: frame}, c.env.queueSize+controlReserve)
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
	return ok
}

// enqueueLocked queues frame with c.mu held; start says the caller must
// start a writer once it has released c.mu.
func (c *conn) enqueueLocked(f outFrame, limit int) (ok, start bool) {
	if c.closing {
		return false, false
	}
	if len(c.queue) >= limit {
		// Slow consumer: the backlog is dropped at once. Frames only wait
		// while a writer runs (or is held, see holdWith), so the writer
		// closes with 4009 once its in-flight write completes or hits the
		// write timeout: the client gets whole frames then the close code,
		// never a frame torn by a deadline.
		c.closing = true
		c.queue = nil
		c.closeCode, c.closeWhy = protocol.CloseSlowConsumer, "slow consumer"
		c.env.metrics.slowConsumers.Inc()
		return false, false
	}
	c.queue = append(c.queue, f)
	start = !c.writing
	c.writing = true
	return true, start
}

// offer queues a positioned event (continuity.go). Unlike enqueue, a full
// queue does not end the connection: offer reports it, and the caller has
// the connection catch up from the stream instead.
func (c *conn) offer(ev *event) (full bool) {
	if ev.typ == protocol.TypeSessionRevoked {
		c.enqueueThenClose(ev.frame, ev.publishedAt, protocol.CloseSessionRevoked, "session revoked")
		return false
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.env.queueSize {
		c.mu.Unlock()
		return true
	}
	c.queue = append(c.queue, outFrame{ev.frame, ev.compressedFor(c), ev.publishedAt})
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
	return false
}

// hold holds the writer (none starts) until release: frames queued
// meanwhile wait, and prepend can still put one before them.
func (c *conn) hold() {
	c.mu.Lock()
	c.writing = true
	c.mu.Unlock()
}

// prepend puts frame first in the queue of a held connection.
func (c *conn) prepend(frame []byte) {
	c.mu.Lock()
	c.queue = append(c.queue, outFrame{})
	copy(c.queue[1:], c.queue)
	c.queue[0] = outFrame{data: frame}
	c.mu.Unlock()
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
func (c *conn) startWriter() { c.w.schedule(c) }

// idleLocked marks c as having nothing left to write (c.mu held).
func (c *conn) idleLocked() {
	c.writing = false
	if cap(c.queue) > 16 {
		c.queue = nil // an idle connection keeps no burst-sized queue
	}
}

// drain writes queued frames with blocking writes bounded by the write
// timeout, coalescing each round into one syscall, until the queue is
// empty; on a closing connection it finishes with the close handshake. It
// runs on a goroutine of the connection's own, started by its writer for a
// socket that did not take a whole batch at once, and exits when the queue
// is empty or a write fails.
func (c *conn) drain() {
	// The rest of a batch the writer could not finish goes first.
	if err := c.nc.Flush(c.env.writeTimeout); err != nil {
		c.writeFailed(err)
		return
	}
	var batch []outFrame
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.idleLocked()
			c.mu.Unlock()
			c.closeIfAsked()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.signalRoomLocked()
		c.mu.Unlock()

		c.nc.Begin()
		var n batchBytes
		for _, f := range batch {
			c.appendFrame(f, &n)
		}
		err := c.nc.Flush(c.env.writeTimeout)
		if err == nil {
			c.env.metrics.written(batch, c.env.now())
			n.record(c.env.metrics.compression)
		}
		clear(batch) // drop references to frame bytes
		if err != nil {
			c.writeFailed(err)
			return
		}
	}
}

// addSub records a subscription; it reports false when already present or
// when the connection is closing or ended (a subscribe racing the end must
// not leave a subscription behind). The subscriptions gauge follows the
// set: every add and every removal (removeSub, takeSubs) moves it.
func (c *conn) addSub(ch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.ended {
		return false
	}
	if _, ok := c.subs[ch]; ok {
		return false
	}
	c.subs[ch] = struct{}{}
	c.env.metrics.subscriptions.Inc()
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
	c.env.metrics.subscriptions.Dec()
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
	c.env.metrics.subscriptions.Sub(float64(len(out)))
	return out
}

func (c *conn) send(typ string, data any) {
	if c.enqueue(protocol.MustEncode(typ, data)) {
		c.env.metrics.frameOut(typ)
	}
}

func (c *conn) sendError(code, msg, channelID string) {
	c.env.metrics.errorSent(code)
	c.send(protocol.TypeError, protocol.Error{Code: code, Message: msg, ChannelID: channelID})
}

// allowFrame applies the per-connection token bucket to one client frame
// (data or control). The first refused frame of an episode gets
// RATE_LIMITED; a client that keeps flooding past the flood limit is closed
// with 4008.
func (c *conn) allowFrame(now time.Time) bool {
	c.tokens += now.Sub(c.tokensAt).Seconds() * c.env.frameRate
	if max := float64(c.env.frameBurst); c.tokens > max {
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
	if c.overLimit > c.env.floodLimit {
		c.closeAfterQueue(protocol.CloseRateLimited, "rate limit abuse")
	}
	return false
}
