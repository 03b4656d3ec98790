package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/ocvr/realtime/gateway/internal/resume"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/stream"
)

// Continuity (DESIGN.md §2a, gateway/README.md "Continuity"): channel and
// user events published through the event stream arrive republished with
// their position (Nats-Sequence) and the previous position of the same
// subject (Nats-Last-Sequence). Per subject the pod keeps how far it has
// dispatched (topic.last); every delivered event carries its position, so
// a client holds a cursor per subject. A connection that must not take
// live events for a while — it resumes from a cursor, its queue overflowed,
// or the pod saw a gap — reads the subject from the stream at its cursor
// (catchup.go) and rejoins live delivery when it has caught up.

// continuity is what the pod needs of the event stream.
type continuity struct {
	reader *stream.Reader
	window time.Duration // how long the stream keeps events
	signer *resume.Signer
	marks  *marks // the stream's last position for new topics
}

func newContinuity(r *stream.Reader, window time.Duration, signer *resume.Signer) *continuity {
	return &continuity{reader: r, window: window, signer: signer, marks: &marks{read: r.Last}}
}

// margin is how much of the window is not trusted: the stream's replicas
// age events out by their own clocks.
func (k *continuity) margin() time.Duration { return min(10*time.Second, k.window/10) }

// cursor is a catching-up connection's place in one subject: every event
// of the subject up to seq has been delivered to it (or precedes its
// subscription), and at is no later than when the stream stored the first
// event it still needs (its age bounds the catch-up).
type cursor struct {
	seq     uint64
	at      time.Time
	started time.Time // for the catch-up duration histogram
	reason  string
}

// mark sets a new topic's position to the stream's last sequence, read
// after its SUB was written: every event stored after it is delivered live
// (or detected missing by its successor's Nats-Last-Sequence). It reports
// whether the read was answered — which also proves the server has the
// subscription (the read followed it on the same connection).
func (h *hub) mark(ctx context.Context, t *topic) bool {
	k := h.cont.Load()
	if k == nil || t.scope == protocol.ScopeBroadcast {
		return false
	}
	h.hooks.beforeMark(t.subject)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	last, err := k.marks.get(ctx)
	if err != nil {
		h.metrics.cont.streamErr.WithLabelValues("mark").Inc()
		return false // the topic's first positioned event marks it instead
	}
	t.mu.Lock()
	if !t.marked {
		t.last, t.marked = last, true
		t.markSeq, t.markedByIt = last, true
	}
	t.mu.Unlock()
	return true
}

// position is c's cursor on t: where delivery to it stands.
func (t *topic) position(c *conn) uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if cur, ok := t.catching[c]; ok {
		return cur.seq
	}
	return t.last
}

// dispatchPositioned delivers an event with a stream position to the
// topic's live connections, in position order, exactly once: an event at
// or below the topic's position was delivered already (a gap fill got there
// first); the events between the topic's position and the event's
// predecessor, which never reached the pod, are read from the stream and
// delivered first (fillGap); a connection whose queue is full catches up
// instead of being cut off.
func (h *hub) dispatchPositioned(t *topic, ev event, pos stream.Position) {
	t.mu.RLock()
	marked, last := t.marked, t.last
	t.mu.RUnlock()
	if marked && pos.Last > last && pos.Seq > last {
		h.metrics.cont.gaps.Inc()
		h.fillGap(t, last, pos.Last)
	}
	h.deliverPositioned(t, ev, pos.Seq)
}

