package gateway_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
)

// TestResume: a client that reconnects with its token and cursors gets
// every event it missed, exactly once and in order, then live ones; one
// that cannot prove its place is told to refetch.
func TestResume(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.ContinuityWindow = 4 * time.Second })
	alice, bob := e.user(1, "Alice"), e.user(2, "Bob")
	e.channel("ch_a", 1, 2)
	e.channel("ch_b", 1)
	ctx := context.Background()

	r := e.connectResumer(t, alice, nil, false)
	r.subscribe("ch_a", false)
	r.subscribe("ch_b", false)
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "a1")))
	r.expectEvents("a1")
	r.close()

	// Missed while away: channel and user events.
	for _, id := range []string{"a2", "a3"} {
		mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", id)))
	}
	mustNoErr(t, e.pub.Notify(ctx, 1, note("n1")))
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_b", "b1")))

	r = e.connectResumer(t, alice, r, true)
	if r.ready.Resumed == nil || !*r.ready.Resumed {
		t.Fatalf("ready %+v, want resumed", r.ready)
	}
	r.expectEvents("n1")
	if s := r.subscribe("ch_a", true); s.Resumed == nil || !*s.Resumed {
		t.Fatalf("subscribed %+v, want resumed", s)
	}
	r.expectEvents("a2", "a3")
	if s := r.subscribe("ch_b", true); s.Resumed == nil || !*s.Resumed {
		t.Fatalf("subscribed %+v, want resumed", s)
	}
	r.expectEvents("b1")
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "a4")))
	r.expectEvents("a4")
	if v := e.metric(`ocvr_gateway_resumes_total{result="resumed",scope="channel"}`); v != 2 {
		t.Errorf("channel resumes = %v", v)
	}

	t.Run("foreign token", func(t *testing.T) {
		// Bob presents Alice's token and cursors: nothing of hers, and he
		// is told to refetch.
		stolen := &resumer{t: t, token: r.token, cursors: map[string]uint64{"": 0, "ch_a": 0}}
		b := e.connectResumer(t, bob, stolen, true)
		if b.ready.Resumed == nil || *b.ready.Resumed {
			t.Fatalf("ready %+v, want resumed:false", b.ready)
		}
		if s := b.subscribe("ch_a", true); s.Resumed == nil || *s.Resumed {
			t.Fatalf("subscribed %+v, want resumed:false", s)
		}
		mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "live")))
		b.expectEvents("live") // nothing replayed before the live event
		r.expectEvents("live")
	})
	t.Run("forged token", func(t *testing.T) {
		forged := &resumer{t: t, token: r.token[:len(r.token)-3] + "AAA", cursors: map[string]uint64{"ch_a": 1}}
		f := e.connectResumer(t, alice, forged, true)
		if f.ready.Resumed == nil || *f.ready.Resumed {
			t.Fatalf("ready %+v, want resumed:false", f.ready)
		}
		if s := f.subscribe("ch_a", true); s.Resumed == nil || *s.Resumed {
			t.Fatalf("subscribed %+v, want resumed:false", s)
		}
	})
	t.Run("beyond the window", func(t *testing.T) {
		r.close()
		mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "old")))
		time.Sleep(4 * time.Second) // the stream keeps events for 4 s
		mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "new")))
		r = e.connectResumer(t, alice, r, true)
		if r.ready.Resumed == nil || *r.ready.Resumed {
			t.Fatalf("ready %+v, want resumed:false", r.ready)
		}
		if s := r.subscribe("ch_a", true); s.Resumed == nil || *s.Resumed {
			t.Fatalf("subscribed %+v, want resumed:false", s)
		}
		mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "after")))
		r.expectEvents("after")
	})
}

// TestReadyPositionBeforeQueuedEvents: a user event dispatched while the
// connection joins is queued behind ready, so ready's cursor must be below
// it (a client drops events at or below its cursor as duplicates).
func TestReadyPositionBeforeQueuedEvents(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	first := e.connectResumer(t, alice, nil, false) // the pod's user topic exists and is marked
	ctx := context.Background()
	var once atomic.Bool
	gateway.SetUserJoinedHook(e.g, func() {
		if once.Swap(true) {
			return
		}
		mustNoErr(t, e.pub.Notify(ctx, 1, note("during")))
		first.expectEvents("during") // dispatched: queued for the joining one too
	})
	r := e.connectResumer(t, alice, nil, false)
	f := r.next() // connectResumer took ready's seq as the cursor; next checks seq > cursor
	if eventID(f.Data) != "during" {
		t.Fatalf("got %s", f.raw)
	}
}

// TestResumeOntoNewTopicBeforeItsMark: a resume onto a pod where the
// channel's topic is new, with an event dispatched before the topic's mark
// was read: the events missed before it still come from the stream (a
// backlog started at that first event would skip them).
func TestResumeOntoNewTopicBeforeItsMark(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.user(1, "Alice")
	e.channel("ch_a", 1)
	ctx := context.Background()
	r := e.connectResumer(t, alice, nil, false)
	r.subscribe("ch_a", false)
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "m1")))
	r.expectEvents("m1")
	r.close()
	waitFor(t, 5*time.Second, func() bool { return gateway.Topics(e.g) == 0 })
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "m2")))
	mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "m3")))
	var once atomic.Bool
	gateway.SetMarkHook(e.g, func(subject string) {
		if subject != "ocvr.channel.ch_a" || once.Swap(true) {
			return
		}
		mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "m4")))
		time.Sleep(200 * time.Millisecond) // dispatched to the new, unmarked topic
	})
	r = e.connectResumer(t, alice, r, true)
	if s := r.subscribe("ch_a", true); s.Resumed == nil || !*s.Resumed {
		t.Fatalf("subscribed %+v, want resumed", s)
	}
	r.expectEvents("m2", "m3", "m4")
}

// TestResumeWithNothingMissed: a client that resumes from the stream's
// last position — nothing stored since, or an empty stream (cursor 0) —
// has nothing to catch up on: it is live at once, on its user subject and
// on every channel, and takes the next events.
func TestResumeWithNothingMissed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool // events stored before the client left
	}{
		{"empty stream", false},
		{"cursor at the stream's last position", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			alice := e.user(1, "Alice")
			e.channel("ch_a", 1)
			ctx := context.Background()
			r := e.connectResumer(t, alice, nil, false)
			r.subscribe("ch_a", false)
			if tc.before {
				mustNoErr(t, e.pub.Notify(ctx, 1, note("n0")))
				mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "a0")))
				r.expectEvents("n0", "a0")
			}
			r.close()

			r = e.connectResumer(t, alice, r, true)
			if r.ready.Resumed == nil || !*r.ready.Resumed {
				t.Fatalf("ready %+v, want resumed", r.ready)
			}
			if s := r.subscribe("ch_a", true); s.Resumed == nil || !*s.Resumed {
				t.Fatalf("subscribed %+v, want resumed", s)
			}
			// Both catch-ups end without waiting for an event to show the
			// way (an empty read is the stream's whole answer).
			waitFor(t, 3*time.Second, func() bool {
				return e.metric("ocvr_gateway_catchup_duration_seconds_count") == 2
			})
			mustNoErr(t, e.pub.MessageCreated(ctx, chat("ch_a", "a1")))
			r.expectEvents("a1")
			mustNoErr(t, e.pub.Notify(ctx, 1, note("n1")))
			r.expectEvents("n1")
		})
	}
}
