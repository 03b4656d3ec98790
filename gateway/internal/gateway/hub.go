package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/gateway/internal/deflate"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/stream"
)

// topic is one bus subject this pod listens to, shared by every local
// connection that wants it: one NATS subscription per subject per pod.
type topic struct {
	subject   string
	scope     protocol.Scope
	channelID string // ScopeChannel

	refs  int           // guarded by hub.mu
	ready chan struct{} // closed once the NATS subscription is live (or failed)
	err   error         // set before ready is closed
	// sub is the topic's NATS subscription. The dispatcher drops messages
	// of any other subscription to the subject: after the last connection
	// leaves, the old subscription may still deliver (its UNSUB in flight,
	// or messages already in the shard) while a new topic for the subject
	// has its own, and those messages would be delivered twice.
	sub atomic.Pointer[nats.Subscription]

	mu    sync.RWMutex
	conns []*conn
	index map[*conn]int

	// Continuity (continuity.go), guarded by mu: every event of the
	// subject with a position up to last has been dispatched to the live
	// connections (marked: last is known); catching holds the connections
	// that read the subject from the stream instead of live, at their
	// cursor.
	last        uint64
	marked      bool
	lastIsEvent bool // last is the position of an event of the subject (not a mark)
	catching    map[*conn]*cursor
	// backlog (backlog.go): the events dispatched after backlogFrom while
	// connections catch up, for them to read from memory.
	backlog      []backlogEvent
	backlogFrom  uint64
	backlogBytes int
	// hist (backlog.go): events read from the stream for connections
	// behind the backlog — every event after histFrom up to histThrough —
	// shared by all that catch up from there.
	hist        []backlogEvent
	histFrom    uint64
	histThrough uint64
	histBytes   int
	// markSeq is the position mark gave the topic, when it (and not a
	// first event) marked it: the start of connections that joined before.
	markSeq    uint64
	markedByIt bool
}

// add adds c; it reports false when c is already there. pos is where c's
// live delivery starts (pending: the topic is not marked yet).
func (t *topic) add(c *conn, from *cursor) (pos uint64, pending, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.index[c]; ok {
		return 0, false, false
	}
	if from != nil {
		// A resume: no live event reaches c until it has caught up.
		if t.catching == nil {
			t.catching = map[*conn]*cursor{}
		}
		t.catching[c] = from
	}
	t.index[c] = len(t.conns)
	t.conns = append(t.conns, c)
	return t.last, !t.marked, true
}

// start is where the live delivery of a connection added while the topic
// was not marked starts: the mark, if mark set it (no event reached the
// connection before), else 0 (the first event marked the topic, and the
// connection got it).
func (t *topic) start() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.markedByIt {
		return t.markSeq
	}
	return 0
}

func (t *topic) remove(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[c]
	if !ok {
		return false
	}
	last := len(t.conns) - 1
	t.conns[i] = t.conns[last]
	t.index[t.conns[i]] = i
	t.conns[last] = nil
	t.conns = t.conns[:last]
	delete(t.index, c)
	delete(t.catching, c)
	if len(t.catching) == 0 {
		t.dropMemoryLocked()
	}
	return true
}

// snapshot returns the current connections (for operations that must not
// hold the topic lock while they work).
func (t *topic) snapshot() []*conn {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]*conn(nil), t.conns...)
}

// hub is the pod's fan-out index: subject → topic → local connections.
// Bus messages from every subscription go into a few shard channels (by
// subject, so each subject's order is kept) that dispatcher goroutines
// drain: no goroutine per subscription.
type hub struct {
	nc         *nats.Conn
	metrics    *metrics
	rejections *rejections
	cont       atomic.Pointer[continuity] // nil until the stream is provisioned (or with continuity off)
	streamName string

	mu     sync.RWMutex
	topics map[string]*topic

	shards []chan *nats.Msg
	hooks  *hooks
	now    func() time.Time
	enc    *deflate.Encoder // compresses events once for every socket that negotiated it (nil: off)
}

func newHub(nc *nats.Conn, m *metrics, r *rejections, hk *hooks, shards, shardBuf int) *hub {
	h := &hub{nc: nc, metrics: m, rejections: r, hooks: hk, topics: map[string]*topic{}}
	for i := 0; i < shards; i++ {
		h.shards = append(h.shards, make(chan *nats.Msg, shardBuf))
	}
	return h
}

func (h *hub) shardFor(subject string) chan *nats.Msg {
	// FNV-1a: cheap, and the same subject always lands on the same shard.
	var x uint32 = 2166136261
	for i := 0; i < len(subject); i++ {
		x ^= uint32(subject[i])
		x *= 16777619
	}
	return h.shards[x%uint32(len(h.shards))]
}

