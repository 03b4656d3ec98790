package clustertest_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// TestResumeAfterAway: a client away for 10 s — its app closed, its state
// saved — comes back through the other pod and gets every event of its
// channel and of its user published meanwhile, exactly once and in order.
func TestResumeAfterAway(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 2})
	c.Channel("ch_away", 1)
	u := c.NewUser(1, "Alice")
	ws := c.WSURLs()
	first := client.NewSession(client.SessionConfig{TicketURLs: c.TicketURLs(), WSURLs: ws[:1], Token: u.Token})
	tr := &tracker{sess: first, channel: "ch_away", lastCh: -1, lastUser: -1}
	go tr.run()
	_ = first.Subscribe(context.Background(), "ch_away")
	clustertest.Eventually(t, 10*time.Second, "subscribed", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.subscribed
	})
	ctx := context.Background()
	pubChat := func(n int) {
		if err := c.Publisher.MessageCreated(ctx, msg("ch_away", "s"+strconv.Itoa(n))); err != nil {
			t.Fatal(err)
		}
	}
	pubNote := func(n int) {
		if err := c.Publisher.Notify(ctx, 1, protocol.Notification{ID: "u" + strconv.Itoa(n), Type: "test", Title: "n", CreatedAt: 1767225600}); err != nil {
			t.Fatal(err)
		}
	}
	pubChat(0)
	pubNote(0)
	clustertest.Eventually(t, 10*time.Second, "first events", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.lastCh == 0 && tr.lastUser == 0
	})
	first.Close()
	state := first.State()
	// Away: 10 s of events.
	for i := 1; i <= 10; i++ {
		pubChat(i)
		pubNote(i)
		time.Sleep(time.Second)
	}
	back := client.NewSession(client.SessionConfig{TicketURLs: c.TicketURLs(), WSURLs: ws[1:], Token: u.Token, Resume: &state})
	t.Cleanup(back.Close)
	tr.mu.Lock()
	tr.sess = back
	tr.mu.Unlock()
	go tr.run()
	_ = back.Subscribe(ctx, "ch_away")
	pubChat(11)
	clustertest.Eventually(t, 15*time.Second, "every missed event", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.lastCh == 11 && tr.lastUser == 10
	})
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.errs) > 0 {
		t.Fatal(tr.errs)
	}
	if tr.epochs != 2 {
		t.Fatalf("%d connections, want 2", tr.epochs)
	}
}

