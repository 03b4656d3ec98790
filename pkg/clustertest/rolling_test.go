package clustertest_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// tracker follows one resuming client (continuity, gateway/README.md):
// across all its connections, its channel's events and its own
// notifications must arrive exactly once and in order — each one numbered
// by the publisher, per channel and per user — from the first one after its
// first subscribed on; every reconnect must say it resumed.
type tracker struct {
	sess    *client.Session
	channel string

	mu         sync.Mutex
	epochs     int
	subscribed bool
	lastCh     int // the channel's last event number (-1: none yet)
	lastUser   int // the user's last notification number (-1: none yet)
	errs       []string
	received   int
}

func (tr *tracker) run() {
	for f := range tr.sess.Frames() {
		tr.mu.Lock()
		switch f.Type {
		case protocol.TypeReady:
			tr.epochs++
			if c := f.Continuity; c != nil && c.Lost() {
				tr.errs = append(tr.errs, "reconnect "+strconv.Itoa(tr.epochs)+": user events not resumed")
			}
		case protocol.TypeSubscribed:
			tr.subscribed = true
			if c := f.Continuity; c != nil && c.Lost() {
				tr.errs = append(tr.errs, "reconnect "+strconv.Itoa(tr.epochs)+": channel not resumed")
			}
		case protocol.TypeMessageCreate:
			var m protocol.MessageCreate
			if json.Unmarshal(f.Data, &m) == nil && tr.subscribed {
				tr.lastCh = tr.step("channel", tr.lastCh, strings.TrimPrefix(m.ID, "s"))
			}
		case protocol.TypeNotification:
			var n protocol.Notification
			if json.Unmarshal(f.Data, &n) == nil {
				tr.lastUser = tr.step("user", tr.lastUser, strings.TrimPrefix(n.ID, "u"))
			}
		}
		tr.mu.Unlock()
	}
}