// deliverPositioned delivers the event at seq to t's live connections and
// moves the topic's position to it.
func (h *hub) deliverPositioned(t *topic, ev event, seq uint64) (n int) {
	ev.frame = protocol.Positioned(ev.frame, t.channelID, seq)
	now := h.now()
	var behind []*conn
	t.mu.Lock()
	if t.marked && seq <= t.last {
		t.mu.Unlock()
		h.metrics.cont.late.Inc()
		return 0
	}
	prev, known := t.last, t.marked
	t.last, t.marked, t.lastIsEvent = seq, true, true
	for _, c := range t.conns {
		if _, ok := t.catching[c]; ok || !ev.f.pass(c) {
			continue
		}
		if !c.offer(&ev) {
			n++
			continue
		}
		if t.catching == nil {
			t.catching = map[*conn]*cursor{}
		}
		from := prev
		if !known {
			from = seq - 1 // nothing of the subject between its predecessor and it
		}
		t.catching[c] = &cursor{seq: from, at: now, started: now, reason: catchupOverflow}
		behind = append(behind, c)
	}
	if known {
		t.recordLocked(prev, seq, ev, now)
	} else {
		// The topic's first event, before its mark: what came before it
		// was never dispatched here, so no backlog can start at prev.
		t.dropBacklogLocked()
	}
	t.mu.Unlock()
	for _, c := range behind {
		h.metrics.cont.catchups.WithLabelValues(catchupOverflow).Inc()
		h.startCatchup(c, t)
	}
	h.metrics.delivered(ev.typ, n)
	return n
}

// skipPositioned moves t past an event that is not delivered (a refused
// payload, a delete marker) when it directly follows the topic's position.
func (h *hub) skipPositioned(t *topic, pos stream.Position) {
	t.mu.Lock()
	if t.marked && pos.Last == t.last && pos.Seq > t.last {
		t.last, t.lastIsEvent = pos.Seq, true
	}
	t.mu.Unlock()
}

// fillGap delivers t's events after from up to to, which never reached the
// pod, from the stream: one read for the topic, on its dispatcher (gaps are
// rare, and a lost republish usually comes alone). If the stream does not
// give them all, the live connections catch up one by one instead.
func (h *hub) fillGap(t *topic, from, to uint64) {
	k := h.cont.Load()
	for tries := 0; k != nil && from < to && tries < 3; tries++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		evs, err := k.reader.Range(ctx, t.subject, from+1, stream.MaxBatch)
		cancel()
		if err != nil {
			h.metrics.cont.streamErr.WithLabelValues("range").Inc()
			continue
		}
		for _, e := range evs {
			if e.Seq > to {
				break
			}
			if ev, ok := h.event(t, t.subject, e.Data, e.Header); ok {
				h.metrics.cont.replayed.WithLabelValues("stream").Add(float64(h.deliverPositioned(t, ev, e.Seq)))
			}
			from = e.Seq
			tries = 0
		}
		if len(evs) > 0 && evs[len(evs)-1].Seq >= to {
			return
		}
	}
	if from < to {
		t.mu.RLock()
		last := t.last
		t.mu.RUnlock()
		h.gapTo(t, last, to)
	}
}

// errOutOfWindow: the stream cannot prove it still holds every event after
// a cursor.
var errOutOfWindow = errors.New("cursor outside the continuity window")

// checkCursor tells whether the stream still holds every event after seq:
// the event at seq (the first one, for 0) is still stored and younger than
// the window less its margin (events age out oldest first). It returns the
// time to count the catch-up's age from.
func (h *hub) checkCursor(ctx context.Context, seq uint64) (time.Time, error) {
	k := h.cont.Load()
	if k == nil {
		return time.Time{}, errOutOfWindow
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ev, err := k.reader.At(ctx, max(seq, 1))
	for tries := 0; seq > 0 && errors.Is(err, stream.ErrNotFound) && tries < 3; tries++ {
		// A cursor the client got a moment ago may not have reached the
		// replica that answered yet: ask again while the stream's last
		// position (as some replica sees it) is still below it.
		if last, lerr := k.reader.Last(ctx); lerr != nil || last >= seq {
			break
		}
		time.Sleep(100 * time.Millisecond)
		ev, err = k.reader.At(ctx, seq)
	}
	switch {
	case errors.Is(err, stream.ErrNotFound):
		if seq == 0 {
			// Nothing stored yet, or everything aged out: only an empty
			// stream proves nothing was missed.
			last, lerr := k.reader.Last(ctx)
			if lerr == nil && last == 0 {
				return h.now(), nil
			}
		}
		return time.Time{}, errOutOfWindow
	case err != nil:
		h.metrics.cont.streamErr.WithLabelValues("probe").Inc()
		return time.Time{}, err
	}
	if h.now().Sub(ev.Time) > k.window-k.margin() {
		return time.Time{}, errOutOfWindow
	}
	return ev.Time, nil
}

// resumeResult is the metrics label of a resume's outcome.
func resumeResult(err error) string {
	switch {
	case err == nil:
		return resumeOK
	case errors.Is(err, errOutOfWindow):
		return resumeOutOfWindow
	case errors.Is(err, resume.ErrInvalid):
		return resumeInvalidToken
	default:
		return resumeUnavailable
	}
}

// settleResume ends the wait of a connection that joined t to resume from
// a cursor: with the stream's proof (err nil) it catches up from there;
// without it, it is live from the topic's position at once and the client
// is told to refetch. It returns the cursor the client continues from.
func (h *hub) settleResume(t *topic, c *conn, at time.Time, err error) uint64 {
	t.mu.Lock()
	cur, ok := t.catching[c]
	if !ok {
		t.mu.Unlock()
		return t.position(c)
	}
	if err != nil {
		delete(t.catching, c)
		if len(t.catching) == 0 {
			t.dropMemoryLocked()
		}
		last := t.last
		t.mu.Unlock()
		return last
	}
	cur.at = at
	seq := cur.seq
	t.mu.Unlock()
	return seq
}

func boolPtr(b bool) *bool { return &b }

// resyncLoop looks, after every NATS reconnect, for events the pod missed
// while it was cut off: a subject that gets no new event would otherwise
// never show the gap (its successor's Nats-Last-Sequence is what reveals
// one).
func (g *Gateway) resyncLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.nextReconnect():
		}
		g.hub.resync(ctx)
	}
}