// TestContinuityThroughNATSFailures: while events are published steadily
// (each retried with its message id until the stream takes it), the
// stream's leader steps down, then the node of its new leader is killed
// and comes back, then a gateway is killed (its clients resume on the
// other): every client receives every event of its channel and user exactly
// once and in order, and no duplicate is sent.
func TestContinuityThroughNATSFailures(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 2, NATSNodes: 3})
	const nClients, nChannels = 40, 8
	for ch := 0; ch < nChannels; ch++ {
		var members []int64
		for u := 1; u <= nClients; u++ {
			if u%nChannels == ch {
				members = append(members, int64(u))
			}
		}
		c.Channel("ch_"+strconv.Itoa(ch), members...)
	}
	trackers := make([]*tracker, nClients)
	for i := range trackers {
		u := c.NewUser(int64(i+1), "u"+strconv.Itoa(i+1))
		ws := c.WSURLs()
		s := client.NewSession(client.SessionConfig{
			TicketURLs: c.TicketURLs(), WSURLs: append(ws[i%2:], ws[:i%2]...), Token: u.Token,
			BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		})
		tr := &tracker{sess: s, channel: "ch_" + strconv.Itoa((i+1)%nChannels), lastCh: -1, lastUser: -1}
		_ = s.Subscribe(context.Background(), tr.channel)
		trackers[i] = tr
		go tr.run()
	}
	t.Cleanup(func() {
		for _, tr := range trackers {
			tr.sess.Close()
		}
	})
	clustertest.Eventually(t, 30*time.Second, "all clients subscribed", func() bool {
		for _, tr := range trackers {
			tr.mu.Lock()
			ok := tr.subscribed
			tr.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})

	lastCh := make([]atomic.Int64, nChannels)
	lastUser := make([]atomic.Int64, nClients+1)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var retries atomic.Int64
	publish := func(ch string, userID int64, typ, id string, data any) {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var err error
			if ch != "" {
				err = c.Publisher.PublishToChannel(ctx, ch, typ, data, bus.Target{MsgID: id})
			} else {
				err = c.Publisher.PublishToUser(ctx, userID, typ, data, bus.Target{MsgID: id})
			}
			cancel()
			if err == nil {
				return
			}
			retries.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := range lastCh {
		lastCh[i].Store(-1)
	}
	for i := range lastUser {
		lastUser[i].Store(-1)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for round := 0; !stop.Load(); round++ {
			for ch := 0; ch < nChannels; ch++ {
				chID := "ch_" + strconv.Itoa(ch)
				id := "s" + strconv.Itoa(round)
				publish(chID, 0, protocol.TypeMessageCreate, chID+"/"+id, msg(chID, id))
				lastCh[ch].Store(int64(round))
			}
			u := 1 + round%nClients
			n := lastUser[u].Load() + 1
			id := "u" + strconv.FormatInt(n, 10)
			publish("", int64(u), protocol.TypeNotification, strconv.Itoa(u)+"/"+id,
				protocol.Notification{ID: id, Type: "test", Title: "n", CreatedAt: 1767225600})
			lastUser[u].Store(n)
			time.Sleep(50 * time.Millisecond)
		}
	}()

	time.Sleep(time.Second)
	stepDown(t, c)
	time.Sleep(2 * time.Second)
	// The node that now leads the stream: its republishes in flight are lost.
	victim := c.NATS[0]
	for _, n := range c.NATS {
		if ns := n.NATS(); ns != nil && ns.JetStreamIsStreamLeader("$G", "OCVR_EVENTS") {
			victim = n
		}
	}
	victim.Stop()
	t.Log("NATS node leading the stream stopped")
	time.Sleep(3 * time.Second)
	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Log("NATS node restarted")
	time.Sleep(2 * time.Second)
	// And a pod dies without a drain: its clients resume on the other.
	c.Gateways[0].Kill()
	t.Log("gateway-1 killed")
	time.Sleep(2 * time.Second)
	if err := c.Gateways[0].Restart(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()

	clustertest.Eventually(t, 45*time.Second, "every client caught up", func() bool { return caughtUp(trackers, lastCh, lastUser) })
	var duplicates uint64
	reconnected := 0
	for i, tr := range trackers {
		tr.mu.Lock()
		if len(tr.errs) > 0 {
			t.Errorf("client %d: %v", i, tr.errs)
		}
		if tr.epochs > 1 {
			reconnected++
		}
		duplicates += tr.sess.Duplicates()
		tr.mu.Unlock()
	}
	t.Logf("publish retries %d; %d of %d clients reconnected", retries.Load(), reconnected, nClients)
	if duplicates != 0 {
		t.Errorf("the gateways sent %d duplicates", duplicates)
	}
	if reconnected < nClients/4 {
		t.Errorf("only %d clients reconnected after a gateway was killed", reconnected)
	}
	for _, g := range c.Gateways {
		gaps, _ := g.Metric("ocvr_gateway_stream_gaps_total")
		replayed, _ := g.Metric("ocvr_gateway_stream_replayed_events_total")
		t.Logf("%s: %v gaps filled, %v events replayed", g.Name, gaps, replayed)
	}
}

// stepDown has the event stream's leader step down.
func stepDown(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	for attempt := 0; attempt < 10; attempt++ {
		m, err := c.NC.Request("$JS.API.STREAM.LEADER.STEPDOWN.OCVR_EVENTS", nil, 5*time.Second)
		if err == nil && strings.Contains(string(m.Data), `"success":true`) {
			t.Log("stream leader stepped down")
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("the stream leader did not step down")
}
