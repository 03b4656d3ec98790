package gateway_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/protocol"
)

// posFrame is a server frame with the continuity fields (gateway/README.md
// "Continuity").
type posFrame struct {
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	ChannelID string          `json:"channel_id"`
	Seq       uint64          `json:"seq"`
	raw       []byte
}

// resumer is a raw socket that keeps what a resuming client keeps: the
// token and a cursor per subscription ("" is the user's own events).
type resumer struct {
	t       *testing.T
	ws      *websocket.Conn
	token   string
	cursors map[string]uint64
	ready   protocol.Ready
}

// connect opens a socket for u, resuming from r's token and user cursor
// when resume is set.
func (e *env) connectResumer(t *testing.T, u user, r *resumer, resume bool) *resumer {
	t.Helper()
	q := url.Values{"ticket": {e.ticket(u)}}
	if r == nil {
		r = &resumer{t: t, cursors: map[string]uint64{}}
	}
	if resume {
		q.Set("resume", r.token)
		q.Set("seq", strconv.FormatUint(r.cursors[""], 10))
	}
	ws, _, err := e.rawDial(t, q.Encode(), nil)
	mustNoErr(t, err)
	ws.SetReadLimit(1 << 20)
	r.ws = ws
	f := r.next()
	if f.Type != protocol.TypeReady {
		t.Fatalf("first frame %s, want ready", f.raw)
	}
	mustNoErr(t, json.Unmarshal(f.Data, &r.ready))
	if r.ready.ResumeToken == "" {
		t.Fatalf("ready without a resume token: %s", f.raw)
	}
	r.token = r.ready.ResumeToken
	if !resume || (r.ready.Resumed != nil && !*r.ready.Resumed) {
		r.cursors[""] = r.ready.Seq
	}
	return r
}

func (r *resumer) next() posFrame {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := r.ws.Read(ctx)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	var f posFrame
	if err := json.Unmarshal(b, &f); err != nil {
		r.t.Fatalf("frame %s: %v", b, err)
	}
	f.raw = b
	if f.Seq != 0 {
		if f.Seq <= r.cursors[f.ChannelID] {
			r.t.Fatalf("duplicate or out of order: %s after cursor %d", b, r.cursors[f.ChannelID])
		}
		r.cursors[f.ChannelID] = f.Seq
	}
	return f
}

// subscribe subscribes to ch (from its cursor when resume is set) and
// returns the acknowledgement.
func (r *resumer) subscribe(ch string, resume bool) protocol.Subscribed {
	r.t.Helper()
	data := map[string]any{"channel_id": ch}
	if resume {
		data["seq"] = r.cursors[ch]
	}
	b, _ := json.Marshal(map[string]any{"type": protocol.TypeSubscribe, "data": data})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mustNoErr(r.t, r.ws.Write(ctx, websocket.MessageText, b))
	f := r.next()
	if f.Type != protocol.TypeSubscribed {
		r.t.Fatalf("got %s, want subscribed", f.raw)
	}
	var s protocol.Subscribed
	mustNoErr(r.t, json.Unmarshal(f.Data, &s))
	if !resume || (s.Resumed != nil && !*s.Resumed) {
		r.cursors[ch] = s.Seq
	}
	return s
}

// expectContent reads frames until want has been seen in order (content of
// message_create / notification ids), failing on anything else positioned.
func (r *resumer) expectEvents(want ...string) {
	r.t.Helper()
	for _, w := range want {
		f := r.next()
		if id := eventID(f.Data); id != w {
			r.t.Fatalf("got %s, want event %s", f.raw, w)
		}
	}
}

func eventID(data json.RawMessage) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(data, &v)
	return v.ID
}

func (r *resumer) close() { r.ws.CloseNow() }

func note(id string) protocol.Notification {
	return protocol.Notification{ID: id, Type: "test", Title: id, CreatedAt: 1767225600}
}

func chat(ch, id string) protocol.MessageCreate {
	m := msg(ch, 0)
	m.ID = id
	return m
}