// run dispatches bus messages until ctx ends.
func (h *hub) run(ctx context.Context, wg *sync.WaitGroup) {
	for _, ch := range h.shards {
		wg.Add(1)
		go func(ch chan *nats.Msg) {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-ch:
					h.dispatch(m)
				}
			}
		}(ch)
	}
}

// join adds c to the topic of subject, subscribing on NATS if this is the
// pod's first connection for it. It returns once the subscription is live
// on the server, so events published afterwards reach c. c is in the topic
// from the moment the topic counts it, so a leave that comes at any time
// after join began finds it there: nothing is left behind by a connection
// that ends while it joins.
//
// from, when not nil, makes c a resuming member: it gets no live event of
// the subject until it has caught up from the stream (continuity.go).
//
// It returns c's position: where its live delivery of the subject starts,
// as of when it entered the topic (events queued for it since follow it).
func (h *hub) join(ctx context.Context, subject string, scope protocol.Scope, channelID string, c *conn, from *cursor) (uint64, error) {
	h.mu.Lock()
	t := h.topics[subject]
	created := false
	if t == nil {
		t = &topic{subject: subject, scope: scope, channelID: channelID, ready: make(chan struct{}), index: map[*conn]int{}}
		h.topics[subject] = t
		created = true
	}
	pos, pending, ok := t.add(c, from)
	if !ok {
		h.mu.Unlock()
		return t.position(c), nil // already in the topic: a repeat join counts once
	}
	t.refs++
	h.mu.Unlock()

	if created {
		// Pending limits on a channel subscription are the channel's
		// capacity; overflow is reported as a slow consumer.
		sub, err := h.nc.ChanSubscribe(subject, h.shardFor(subject))
		// The subscription must be live at the server before the join
		// returns. The mark's read goes out after the SUB on the same
		// connection, so its answer proves that as a flush would: one
		// round trip per new topic instead of two. Without a mark, flush.
		if err == nil && !h.mark(ctx, t) {
			err = h.nc.FlushTimeout(5 * time.Second)
		}
		if err != nil {
			t.err = fmt.Errorf("subscribe %s: %w", subject, err)
			if sub != nil {
				_ = sub.Unsubscribe()
			}
		} else {
			t.sub.Store(sub)
			h.metrics.busSubs.Inc()
		}
		close(t.ready)
	} else {
		select {
		case <-t.ready:
		case <-ctx.Done():
			h.leave(subject, c)
			return 0, ctx.Err()
		}
	}
	if t.err != nil {
		h.leave(subject, c)
		return 0, t.err
	}
	if pending {
		pos = t.start()
	}
	return pos, nil
}

// leave removes c from the topic of subject; the last one out unsubscribes.
// It reports false, and does nothing, when c is not in the topic: leaving
// twice is harmless.
func (h *hub) leave(subject string, c *conn) bool {
	h.mu.RLock()
	t := h.topics[subject]
	h.mu.RUnlock()
	if t == nil || !t.remove(c) {
		return false
	}
	h.release(t)
	return true
}

func (h *hub) release(t *topic) {
	h.mu.Lock()
	t.refs--
	last := t.refs == 0
	if last && h.topics[t.subject] == t {
		delete(h.topics, t.subject)
	}
	h.mu.Unlock()
	if sub := t.sub.Load(); last && sub != nil {
		_ = sub.Unsubscribe()
		h.metrics.busSubs.Dec()
	}
}

func (h *hub) topic(subject string) *topic {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.topics[subject]
}

// dispatch validates a bus message once and writes the same bytes to every
// local connection it targets.
func (h *hub) dispatch(m *nats.Msg) {
	h.hooks.beforeDispatch()
	t := h.topic(m.Subject)
	if t == nil || m.Sub != t.sub.Load() {
		return // unsubscribed while the message was queued, or a stale subscription's
	}
	pos, positioned := stream.PositionOf(m.Header, h.streamName)
	positioned = positioned && t.scope != protocol.ScopeBroadcast
	if positioned && h.hooks.dropped(pos.Seq) {
		return
	}
	ev, ok := h.event(t, m.Subject, m.Data, m.Header)
	if !ok {
		if positioned {
			h.skipPositioned(t, pos) // refused (and reported) once, not read again as a gap
		}
		return
	}
	if positioned {
		h.dispatchPositioned(t, ev, pos)
		return
	}
	n := 0
	t.mu.RLock()
	for _, c := range t.conns {
		if ev.deliver(c) {
			n++
		}
	}
	t.mu.RUnlock()
	h.metrics.delivered(ev.typ, n)
}
