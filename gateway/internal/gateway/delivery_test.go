package gateway_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// seqOf returns the sequence number of a message_create built by msg.
func seqOf(t *testing.T, f client.Frame) int {
	t.Helper()
	if f.Type != protocol.TypeMessageCreate {
		t.Fatalf("got %s, want message_create", f.Raw)
	}
	var m protocol.MessageCreate
	mustNoErr(t, f.Decode(&m))
	n, err := strconv.Atoi(m.Content)
	if err != nil {
		t.Fatalf("content %q", m.Content)
	}
	return n
}

// expectSeq expects the message_create with sequence n.
func expectSeq(t *testing.T, c *client.Conn, n int) {
	t.Helper()
	if got := seqOf(t, next(t, c)); got != n {
		t.Fatalf("got message %d, want %d", got, n)
	}
}

// TestFanOutExactlyOnceInOrder: channel events reach exactly the subscribed
// connections, once each, in publish order.
func TestFanOutExactlyOnceInOrder(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1, 2, 3)
	e.channel("ch_y", 4)
	a1, a2 := e.dial(e.user(1, "Alice")), e.dial(e.user(1, "Alice"))
	bob := e.dial(e.user(2, "Bob"))
	carol := e.dial(e.user(3, "Carol")) // a member, not subscribed
	dave := e.dial(e.user(4, "Dave"))   // subscribed elsewhere
	subs := []*client.Conn{a1, a2, bob}
	for _, c := range subs {
		subscribe(t, c, "ch_x")
	}
	subscribe(t, dave, "ch_y")
	_, pub := e.backend()
	ctx := context.Background()
	const n = 100
	for i := 0; i < n; i++ {
		mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", i)))
	}
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_y", -1)))
	var wg sync.WaitGroup
	for _, c := range subs {
		wg.Add(1)
		go func(c *client.Conn) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				f := next(t, c)
				if got := seqOf(t, f); got != i {
					t.Errorf("got message %d, want %d", got, i)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	expectSeq(t, dave, -1)
	for _, c := range append(subs, carol, dave) {
		quiet(t, c, 200*time.Millisecond)
	}
	if got := e.metric(label("ocvr_gateway_frames_out_total", "type", protocol.TypeMessageCreate)); got != 3*n+1 {
		t.Errorf("frames_out_total{message_create} = %v, want %d", got, 3*n+1)
	}
	// One NATS subscription per subject per pod, however many subscribers:
	// ch_x, ch_y, the broadcast subject and four user subjects.
	if got := e.metric("ocvr_gateway_bus_subscriptions"); got != 7 {
		t.Errorf("bus_subscriptions = %v, want 7", got)
	}
	if got := e.metric("ocvr_gateway_subscriptions"); got != 4 {
		t.Errorf("subscriptions = %v, want 4", got)
	}
}

// TestDoubleSubscribe: subscribing twice is harmless: one delivery per event.
func TestDoubleSubscribe(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1)
	c := e.dial(e.user(1, "Alice"))
	subscribe(t, c, "ch_x")
	subscribe(t, c, "ch_x")
	_, pub := e.backend()
	ctx := context.Background()
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", 1)))
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", 2)))
	expectSeq(t, c, 1)
	expectSeq(t, c, 2)
	quiet(t, c, 200*time.Millisecond)
	// One unsubscribe ends it.
	mustNoErr(t, c.Unsubscribe(ctx, "ch_x"))
	expect(t, c, protocol.TypeUnsubscribed)
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", 3)))
	quiet(t, c, 200*time.Millisecond)
}

// TestNoEventLostAfterSubscribed: an event a backend publishes (on its own
// NATS connection) right after the client saw subscribed is delivered,
// whether the pod had to create its bus subscription or shared one.
func TestNoEventLostAfterSubscribed(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.FrameRate, c.FrameBurst = 1000, 1000 })
	e.channel("ch_x", 1, 2)
	c := e.dial(e.user(1, "Alice"))
	other := e.dial(e.user(2, "Bob"))
	_, pub := e.backend()
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		if i == 20 {
			subscribe(t, other, "ch_x") // from now on the bus subscription is shared
		}
		subscribe(t, c, "ch_x")
		mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", i)))
		expectSeq(t, c, i)
		mustNoErr(t, c.Unsubscribe(ctx, "ch_x"))
		f := expect(t, c, protocol.TypeUnsubscribed)
		var u protocol.Unsubscribed
		mustNoErr(t, f.Decode(&u))
		if u.ChannelID != "ch_x" || u.Reason != protocol.ReasonClient {
			t.Fatalf("unsubscribed %s", f.Raw)
		}
	}
}

