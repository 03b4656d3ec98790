package gateway

import (
	"sort"
	"time"
)

// The backlog is what makes a burst of slow readers cheap: while any
// connection of a topic catches up, the topic keeps the events it
// dispatches — the frames every live connection got, shared, not copied —
// so that the connections behind read them from memory instead of each
// asking the stream for the same events. A connection whose cursor is
// older than the backlog (a resume, or one that fell behind its start)
// reads the stream until it reaches it.

// Bounds of one topic's backlog; past them the oldest events go (and the
// connections still before them read those from the stream).
const (
	maxBacklogEvents = 1 << 14
	maxBacklogBytes  = 16 << 20
)

type backlogEvent struct {
	seq uint64
	at  time.Time // when the pod dispatched it
	ev  event
}

// record keeps the event at seq, dispatched after position prev, while a
// connection catches up (t.mu held).
func (t *topic) recordLocked(prev, seq uint64, ev event, now time.Time) {
	if len(t.catching) == 0 {
		t.dropBacklogLocked()
		return
	}
	if t.backlog == nil {
		t.backlogFrom = prev
	}
	t.backlog = append(t.backlog, backlogEvent{seq: seq, at: now, ev: ev})
	t.backlogBytes += len(ev.frame)
	drop := 0
	for len(t.backlog)-drop > maxBacklogEvents || (t.backlogBytes > maxBacklogBytes && len(t.backlog)-drop > 1) {
		t.backlogBytes -= len(t.backlog[drop].ev.frame)
		t.backlogFrom = t.backlog[drop].seq
		drop++
	}
	if drop > 0 {
		n := copy(t.backlog, t.backlog[drop:])
		clear(t.backlog[n:])
		t.backlog = t.backlog[:n]
	}
}

// dropBacklogLocked forgets the backlog (t.mu held): nobody catches up, or
// the topic's position moved past events it never dispatched (gapTo).
func (t *topic) dropBacklogLocked() {
	t.backlog, t.backlogBytes, t.backlogFrom = nil, 0, 0
}

// fromBacklogLocked delivers to c, from the backlog, the events after its
// cursor (t.mu held). ok is false when the backlog does not reach back to
// the cursor; done when c has every event up to the topic's position.
func (t *topic) fromBacklogLocked(c *conn, cur *cursor) (n int, ok, done bool) {
	if t.backlog == nil || cur.seq < t.backlogFrom {
		return 0, false, false
	}
	i := sort.Search(len(t.backlog), func(i int) bool { return t.backlog[i].seq > cur.seq })
	for ; i < len(t.backlog); i++ {
		b := &t.backlog[i]
		if b.ev.f.pass(c) {
			if c.offer(&b.ev) {
				return n, true, false // full: the rest when the writer made room
			}
			n++
		}
		cur.seq, cur.at = b.seq, b.at
	}
	// The backlog holds every event after backlogFrom up to the position.
	cur.seq = max(cur.seq, t.last)
	return n, true, true
}