// TestPositions: events published through the stream carry their position,
// per subject; ready and subscribed give the cursor to start from.
func TestPositions(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	e.channel("ch_a", 1)
	ctx := context.Background()
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "before")))
	r := e.connectResumer(t, alice, nil, false)
	s := r.subscribe("ch_a", false)
	if s.Seq == 0 || s.Resumed != nil {
		t.Fatalf("subscribed %+v: want the stream position and no resumed", s)
	}
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "m1")))
	mustNoErr(t, e.pub.Notify(ctx, 1, note("n1")))
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "m2")))
	f1, f2, f3 := r.next(), r.next(), r.next()
	if f1.ChannelID != "ch_a" || f2.ChannelID != "" || f3.ChannelID != "ch_a" {
		t.Fatalf("channel ids %q %q %q", f1.ChannelID, f2.ChannelID, f3.ChannelID)
	}
	if !(s.Seq < f1.Seq && f1.Seq < f2.Seq && f2.Seq < f3.Seq) {
		t.Fatalf("positions %d < %d < %d < %d", s.Seq, f1.Seq, f2.Seq, f3.Seq)
	}
	// Core publishes (typing, presence, a backend without the stream)
	// carry no position.
	mustNoErr(t, e.pub.Core().Notify(ctx, 1, note("core")))
	if f := r.next(); f.Seq != 0 || eventID(f.Data) != "core" {
		t.Fatalf("core event %s", f.raw)
	}
}

// TestSlowReaderCatchesUp: a reader that stops reading on a busy channel
// is not cut off: its queue overflows, it reads the channel from the stream
// at its position once it reads again, and gets every event in order.
func TestSlowReaderCatchesUp(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.QueueSize = 8
		c.SocketSendBuffer = 4096
	})
	alice := e.user(1, "Alice")
	e.channel("ch_busy", 1)
	q := url.Values{"ticket": {e.ticket(alice)}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.wsURL+"?"+q.Encode(), &websocket.DialOptions{HTTPClient: smallRcvBuf()})
	mustNoErr(t, err)
	t.Cleanup(func() { ws.CloseNow() })
	r := &resumer{t: t, ws: ws, cursors: map[string]uint64{}}
	if f := r.next(); f.Type != protocol.TypeReady {
		t.Fatalf("first frame %s", f.raw)
	}
	r.subscribe("ch_busy", false)

	const events = 300
	pad := strings.Repeat("x", 1000)
	stalled := time.Now()
	for i := 0; i < events; i++ {
		m := chat("ch_busy", "m"+strconv.Itoa(i))
		m.Content = pad
		mustNoErr(t, e.pub.MessageCreated(ctx, m))
	}
	waitFor(t, 10*time.Second, func() bool {
		return e.metric(label("ocvr_gateway_catchups_total", "reason", "overflow")) > 0
	})
	// Its heartbeats still arrive: their answers must not make it a slow
	// consumer while its queue is full of events.
	mustNoErr(t, ws.Write(ctx, websocket.MessageText, []byte(`{"type":"heartbeat"}`)))
	// The reader stays away 10 s in all (the stream keeps the events; the
	// write timeout, 30 s, is what declares a socket dead).
	time.Sleep(time.Until(stalled.Add(10 * time.Second)))
	acks := 0
	for i := 0; i < events; {
		f := r.next()
		if f.Type == protocol.TypeHeartbeatAck {
			acks++
			continue
		}
		if id := eventID(f.Data); id != "m"+strconv.Itoa(i) {
			t.Fatalf("got %s, want event m%d", f.raw, i)
		}
		i++
	}
	if acks != 1 {
		t.Errorf("%d heartbeat acks, want 1", acks)
	}
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_busy", "live")))
	r.expectEvents("live")
	if v := e.metric(label("ocvr_gateway_disconnects_total", "code", "4009")); v != 0 {
		t.Errorf("disconnects_total{4009} = %v", v)
	}
	// The events dispatched while it was behind came from the topic's
	// backlog in memory, not from one stream read per event.
	if v := e.metric(label("ocvr_gateway_stream_replayed_events_total", "source", "memory")); v == 0 {
		t.Error("nothing was replayed from the backlog")
	}
}