// TestNothingAfterUnsubscribed: while events stream in, once unsubscribed
// arrives no further event does.
func TestNothingAfterUnsubscribed(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1, 2)
	c := e.dial(e.user(1, "Alice"))
	keep := e.dial(e.user(2, "Bob")) // keeps the bus subscription alive
	subscribe(t, keep, "ch_x")
	subscribe(t, c, "ch_x")
	_, pub := e.backend()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if err := pub.MessageCreated(context.Background(), msg("ch_x", i)); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	last := -1
	for last < 20 {
		n := seqOf(t, next(t, c))
		if n != last+1 {
			t.Fatalf("got %d after %d", n, last)
		}
		last = n
	}
	mustNoErr(t, c.Unsubscribe(context.Background(), "ch_x"))
	for {
		f := next(t, c)
		if f.Type == protocol.TypeUnsubscribed {
			break
		}
		if n := seqOf(t, f); n != last+1 {
			t.Fatalf("got %d after %d", n, last)
		} else {
			last = n
		}
	}
	time.Sleep(100 * time.Millisecond) // events keep flowing meanwhile
	cancel()
	wg.Wait()
	quiet(t, c, 200*time.Millisecond)
	alive(t, c)
	// The other subscriber got every event, in order.
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		f, err := keep.Next(ctx)
		cancel()
		if err != nil {
			if i < last {
				t.Fatalf("keeper stopped at %d, before %d", i, last)
			}
			break
		}
		if n := seqOf(t, f); n != i {
			t.Fatalf("keeper got %d, want %d", n, i)
		}
	}
}

// TestReadyIsFirst: the ready frame precedes everything, even when events
// for the user are streaming while the connection opens.
func TestReadyIsFirst(t *testing.T) {
	// Thirty connections of one user in a row: on a loaded machine the
	// teardowns of the closed ones may trail the new ones past the per-user
	// cap, which is not what this test is about.
	e := newEnv(t, func(c *gateway.Config) { c.MaxConnsPerUser = -1 })
	alice := e.user(1, "Alice")
	_, pub := e.backend()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			n := protocol.Notification{ID: "n_" + strconv.Itoa(i), Type: "ping", CreatedAt: 1767225600}
			if err := pub.Notify(context.Background(), 1, n); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	for i := 0; i < 30; i++ {
		c, err := e.dialTicket("", e.ticket(alice))
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		c.CloseNow()
	}
}

