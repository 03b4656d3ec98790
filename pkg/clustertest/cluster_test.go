package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

func msg(ch, id string) protocol.MessageCreate {
	return protocol.MessageCreate{ID: id, ChannelID: ch, Author: protocol.Author{ID: 999, DisplayName: "Backend"}, Content: "event " + id, CreatedAt: 1764417600}
}

// dialProbes connects users[i] to pod i (mod the pod count) concurrently.
func dialProbes(t *testing.T, c *clustertest.Cluster, users []clustertest.User) []*clustertest.Probe {
	t.Helper()
	probes := make([]*clustertest.Probe, len(users))
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	sem := make(chan struct{}, 50)
	for i, u := range users {
		wg.Add(1)
		go func(i int, u clustertest.User) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			conn, err := c.Dial(u, i)
			if err != nil {
				errs <- fmt.Errorf("dial %d: %w", i, err)
				return
			}
			probes[i] = clustertest.NewProbe(u, conn)
		}(i, u)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range probes {
			p.Conn.CloseNow()
		}
	})
	return probes
}

// TestClusterFanout: 3 gateways, 2 ticketsvc replicas, 300 connections.
// Every kind of event reaches exactly the right connections, exactly once,
// on every pod.
func TestClusterFanout(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 3, Ticketsvcs: 2})
	ctx := context.Background()
	const nUsers, perUser, nChannels = 100, 3, 10
	// User u (1..100) is a member of channel ch_(u % 10); each user has 3
	// sessions, one connection each, landing on the 3 different pods.
	for ch := 0; ch < nChannels; ch++ {
		var members []int64
		for u := 1; u <= nUsers; u++ {
			if u%nChannels == ch {
				members = append(members, int64(u))
			}
		}
		c.Channel("ch_"+strconv.Itoa(ch), members...)
	}
	var users []clustertest.User
	for u := 1; u <= nUsers; u++ {
		for d := 0; d < perUser; d++ {
			users = append(users, c.NewUser(int64(u), "user"+strconv.Itoa(u)))
		}
	}
	probes := dialProbes(t, c, users)
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Add(1)
		go func(p *clustertest.Probe) {
			defer wg.Done()
			p.Subscribe(t, "ch_"+strconv.Itoa(int(p.User.ID%nChannels)))
		}(p)
	}
	wg.Wait()

	// One channel event per channel; user 7 is excluded from ch_7's second event.
	for ch := 0; ch < nChannels; ch++ {
		if err := c.Publisher.MessageCreated(ctx, msg("ch_"+strconv.Itoa(ch), "m"+strconv.Itoa(ch))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publisher.PublishToChannel(ctx, "ch_7", protocol.TypeMessageCreate, msg("ch_7", "excl"), bus.Target{ExcludeUser: 7}); err != nil {
		t.Fatal(err)
	}
	// A user event to user 5 (3 connections on 3 pods); a session-targeted
	// event to one of user 6's sessions; all-but-one-session to user 8.
	if err := c.Publisher.Notify(ctx, 5, protocol.Notification{ID: "n5", Type: "t", Title: "x", Body: "y"}); err != nil {
		t.Fatal(err)
	}
	var six, eight []clustertest.User
	for _, u := range users {
		switch u.ID {
		case 6:
			six = append(six, u)
		case 8:
			eight = append(eight, u)
		}
	}
	if err := c.Publisher.PublishToUser(ctx, 6, protocol.TypeNotification, protocol.Notification{ID: "n6", Type: "t"}, bus.Target{Sessions: []string{six[1].Session.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publisher.PublishToUser(ctx, 8, protocol.TypeNotification, protocol.Notification{ID: "n8", Type: "t"}, bus.Target{ExceptSession: eight[0].Session.ID}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publisher.Broadcast(ctx, protocol.TypeNotification, protocol.Notification{ID: "all", Type: "maintenance"}); err != nil {
		t.Fatal(err)
	}

	want := func(p *clustertest.Probe) map[string]int {
		w := map[string]int{}
		ch := int(p.User.ID % nChannels)
		w["m"+strconv.Itoa(ch)] = 1
		if ch == 7 {
			w["excl"] = 0
			if p.User.ID != 7 {
				w["excl"] = 1
			}
		}
		w["n5"], w["n6"], w["n8"] = 0, 0, 0
		switch p.User.ID {
		case 5:
			w["n5"] = 1
		case 6:
			if p.User.Session.ID == six[1].Session.ID {
				w["n6"] = 1
			}
		case 8:
			if p.User.Session.ID != eight[0].Session.ID {
				w["n8"] = 1
			}
		}
		w["all"] = 1
		return w
	}
	count := func(p *clustertest.Probe, id string) int {
		return p.Count(protocol.TypeMessageCreate, `"id":"`+id+`"`) + p.Count(protocol.TypeNotification, `"id":"`+id+`"`)
	}
	clustertest.Eventually(t, 20*time.Second, "every expected delivery", func() bool {
		for _, p := range probes {
			for id, n := range want(p) {
				if count(p, id) < n {
					return false
				}
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond) // late duplicates or strays would show now
	total := 0
	for i, p := range probes {
		for id, n := range want(p) {
			if got := count(p, id); got != n {
				t.Errorf("conn %d (user %d, pod %d): event %s delivered %d times, want %d", i, p.User.ID, i%3, id, got, n)
			}
			total += n
		}
		// Nothing from other channels.
		for ch := 0; ch < nChannels; ch++ {
			if ch != int(p.User.ID%nChannels) && count(p, "m"+strconv.Itoa(ch)) != 0 {
				t.Errorf("conn %d got channel %d's event", i, ch)
			}
		}
	}
	t.Logf("%d deliveries checked over %d connections on 3 pods", total, len(probes))
}

// TestTicketRedeemedOnceAcrossPods: one ticket, 30 concurrent redeem
// attempts over 3 gateways: exactly one socket opens.
func TestTicketRedeemedOnceAcrossPods(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 3})
	u := c.NewUser(1, "Alice")
	tk, err := client.GetTicket(context.Background(), nil, c.TicketURLs()[0], u.Token)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	opened, refused := 0, 0
	start := make(chan struct{})
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := client.Dial(ctx, c.Gateways[i%3].WSURL(), tk, client.Options{})
			mu.Lock()
			defer mu.Unlock()
			var ce *client.CloseError
			switch {
			case err == nil:
				opened++
				conn.CloseNow()
			case errors.As(err, &ce) && ce.Code == protocol.CloseInvalidTicket:
				refused++
			default:
				t.Errorf("dial %d: %v", i, err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if opened != 1 || refused != 29 {
		t.Fatalf("opened %d, refused %d; want 1 and 29", opened, refused)
	}
}

// TestRevocationAcrossPods: revoking a session closes its sockets on every
// pod with 4003 and no others; RevokeAll keeps the excepted session.
func TestRevocationAcrossPods(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 3})
	a := c.NewUser(1, "Alice") // session A: two devices on two pods
	b := c.NewUser(1, "Alice") // session B
	d := c.NewUser(1, "Alice") // session C, kept by RevokeAll
	other := c.NewUser(2, "Bob")
	probes := dialProbes(t, c, []clustertest.User{a, a, b, d, other, b})
	ctx := context.Background()
	if err := c.Sessions.Revoke(ctx, a.Session.ID, "logout"); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1} {
		err, ok := probes[i].WaitClosed(10 * time.Second)
		var ce *client.CloseError
		if !ok || !errors.As(err, &ce) || ce.Code != protocol.CloseSessionRevoked {
			t.Fatalf("session A conn %d: closed=%v err=%v, want 4003", i, ok, err)
		}
		if probes[i].Count(protocol.TypeSessionRevoked, `"reason":"logout"`) != 1 {
			t.Fatalf("conn %d did not get session_revoked before the close", i)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, i := range []int{2, 3, 4, 5} {
		if probes[i].Closed() {
			t.Fatalf("conn %d closed by another session's revocation", i)
		}
	}
	n, err := c.Sessions.RevokeAll(ctx, 1, "logout_all", d.Session.ID)
	if err != nil || n != 1 {
		t.Fatalf("RevokeAll = %d, %v; want 1 session", n, err)
	}
	for _, i := range []int{2, 5} {
		err, ok := probes[i].WaitClosed(10 * time.Second)
		var ce *client.CloseError
		if !ok || !errors.As(err, &ce) || ce.Code != protocol.CloseSessionRevoked {
			t.Fatalf("session B conn %d: %v, want 4003", i, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if probes[3].Closed() || probes[4].Closed() {
		t.Fatal("the excepted session or another user was closed")
	}
}

// TestMembershipRemovalOnEveryPod: removing a member ends their
// subscriptions on every pod.
func TestMembershipRemovalOnEveryPod(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 3})
	c.Channel("ch_team", 1, 2)
	var users []clustertest.User
	for i := 0; i < 3; i++ {
		users = append(users, c.NewUser(1, "Alice"))
	}
	users = append(users, c.NewUser(2, "Bob"))
	probes := dialProbes(t, c, users)
	for _, p := range probes {
		p.Subscribe(t, "ch_team")
	}
	if err := c.Directory.RemoveMember(context.Background(), "ch_team", 1); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 2*time.Second, "unsubscribed removed on all 3 pods", func() bool {
		for _, p := range probes[:3] {
			if p.Count(protocol.TypeUnsubscribed, `"reason":"removed"`) != 1 {
				return false
			}
		}
		return true
	})
	if err := c.Publisher.MessageCreated(context.Background(), msg("ch_team", "after")); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 5*time.Second, "Bob still receives", func() bool {
		return probes[3].Count(protocol.TypeMessageCreate, `"after"`) == 1
	})
	time.Sleep(300 * time.Millisecond)
	for i, p := range probes[:3] {
		if p.Count(protocol.TypeMessageCreate, `"after"`) != 0 {
			t.Fatalf("removed member's conn %d still receives", i)
		}
	}
}

// publishUntil publishes ev repeatedly until p has received it (delivery
// resumed) or d passes; it returns how many attempts it took.
func publishUntil(t *testing.T, c *clustertest.Cluster, p *clustertest.Probe, ch string, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for i := 0; ; i++ {
		id := fmt.Sprintf("probe-%d", i)
		_ = c.Publisher.MessageCreated(context.Background(), msg(ch, id))
		time.Sleep(100 * time.Millisecond)
		if p.Count(protocol.TypeMessageCreate, `"probe-`) > 0 {
			return i + 1
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery did not resume within %v", d)
		}
	}
}

// TestNATSRestart: gateways keep their sockets through a NATS restart,
// restore their subscriptions and KV watches, and count the outage;
// ticketsvc answers 503 meanwhile and recovers.
func TestNATSRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 2})
	c.Channel("ch_live", 1, 2)
	probes := dialProbes(t, c, []clustertest.User{c.NewUser(1, "Alice"), c.NewUser(2, "Bob")})
	for _, p := range probes {
		p.Subscribe(t, "ch_live")
	}
	spare := c.NewUser(3, "Carol")
	ns := c.NATS[0]
	ns.Stop()
	clustertest.Eventually(t, 10*time.Second, "ticketsvc answers 503 while NATS is down", func() bool {
		_, err := client.GetTicket(context.Background(), nil, c.TicketURLs()[0], spare.Token)
		var he *client.HTTPError
		return errors.As(err, &he) && he.Status == 503
	})
	for _, g := range c.Gateways {
		if ok, _ := g.Ready(); ok {
			t.Fatalf("%s ready while NATS is down", g.Name)
		}
	}
	time.Sleep(2 * time.Second)
	if err := ns.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		if p.Closed() {
			t.Fatalf("socket of user %d closed by the NATS outage: %v", p.User.ID, p.Conn.Err())
		}
	}
	for _, p := range probes {
		publishUntil(t, c, p, "ch_live", 20*time.Second)
	}
	for _, g := range c.Gateways {
		if err := g.WaitReady(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		if n, err := g.Metric("ocvr_gateway_nats_reconnects_total"); err != nil || n < 1 {
			t.Fatalf("%s: reconnects = %v, %v; want ≥ 1", g.Name, n, err)
		}
	}
	// The KV watch is back: a membership removal is seen within 2 s.
	if err := c.Directory.RemoveMember(context.Background(), "ch_live", 1); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 3*time.Second, "removal seen after the restart", func() bool {
		return probes[0].Count(protocol.TypeUnsubscribed, `"reason":"removed"`) == 1
	})
	// ticketsvc recovered without a restart.
	clustertest.Eventually(t, 20*time.Second, "tickets again", func() bool {
		conn, err := c.Dial(spare, 0)
		if err == nil {
			conn.CloseNow()
		}
		return err == nil
	})
}

// TestNATSNodeLoss: losing one node of a 3-node NATS cluster does not stop
// delivery or ticketing.
func TestNATSNodeLoss(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 2, NATSNodes: 3})
	c.Channel("ch_live", 1, 2)
	probes := dialProbes(t, c, []clustertest.User{c.NewUser(1, "Alice"), c.NewUser(2, "Bob")})
	for _, p := range probes {
		p.Subscribe(t, "ch_live")
	}
	spare := c.NewUser(3, "Carol")
	c.NATS[0].Stop()
	for _, p := range probes {
		publishUntil(t, c, p, "ch_live", 20*time.Second)
		if p.Closed() {
			t.Fatal("socket closed by a node loss")
		}
	}
	clustertest.Eventually(t, 30*time.Second, "new connections after the node loss", func() bool {
		conn, err := c.Dial(spare, 1)
		if err == nil {
			conn.CloseNow()
		}
		return err == nil
	})
}
