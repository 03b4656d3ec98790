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
		t.dropMemoryLocked()
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

// dropMemoryLocked forgets backlog and history: nobody catches up (t.mu
// held).
func (t *topic) dropMemoryLocked() {
	t.dropBacklogLocked()
	t.hist, t.histBytes, t.histFrom, t.histThrough = nil, 0, 0, 0
}

// keepHistoryLocked keeps a batch read from the stream — every event of
// the subject after from up to through — as the topic's history: appended
// when it continues the history, in its place otherwise (t.mu held).
func (t *topic) keepHistoryLocked(from, through uint64, batch []backlogEvent) {
	if through <= from {
		return
	}
	if t.hist == nil || from != t.histThrough {
		t.hist, t.histBytes, t.histFrom = nil, 0, from
	}
	t.hist = append(t.hist, batch...)
	for _, b := range batch {
		t.histBytes += len(b.ev.frame)
	}
	t.histThrough = through
	drop := 0
	for len(t.hist)-drop > maxBacklogEvents || (t.histBytes > maxBacklogBytes && len(t.hist)-drop > 1) {
		t.histBytes -= len(t.hist[drop].ev.frame)
		t.histFrom = t.hist[drop].seq
		drop++
	}
	if drop > 0 {
		n := copy(t.hist, t.hist[drop:])
		clear(t.hist[n:])
		t.hist = t.hist[:n]
	}
}

// fromHistoryLocked delivers to c, from the history, the events after its
// cursor up to the topic's position (t.mu held). ok is false when the
// history does not hold the cursor; done when c has every event up to the
// topic's position.
func (t *topic) fromHistoryLocked(c *conn, cur *cursor) (n int, ok, done bool) {
	if t.hist == nil && t.histThrough == 0 || cur.seq < t.histFrom || cur.seq >= t.histThrough {
		return 0, false, false
	}
	i := sort.Search(len(t.hist), func(i int) bool { return t.hist[i].seq > cur.seq })
	for ; i < len(t.hist) && t.hist[i].seq <= t.last; i++ {
		b := &t.hist[i]
		if b.ev.f.pass(c) {
			if c.offer(&b.ev) {
				return n, true, false
			}
			n++
		}
		cur.seq, cur.at = b.seq, b.at
	}
	cur.seq = max(cur.seq, min(t.histThrough, t.last))
	return n, true, cur.seq >= t.last
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