// TestLiveGapFilled: republished events that never reach the pod (dropped
// here on purpose) are read from the stream before later ones are
// delivered.
func TestLiveGapFilled(t *testing.T) {
	e := newEnv(t, nil)
	alice, bob := e.user(1, "Alice"), e.user(2, "Bob")
	e.channel("ch_a", 1, 2)
	ra := e.connectResumer(t, alice, nil, false)
	rb := e.connectResumer(t, bob, nil, false)
	ra.subscribe("ch_a", false)
	rb.subscribe("ch_a", false)
	ctx := context.Background()
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "m0")))
	ra.expectEvents("m0")
	rb.expectEvents("m0")
	var lost atomic.Int64
	gateway.SetDropHook(e.g, func(seq uint64) bool {
		// Drop the next two positioned messages the pod receives.
		return lost.Add(1) <= 2
	})
	for _, id := range []string{"m1", "m2", "m3"} {
		mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", id)))
	}
	ra.expectEvents("m1", "m2", "m3")
	rb.expectEvents("m1", "m2", "m3")
	if v := e.metric("ocvr_gateway_stream_gaps_total"); v != 1 {
		t.Errorf("gaps = %v, want 1", v)
	}
	// Filled once for the topic, not by each connection.
	if v := e.metric(label("ocvr_gateway_catchups_total", "reason", "gap")); v != 0 {
		t.Errorf("catch-ups for the gap = %v, want 0", v)
	}
	if v := e.metric(label("ocvr_gateway_stream_replayed_events_total", "source", "stream")); v != 4 {
		t.Errorf("replayed = %v, want 2 events to 2 connections", v)
	}
}

// TestResyncAfterNATSOutage: events stored while the pod was cut off from
// NATS reach its clients once it is back, in order, without waiting for a
// later event to reveal the gap; the clients' sockets stay open throughout.
func TestResyncAfterNATSOutage(t *testing.T) {
	e := newClusterEnv(t, nil)
	alice := e.user(1, "Alice")
	e.channel("ch_a", 1)
	r := e.connectResumer(t, alice, nil, false)
	r.subscribe("ch_a", false)
	_, pub := e.backend()                           // on nodes 1 and 2
	publishRetrying(t, pub, chat("ch_a", "before")) // the young cluster may still elect the stream's leader
	r.expectEvents("before")

	e.ns.Stop() // the pod's only node
	waitFor(t, 10*time.Second, func() bool { return !e.nc.IsConnected() })
	for _, id := range []string{"cut1", "cut2", "cut3"} {
		publishRetrying(t, pub, chat("ch_a", id))
	}
	publishRetrying(t, pub, note("cutn"))
	mustNoErr(t, e.ns.Restart())
	// Order holds per subscription, not across them.
	got := map[string][]string{}
	for i := 0; i < 4; i++ {
		f := r.next()
		got[f.ChannelID] = append(got[f.ChannelID], eventID(f.Data))
	}
	if strings.Join(got["ch_a"], ",") != "cut1,cut2,cut3" || strings.Join(got[""], ",") != "cutn" {
		t.Fatalf("after the outage: %v", got)
	}
	if v := e.metric("ocvr_gateway_stream_gaps_total"); v < 2 {
		t.Errorf("gaps = %v, want the channel's and the user's", v)
	}
}

// publishRetrying publishes a chat message (to its channel) or a
// notification (to user 1) through the stream while a cluster elects a
// leader, with one message id, so that a retry stores it once.
func publishRetrying[E protocol.MessageCreate | protocol.Notification](t *testing.T, pub *bus.Publisher, ev E) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		switch m := any(ev).(type) {
		case protocol.MessageCreate:
			err = pub.PublishToChannel(ctx, m.ChannelID, protocol.TypeMessageCreate, m, bus.Target{MsgID: m.ID})
		case protocol.Notification:
			err = pub.PublishToUser(ctx, 1, protocol.TypeNotification, m, bus.Target{MsgID: m.ID})
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %+v: %v", ev, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