// resyncRate bounds the stream reads of a resync (per second).
const resyncRate = 500

// resync checks each positioned topic for stored events past its position;
// where there are, its live connections catch up from the stream.
func (h *hub) resync(ctx context.Context) {
	k := h.cont.Load()
	if k == nil {
		return
	}
	h.mu.RLock()
	topics := make([]*topic, 0, len(h.topics))
	for _, t := range h.topics {
		if t.scope != protocol.ScopeBroadcast {
			topics = append(topics, t)
		}
	}
	h.mu.RUnlock()
	tick := time.NewTicker(time.Second / resyncRate)
	defer tick.Stop()
	for _, t := range topics {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.RLock()
		from, marked := t.last, t.marked
		t.mu.RUnlock()
		if !marked {
			continue
		}
		missed, err := h.lastAfter(ctx, k, t.subject, from)
		if err != nil {
			h.metrics.cont.streamErr.WithLabelValues("range").Inc()
			continue
		}
		if missed > 0 {
			h.metrics.cont.gaps.Inc()
			h.gapTo(t, from, missed)
		}
	}
}

// lastAfter returns the position of the last stored event of subject after
// from (0: none).
func (h *hub) lastAfter(ctx context.Context, k *continuity, subject string, from uint64) (uint64, error) {
	var last uint64
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		evs, err := k.reader.Range(rctx, subject, from+1, stream.MaxBatch)
		cancel()
		if err != nil || len(evs) == 0 {
			return last, err
		}
		last = evs[len(evs)-1].Seq
		if len(evs) < stream.MaxBatch {
			return last, nil
		}
		from = last
	}
}

// gapTo moves t's live connections to catching up from its position from,
// and the topic's position to last: events up to last never arrived live.
// Nothing happens if a live event moved the topic meanwhile (its own gap
// check saw the same).
func (h *hub) gapTo(t *topic, from, last uint64) {
	now := h.now()
	var behind []*conn
	t.mu.Lock()
	if t.last != from {
		t.mu.Unlock()
		return
	}
	for _, c := range t.conns {
		if _, ok := t.catching[c]; ok {
			continue
		}
		if t.catching == nil {
			t.catching = map[*conn]*cursor{}
		}
		t.catching[c] = &cursor{seq: from, at: now, started: now, reason: catchupGap}
		behind = append(behind, c)
	}
	t.last, t.lastIsEvent = last, true
	t.dropBacklogLocked() // it cannot vouch for the events up to last
	t.mu.Unlock()
	for _, c := range behind {
		h.metrics.cont.catchups.WithLabelValues(catchupGap).Inc()
		h.startCatchup(c, t)
	}
}