// TestHeaderFilters: Ocvr-Exclude-User, Ocvr-Session (a comma list) and
// Ocvr-Except-Session.
func TestHeaderFilters(t *testing.T) {
	e := newEnv(t, nil)
	s1, s2, s3 := e.user(1, "Alice"), e.user(1, "Alice"), e.user(1, "Alice")
	e.channel("ch_x", 1, 2)
	c1, c2, c3 := e.dial(s1), e.dial(s2), e.dial(s3)
	bob := e.dial(e.user(2, "Bob"))
	for _, c := range []*client.Conn{c1, c2, c3, bob} {
		subscribe(t, c, "ch_x")
	}
	nc, pub := e.backend()
	ctx := context.Background()
	note := func(id string) protocol.Notification {
		return protocol.Notification{ID: id, Type: "t", CreatedAt: 1767225600}
	}
	// A sentinel event sent to everyone after each filtered one: a
	// connection that should not get the filtered event sees the sentinel
	// as its next frame.
	gets := func(c *client.Conn, id string) {
		t.Helper()
		f := next(t, c)
		var n protocol.Notification
		_ = f.Decode(&n)
		if n.ID != id {
			t.Fatalf("got %s, want notification %s", f.Raw, id)
		}
	}
	raw := func(subject, hdr, val string, n protocol.Notification) {
		m := nats.NewMsg(subject)
		m.Data = protocol.MustEncode(protocol.TypeNotification, n)
		m.Header.Set(hdr, val)
		mustNoErr(t, nc.PublishMsg(m))
	}

	t.Run("Ocvr-Exclude-User", func(t *testing.T) {
		mustNoErr(t, pub.PublishToChannel(ctx, "ch_x", protocol.TypeMessageCreate, msg("ch_x", 1), bus.Target{ExcludeUser: 1}))
		mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", 2)))
		expectSeq(t, bob, 1)
		expectSeq(t, bob, 2)
		for _, c := range []*client.Conn{c1, c2, c3} {
			expectSeq(t, c, 2)
		}
	})
	t.Run("Ocvr-Session", func(t *testing.T) {
		mustNoErr(t, pub.PublishToUser(ctx, 1, protocol.TypeNotification, note("n1"), bus.Target{Sessions: []string{s1.sess.ID, s3.sess.ID}}))
		raw("ocvr.user.1", bus.HeaderSession, " "+s2.sess.ID+" , ses_other ", note("n2")) // spaces are tolerated
		mustNoErr(t, pub.Notify(ctx, 1, note("end")))
		gets(c1, "n1")
		gets(c1, "end")
		gets(c2, "n2")
		gets(c2, "end")
		gets(c3, "n1")
		gets(c3, "end")
	})
	t.Run("Ocvr-Except-Session", func(t *testing.T) {
		mustNoErr(t, pub.PublishToUser(ctx, 1, protocol.TypeNotification, note("n3"), bus.Target{ExceptSession: s2.sess.ID}))
		mustNoErr(t, pub.Notify(ctx, 1, note("end")))
		gets(c1, "n3")
		gets(c1, "end")
		gets(c2, "end")
		gets(c3, "n3")
		gets(c3, "end")
	})
	t.Run("invalid Ocvr-Exclude-User", func(t *testing.T) {
		raw("ocvr.user.1", bus.HeaderExcludeUser, "1 OR 1", note("bad"))
		mustNoErr(t, pub.Notify(ctx, 1, note("end")))
		for _, c := range []*client.Conn{c1, c2, c3} {
			gets(c, "end")
		}
	})
	quiet(t, bob, 100*time.Millisecond)
}

// TestBroadcast: ocvr.broadcast reaches every connection, subscribed to
// anything or not.
func TestBroadcast(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1)
	var conns []*client.Conn
	for id := int64(1); id <= 5; id++ {
		conns = append(conns, e.dial(e.user(id, "User "+strconv.FormatInt(id, 10))))
	}
	subscribe(t, conns[0], "ch_x")
	_, pub := e.backend()
	n := protocol.Notification{ID: "maint", Type: "maintenance", Title: "Restart at 03:00", CreatedAt: 1767225600}
	mustNoErr(t, pub.Broadcast(context.Background(), protocol.TypeNotification, n))
	want := protocol.MustEncode(protocol.TypeNotification, n)
	for _, c := range conns {
		if f := expect(t, c, protocol.TypeNotification); string(f.Raw) != string(want) {
			t.Fatalf("got %s", f.Raw)
		}
		quiet(t, c, 50*time.Millisecond)
	}
}

