package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/stream"
)

// catchup is a connection's reading from the stream (continuity.go): the
// topics it catches up on, and a signal from its writer that the queue has
// room again. It exists while the connection catches up on anything; its
// goroutine (catchupLoop) is owned by the connection and exits when every
// topic is caught up or the connection ends.
type catchup struct {
	topics  map[*topic]struct{}
	running bool
	room    chan struct{}
}

// startCatchup has c catch up on t (t.catching[c] holds its cursor).
func (h *hub) startCatchup(c *conn, t *topic) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	if c.catchup == nil {
		c.catchup = &catchup{topics: map[*topic]struct{}{}, room: make(chan struct{}, 1)}
	}
	cu := c.catchup
	cu.topics[t] = struct{}{}
	start := !cu.running
	cu.running = true
	c.mu.Unlock()
	if start {
		go h.catchupLoop(c, cu)
	}
}

// signalRoom wakes c's catch-up after its writer emptied the queue (c.mu
// held).
func (c *conn) signalRoomLocked() {
	if c.catchup != nil {
		select {
		case c.catchup.room <- struct{}{}:
		default:
		}
	}
}

// catchupLoop reads c's catching topics from the stream, one batch at a
// time and only as fast as c's socket takes them, until each is live again.
func (h *hub) catchupLoop(c *conn, cu *catchup) {
	backoff := 50 * time.Millisecond
	for {
		c.mu.Lock()
		var t *topic
		for t = range cu.topics {
			break
		}
		if c.ended || t == nil {
			cu.running = false
			if len(cu.topics) == 0 || c.ended {
				c.catchup = nil
			}
			c.mu.Unlock()
			return
		}
		room := c.env.queueSize - len(c.queue)
		c.mu.Unlock()
		if room < max(c.env.queueSize/2, 1) {
			select {
			case <-cu.room:
			case <-time.After(time.Second):
			}
			continue
		}
		done, err := h.catchupStep(c, t, room)
		switch {
		case errors.Is(err, errOutOfWindow):
			h.metrics.cont.behind.Inc()
			h.metrics.slowConsumers.Inc()
			c.abort(protocol.CloseSlowConsumer, "slow consumer: behind the continuity window")
			continue // the next round sees it ended
		case errors.Is(err, errReplicaBehind):
			time.Sleep(backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		case err != nil:
			h.metrics.cont.streamErr.WithLabelValues("range").Inc()
			time.Sleep(backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if done {
			c.mu.Lock()
			delete(cu.topics, t)
			c.mu.Unlock()
		}
	}
}

// catchupStep delivers the next batch of t's events to c from the stream,
// at most room of them, and reports whether c is live on t again.
func (h *hub) catchupStep(c *conn, t *topic, room int) (bool, error) {
	k := h.cont.Load()
	t.mu.Lock()
	cur, ok := t.catching[c]
	if !ok {
		t.mu.Unlock()
		return true, nil // left the topic, or settled live
	}
	if n, ok, done := t.fromBacklogLocked(c, cur); ok {
		h.metrics.cont.replayed.WithLabelValues("memory").Add(float64(n))
		if done {
			t.liveLocked(c, cur, h)
		}
		t.mu.Unlock()
		return done, nil
	}
	from, at := cur.seq, cur.at
	target, exact := t.last, t.lastIsEvent
	t.mu.Unlock()
	if k == nil || h.now().Sub(at) > k.window-k.margin() {
		return false, errOutOfWindow
	}
	want := min(room, stream.MaxBatch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	evs, err := k.reader.Range(ctx, t.subject, from+1, want)
	cancel()
	if err != nil {
		return false, err
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.catching[c] != cur {
		return true, nil
	}
	n := 0
	through := uint64(0) // every event of the subject up to here is delivered
	full := false
	for _, e := range evs {
		if e.Seq > t.last {
			through = t.last // the rest comes live
			break
		}
		if ev, ok := h.replayed(t, t.subject, e.Data, e.Header); ok {
			ev.frame = protocol.Positioned(ev.frame, t.channelID, e.Seq)
			if ev.f.pass(c) {
				if c.offer(&ev) {
					full = true // the rest next round
					break
				}
				n++
			}
		}
		cur.seq, cur.at = e.Seq, e.Time
	}
	// A batch shorter than asked for ends the subject — as far as the
	// replica that answered knows. When the topic's position is an event
	// the pod saw live, the batch must reach it: a replica that lags is
	// asked again. When it is a mark (no event since), the batch is taken
	// at its word.
	if !full && through == 0 && len(evs) < want && (!exact || cur.seq >= target) {
		through = target
	}
	cur.seq = max(cur.seq, through)
	h.metrics.cont.replayed.WithLabelValues("stream").Add(float64(n))
	if cur.seq < t.last {
		if n == 0 && !full {
			return false, errReplicaBehind
		}
		return false, nil
	}
	t.liveLocked(c, cur, h)
	return true, nil
}

// liveLocked ends c's catch-up on t: it takes live events again (t.mu
// held).
func (t *topic) liveLocked(c *conn, cur *cursor, h *hub) {
	delete(t.catching, c)
	if len(t.catching) == 0 {
		t.dropBacklogLocked()
	}
	h.metrics.cont.catchupS.Observe(h.now().Sub(cur.started).Seconds())
}

// errReplicaBehind: the stream's answer stopped short of what the pod saw
// live; the catch-up asks again after a pause.
var errReplicaBehind = errors.New("the stream replica that answered is behind the live position")
