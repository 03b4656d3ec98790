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

// tracker follows one reconnecting client and checks continuity: within
// each connection ("epoch"), the sequence numbers of its channel's events
// must be contiguous from the first one after `subscribed` on.
type tracker struct {
	sess    *client.Session
	channel string

	mu         sync.Mutex
	epochs     int
	subscribed bool
	last       int // last seq seen in this epoch (-1: none yet)
	gaps       []string
	received   int
}

func (tr *tracker) run() {
	for f := range tr.sess.Frames() {
		tr.mu.Lock()
		switch f.Type {
		case protocol.TypeReady:
			tr.epochs++
			tr.subscribed, tr.last = false, -1
		case protocol.TypeSubscribed:
			tr.subscribed = true
		case protocol.TypeMessageCreate:
			var m protocol.MessageCreate
			if json.Unmarshal(f.Data, &m) == nil && tr.subscribed {
				seq, _ := strconv.Atoi(strings.TrimPrefix(m.ID, "s"))
				if tr.last >= 0 && seq != tr.last+1 {
					tr.gaps = append(tr.gaps, strconv.Itoa(tr.last)+"→"+strconv.Itoa(seq))
				}
				tr.last = seq
				tr.received++
			}
		}
		tr.mu.Unlock()
	}
}

// TestRollingRestart restarts 3 gateways one after the other under 300
// reconnecting clients subscribed to 30 channels while a publisher
// publishes steadily: every client ends connected and subscribed, and no
// event published while a client was subscribed is lost.
func TestRollingRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{
		Gateways: 3, Ticketsvcs: 2,
		// A short grace, so that a flap would surface within the test.
		GatewayArgs: []string{"--readiness-delay", "300ms", "--drain-window", "2s", "--presence-grace", "3s"},
		TicketArgs:  []string{"--rate-limit", "1000"},
	})
	const nClients, nChannels = 300, 30
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
		tr := &tracker{sess: s, channel: "ch_" + strconv.Itoa((i+1)%nChannels)}
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

	// Steady publisher: one event per channel every 50 ms, numbered per channel.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var published atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		seq := 0
		for !stop.Load() {
			for ch := 0; ch < nChannels; ch++ {
				chID := "ch_" + strconv.Itoa(ch)
				if err := c.Publisher.MessageCreated(context.Background(), msg(chID, "s"+strconv.Itoa(seq))); err == nil {
					published.Add(1)
				}
			}
			seq++
			time.Sleep(50 * time.Millisecond)
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

	time.Sleep(4 * time.Second) // past the grace: any flap has been announced by now
	if ev := friend.all(); len(ev) != nClients {
		t.Errorf("the observer saw %d presence events, want only the %d initial onlines: %v", len(ev), nClients, ev[nClients:])
	}
	reconnected, received := 0, 0
	for i, tr := range trackers {
		tr.mu.Lock()
		if len(tr.gaps) > 0 {
			t.Errorf("client %d lost events within a connection: %v", i, tr.gaps)
		}
		if tr.epochs > 1 {
			reconnected++
		}
		received += tr.received
		if err := tr.sess.Err(); err != nil {
			t.Errorf("client %d session ended: %v", i, err)
		}
		tr.mu.Unlock()
	}
	t.Logf("%d events published, %d deliveries, %d of %d clients reconnected", published.Load(), received, reconnected, nClients)
	if reconnected < nClients*9/10 {
		t.Errorf("only %d clients reconnected; a rolling restart moves every socket", reconnected)
	}
}