// TestTyping: typing reaches the channel's other subscribers as
// typing_start, never the typer's own connections, throttled to one per
// user per channel per 3 s.
func TestTyping(t *testing.T) {
	e := newEnv(t, nil)
	e.channel("ch_x", 1, 2, 3, 4)
	e.channel("ch_y", 1, 2)
	d1, d2 := e.dial(e.user(1, "Alice")), e.dial(e.user(1, "Alice"))
	bob := e.dial(e.user(2, "Bob"))
	carol := e.dial(e.user(3, "Carol"))
	dave := e.dial(e.user(4, "Dave")) // a member, not subscribed
	for _, c := range []*client.Conn{d1, d2, bob, carol} {
		subscribe(t, c, "ch_x")
	}
	subscribe(t, bob, "ch_y")
	subscribe(t, d1, "ch_y")
	ctx := context.Background()
	sentinel := 0
	// After a round of typing, a message to ch_x shows what each
	// connection got before it. It is published on the pod's own NATS
	// connection, so it is ordered after the typing_start events the pod
	// published (a backend's connection could overtake them).
	fence := func() {
		t.Helper()
		sentinel++
		mustNoErr(t, e.pub.MessageCreated(ctx, msg("ch_x", 1000+sentinel)))
	}
	typingFrom := func(c *client.Conn, ch string, user int64, name string) {
		t.Helper()
		f := expect(t, c, protocol.TypeTypingStart)
		var ts protocol.TypingStart
		mustNoErr(t, f.Decode(&ts))
		if ts != (protocol.TypingStart{ChannelID: ch, UserID: user, DisplayName: name}) {
			t.Fatalf("typing_start %s", f.Raw)
		}
	}

	// Ten typing frames within a second, from both devices: forwarded once.
	for i := 0; i < 10; i++ {
		c := d1
		if i%2 == 1 {
			c = d2
		}
		mustNoErr(t, c.Typing(ctx, "ch_x"))
	}
	alive(t, d1) // every typing frame has been processed
	alive(t, d2)
	fence()
	for _, c := range []*client.Conn{bob, carol} {
		typingFrom(c, "ch_x", 1, "Alice")
		expectSeq(t, c, 1000+sentinel)
	}
	for _, c := range []*client.Conn{d1, d2} {
		expectSeq(t, c, 1000+sentinel)
	}

	// The throttle is per channel: ch_y is separate.
	mustNoErr(t, d1.Typing(ctx, "ch_y"))
	typingFrom(bob, "ch_y", 1, "Alice")

	// Someone else typing is not throttled by Alice.
	mustNoErr(t, bob.Typing(ctx, "ch_x"))
	for _, c := range []*client.Conn{d1, d2, carol} {
		typingFrom(c, "ch_x", 2, "Bob")
	}

	// After the throttle period, Alice's typing is forwarded again.
	e.clock.Advance(3 * time.Second)
	mustNoErr(t, d2.Typing(ctx, "ch_x"))
	alive(t, d2)
	fence()
	for _, c := range []*client.Conn{bob, carol} {
		typingFrom(c, "ch_x", 1, "Alice")
		expectSeq(t, c, 1000+sentinel)
	}
	for _, c := range []*client.Conn{d1, d2} {
		expectSeq(t, c, 1000+sentinel)
	}
	quiet(t, dave, 100*time.Millisecond)
}

// TestExactlyOnceUnderChurn: while events stream in, connections keep
// subscribing and unsubscribing, so the pod keeps dropping and re-creating
// its bus subscription for the channel; no connection ever sees an event
// twice or out of order.
func TestExactlyOnceUnderChurn(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.FrameRate, c.FrameBurst = 10000, 10000
		c.QueueSize = 1 << 16 // ordering is under test here, not backpressure
	})
	e.channel("ch_x", 1, 2, 3, 4)
	var conns []*client.Conn
	for id := int64(1); id <= 4; id++ {
		conns = append(conns, e.dial(e.user(id, "U")))
	}
	_, pub := e.backend()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if err := pub.MessageCreated(context.Background(), msg("ch_x", i)); err != nil {
				t.Error(err)
				return
			}
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var delivered atomic.Int64
	for _, c := range conns {
		wg.Add(1)
		go func(c *client.Conn) {
			defer wg.Done()
			last := -1
			subscribed := false
			for ctx.Err() == nil {
				var err error
				if subscribed {
					err = c.Unsubscribe(context.Background(), "ch_x")
				} else {
					err = c.Subscribe(context.Background(), "ch_x")
				}
				if err != nil {
					t.Error(err)
					return
				}
				// Read up to the acknowledgement, checking events on the way.
				for {
					f, err := c.Next(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					if f.Type == protocol.TypeSubscribed || f.Type == protocol.TypeUnsubscribed {
						break
					}
					n := seqPadded(f)
					if n <= last {
						t.Errorf("got event %d after %d", n, last)
						return
					}
					last = n
					delivered.Add(1)
				}
				subscribed = !subscribed
			}
		}(c)
	}
	wg.Wait()
	t.Logf("%d events delivered under churn", delivered.Load())
}