// caughtUp reports whether every tracker has the last event published to
// its channel (lastCh, by channel number) and to its user (lastUser, by
// user id = tracker index + 1).
func caughtUp(trackers []*tracker, lastCh, lastUser []atomic.Int64) bool {
	for i, tr := range trackers {
		ch, _ := strconv.Atoi(strings.TrimPrefix(tr.channel, "ch_"))
		tr.mu.Lock()
		ok := int64(tr.lastCh) == lastCh[ch].Load() && int64(tr.lastUser) == lastUser[i+1].Load()
		tr.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

// step checks that event number id follows last (tr.mu held).
func (tr *tracker) step(what string, last int, id string) int {
	n, _ := strconv.Atoi(id)
	if last >= 0 && n != last+1 {
		tr.errs = append(tr.errs, what+" "+strconv.Itoa(last)+"→"+strconv.Itoa(n)+" in connection "+strconv.Itoa(tr.epochs))
	}
	tr.received++
	return n
}

// TestRollingRestart restarts 3 gateways one after the other under 300
// resuming clients subscribed to 50 channels while a publisher publishes
// steadily to the channels and to the users: every client ends connected
// and subscribed, and receives every event of its channel and every
// notification of its user exactly once and in order across its
// reconnects (continuity).
func TestRollingRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{
		Gateways: 3, Ticketsvcs: 2,
		// A short grace, so that a flap would surface within the test.
		GatewayArgs: []string{"--readiness-delay", "300ms", "--drain-window", "2s", "--presence-grace", "3s"},
		TicketArgs:  []string{"--rate-limit", "1000"},
	})
	const nClients, nChannels = 300, 50
	for ch := 0; ch < nChannels; ch++ {
		var members []int64
		for u := 1; u <= nClients; u++ {
			if u%nChannels == ch {
				members = append(members, int64(u))
			}
		}
		c.Channel("ch_"+strconv.Itoa(ch), members...)
	}
	const observer = 100000 // a friend of every client: sees every presence flap
	for u := 1; u <= nClients; u++ {
		if err := c.Directory.AddFriend(context.Background(), int64(u), observer); err != nil {
			t.Fatal(err)
		}
	}
	friend := watchFriend(t, c, observer)
	trackers := make([]*tracker, nClients)
	for i := range trackers {
		u := c.NewUser(int64(i+1), "u"+strconv.Itoa(i+1))
		// Rotate the URL lists so clients start spread over the pods.
		ws := c.WSURLs()
		ws = append(ws[i%3:], ws[:i%3]...)
		s := client.NewSession(client.SessionConfig{
			TicketURLs: c.TicketURLs(), WSURLs: ws, Token: u.Token,
			BaseBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
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
	allSubscribed := func() bool {
		for _, tr := range trackers {
			tr.mu.Lock()
			ok := tr.subscribed
			tr.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	}
	clustertest.Eventually(t, 30*time.Second, "all clients subscribed", allSubscribed)
	clustertest.Eventually(t, 30*time.Second, "every client online", func() bool { return len(friend.all()) == nClients })

	// Steady publisher, through the event stream: every 100 ms one event
	// per channel, numbered per channel, and a notification to a tenth of
	// the users, numbered per user.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var published atomic.Int64
	lastCh := make([]atomic.Int64, nChannels)
	lastUser := make([]atomic.Int64, nClients+1)
	for i := range lastCh {
		lastCh[i].Store(-1)
	}
	for i := range lastUser {
		lastUser[i].Store(-1)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		for round := 0; !stop.Load(); round++ {
			for ch := 0; ch < nChannels; ch++ {
				if err := c.Publisher.MessageCreated(ctx, msg("ch_"+strconv.Itoa(ch), "s"+strconv.Itoa(round))); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				lastCh[ch].Store(int64(round))
				published.Add(1)
			}
			for u := 1 + round%10; u <= nClients; u += 10 {
				n := lastUser[u].Load() + 1
				nt := protocol.Notification{ID: "u" + strconv.FormatInt(n, 10), Type: "test", Title: "n", CreatedAt: 1767225600}
				if err := c.Publisher.Notify(ctx, int64(u), nt); err != nil {
					t.Errorf("notify: %v", err)
					return
				}
				lastUser[u].Store(n)
				published.Add(1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	time.Sleep(time.Second)
	for _, g := range c.Gateways {
		start := time.Now()
		if err := g.Stop(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s drained and exited in %v", g.Name, time.Since(start).Round(time.Millisecond))
		if err := g.Restart(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	clustertest.Eventually(t, 30*time.Second, "all clients subscribed after the rollout", allSubscribed)
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	// Every client gets to the last event of its channel and of its user.
	clustertest.Eventually(t, 30*time.Second, "every client caught up", func() bool { return caughtUp(trackers, lastCh, lastUser) })

	time.Sleep(4 * time.Second) // past the grace: any flap has been announced by now
	if ev := friend.all(); len(ev) != nClients {
		t.Errorf("the observer saw %d presence events, want only the %d initial onlines: %v", len(ev), nClients, ev[nClients:])
	}
	reconnected, received := 0, 0
	var duplicates uint64
	for i, tr := range trackers {
		tr.mu.Lock()
		if len(tr.errs) > 0 {
			t.Errorf("client %d: %v", i, tr.errs)
		}
		if tr.epochs > 1 {
			reconnected++
		}
		received += tr.received
		duplicates += tr.sess.Duplicates()
		if err := tr.sess.Err(); err != nil {
			t.Errorf("client %d session ended: %v", i, err)
		}
		tr.mu.Unlock()
	}
	t.Logf("%d events published, %d deliveries, %d of %d clients reconnected", published.Load(), received, reconnected, nClients)
	if duplicates != 0 {
		t.Errorf("the gateways sent %d duplicates (the clients dropped them)", duplicates)
	}
	if reconnected < nClients*9/10 {
		t.Errorf("only %d clients reconnected; a rolling restart moves every socket", reconnected)
	}
}
