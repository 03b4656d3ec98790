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
// It takes the topics in turns: one whose read fails or whose replica lags
// does not hold up the others; it pauses only when none made progress.
func (h *hub) catchupLoop(c *conn, cu *catchup) {
	backoff := 50 * time.Millisecond
	for {
		topics, ok := cu.round(c)
		if !ok {
			return
		}
		progressed := false
		for _, t := range topics {
			room, ok := c.catchupRoom(cu)
			if !ok {
				break
			}
			done, err := h.catchupStep(c, t, room)
			switch {
			case errors.Is(err, errOutOfWindow):
				h.metrics.cont.behind.Inc()
				h.metrics.slowConsumers.Inc()
				c.abort(protocol.CloseSlowConsumer, "slow consumer: behind the continuity window")
				progressed = true // the next round sees it ended
			case errors.Is(err, errReplicaBehind):
			case err != nil:
				h.metrics.cont.streamErr.WithLabelValues("range").Inc()
			default:
				progressed = true
				if done {
					c.mu.Lock()
					delete(cu.topics, t)
					c.mu.Unlock()
				}
			}
		}
		if progressed {
			backoff = 50 * time.Millisecond
			continue
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// round returns the topics c still catches up on, or false (and the loop
// is over) when there are none or c ended.
func (cu *catchup) round(c *conn) ([]*topic, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || len(cu.topics) == 0 {
		cu.running = false
		if len(cu.topics) == 0 || c.ended {
			c.catchup = nil
		}
		return nil, false
	}
	topics := make([]*topic, 0, len(cu.topics))
	for t := range cu.topics {
		topics = append(topics, t)
	}
	return topics, true
}

// catchupRoom waits until c's queue is at most half full (or a second
// passed) and returns the room in it; false when c ended.
func (c *conn) catchupRoom(cu *catchup) (int, bool) {
	for {
		c.mu.Lock()
		ended := c.ended
		room := c.env.queueSize - len(c.queue)
		c.mu.Unlock()
		if ended {
			return 0, false
		}
		if room >= max(c.env.queueSize/2, 1) {
			return room, true
		}
		select {
		case <-cu.room:
		case <-time.After(time.Second):
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
	if done, served := h.fromMemoryLocked(t, c, cur); served {
		t.mu.Unlock()
		return done, nil
	}
	from, at := cur.seq, cur.at
	target, exact := t.last, t.lastIsEvent
	t.mu.Unlock()
	if k == nil || h.now().Sub(at) > k.window-k.margin() {
		return false, errOutOfWindow
	}
	// A whole batch, whatever the room: what this connection cannot take
	// yet waits in the topic's history, for it and for every other one
	// that resumes or catches up from about the same place.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	evs, err := k.reader.Range(ctx, t.subject, from+1, stream.MaxBatch)
	cancel()
	if err != nil {
		return false, err
	}
	batch := make([]backlogEvent, 0, len(evs))
	for _, e := range evs {
		if ev, ok := h.replayed(t, t.subject, e.Data, e.Header); ok {
			ev.frame = protocol.Positioned(ev.frame, t.channelID, e.Seq)
			batch = append(batch, backlogEvent{seq: e.Seq, at: e.Time, ev: ev})
		}
	}
	// The batch holds every event of the subject after from up to its
	// last one; a batch shorter than asked for ends the subject — as far
	// as the replica that answered knows. When the topic's position is an
	// event the pod saw live, the batch must reach it (a replica that lags
	// is asked again); when it is a mark, the batch is taken at its word.
	through := from
	if len(evs) > 0 {
		through = evs[len(evs)-1].Seq
	}
	if len(evs) < stream.MaxBatch && (!exact || through >= target) {
		through = max(through, target)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.catching[c] != cur {
		return true, nil
	}
	t.keepHistoryLocked(from, through, batch)
	done, served := h.fromMemoryLocked(t, c, cur)
	if !served || (!done && cur.seq == from) {
		return false, errReplicaBehind
	}
	return done, nil
}

// fromMemoryLocked delivers to c what the topic holds in memory after its
// cursor — the history read from the stream, then the backlog of what was
// dispatched meanwhile — and ends its catch-up when that reaches the
// topic's position (t.mu held). served is false when memory does not reach
// back to the cursor.
func (h *hub) fromMemoryLocked(t *topic, c *conn, cur *cursor) (done, served bool) {
	if t.marked && cur.seq == t.last {
		// Nothing after the cursor: an empty read would prove no more.
		t.liveLocked(c, cur, h)
		return true, true
	}
	n, served, done := t.fromHistoryLocked(c, cur)
	if served && !done && cur.seq < t.last {
		if m, ok, d := t.fromBacklogLocked(c, cur); ok {
			n, done = n+m, d
		}
	}
	if !served {
		m, ok, d := t.fromBacklogLocked(c, cur)
		n, served, done = m, ok, d
	}
	h.metrics.cont.replayed.WithLabelValues("memory").Add(float64(n))
	if done || (served && cur.seq >= t.last) {
		t.liveLocked(c, cur, h)
		return true, true
	}
	return false, served
}

// liveLocked ends c's catch-up on t: it takes live events again (t.mu
// held).
func (t *topic) liveLocked(c *conn, cur *cursor, h *hub) {
	delete(t.catching, c)
	if len(t.catching) == 0 {
		t.dropMemoryLocked()
	}
	h.metrics.cont.catchupS.Observe(h.now().Sub(cur.started).Seconds())
}

// errReplicaBehind: the stream's answer stopped short of what the pod saw
// live; the catch-up asks again after a pause.
var errReplicaBehind = errors.New("the stream replica that answered is behind the live position")
