package clustertest_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// watcher records the presence_update events published to a friend's user
// subject: exactly what that friend's connections would receive.
type watcher struct {
	mu     sync.Mutex
	events []protocol.PresenceUpdate
	at     []time.Time
}

func watchFriend(t *testing.T, c *clustertest.Cluster, friend int64) *watcher {
	t.Helper()
	w := &watcher{}
	sub, err := c.NC.Subscribe("ocvr.user."+strconv.FormatInt(friend, 10), func(m *nats.Msg) {
		var f struct {
			Type string                  `json:"type"`
			Data protocol.PresenceUpdate `json:"data"`
		}
		if json.Unmarshal(m.Data, &f) == nil && f.Type == protocol.TypePresenceUpdate {
			w.mu.Lock()
			w.events = append(w.events, f.Data)
			w.at = append(w.at, time.Now())
			w.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := c.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *watcher) of(user int64) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, e := range w.events {
		if e.UserID == user {
			out = append(out, e.Presence)
		}
	}
	return out
}

func (w *watcher) all() []protocol.PresenceUpdate {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]protocol.PresenceUpdate(nil), w.events...)
}

func equal(a []string, b ...string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPresenceAcrossPods: a user with devices on two pods goes online once;
// closing one device: nothing; closing both: one offline after the grace;
// reconnecting within the grace: nothing at all.
func TestPresenceAcrossPods(t *testing.T) {
	const grace = 2 * time.Second
	c := clustertest.Start(t, clustertest.Options{Gateways: 2, GatewayArgs: []string{"--presence-grace", grace.String()}})
	ctx := context.Background()
	if err := c.Directory.AddFriend(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	bob := watchFriend(t, c, 2)
	alice := c.NewUser(1, "Alice")
	phone, err := c.Dial(alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	desk, err := c.Dial(alice, 1)
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 5*time.Second, "online", func() bool { return len(bob.of(1)) == 1 })
	time.Sleep(500 * time.Millisecond)
	if got := bob.of(1); !equal(got, "online") {
		t.Fatalf("two devices on two pods: %v, want one online", got)
	}
	p, err := c.Presence.Get(ctx, 1)
	if err != nil || !p.Online {
		t.Fatalf("presence get = %+v, %v", p, err)
	}

	phone.Close()
	time.Sleep(grace + time.Second)
	if got := bob.of(1); !equal(got, "online") {
		t.Fatalf("one of two devices closed: %v, want no new event", got)
	}

	// The last device closes and comes back within the grace.
	desk.Close()
	time.Sleep(grace / 4)
	back, err := c.Dial(alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(grace + time.Second)
	if got := bob.of(1); !equal(got, "online") {
		t.Fatalf("reconnect within the grace: %v, want no new event", got)
	}

	// Status text reaches the online friend.
	if err := c.Presence.SetStatus(ctx, 1, "Playing OCVR"); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 5*time.Second, "status update", func() bool { return len(bob.of(1)) == 2 })
	if last := bob.all()[1]; last.StatusText != "Playing OCVR" || last.Presence != "online" {
		t.Fatalf("status update = %+v", last)
	}

	start := time.Now()
	back.Close()
	clustertest.Eventually(t, grace+5*time.Second, "offline", func() bool { return len(bob.of(1)) == 3 })
	if took := time.Since(start); took < grace {
		t.Fatalf("offline after %v, before the %v grace", took, grace)
	}
	time.Sleep(time.Second)
	if got := bob.of(1); !equal(got, "online", "online", "offline") {
		t.Fatalf("events = %v, want online, online (status), offline", got)
	}
}

// TestPresenceDeadPod: after SIGKILL of a pod, its single-device users go
// offline within 30 s, exactly once; users also connected elsewhere stay.
func TestPresenceDeadPod(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Gateways: 3, GatewayArgs: []string{"--presence-grace", "3s", "--presence-lease-ttl", "6s"}})
	ctx := context.Background()
	for _, u := range []int64{1, 2, 3} {
		if err := c.Directory.AddFriend(ctx, u, 100); err != nil {
			t.Fatal(err)
		}
	}
	friend := watchFriend(t, c, 100)
	users := []clustertest.User{c.NewUser(1, "A"), c.NewUser(2, "B"), c.NewUser(3, "C")}
	// Users 1 and 2 only on pod 0; user 3 on pods 0 and 1.
	for i, pod := range []int{0, 0, 0, 1} {
		u := users[min(i, 2)]
		conn, err := c.Dial(u, pod)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.CloseNow)
	}
	clustertest.Eventually(t, 5*time.Second, "3 online", func() bool { return len(friend.all()) == 3 })
	start := time.Now()
	c.Gateways[0].Kill()
	clustertest.Eventually(t, 30*time.Second, "users 1 and 2 offline", func() bool {
		return len(friend.of(1)) == 2 && len(friend.of(2)) == 2
	})
	t.Logf("dead pod's users offline after %v", time.Since(start).Round(100*time.Millisecond))
	time.Sleep(4 * time.Second)
	if !equal(friend.of(1), "online", "offline") || !equal(friend.of(2), "online", "offline") || !equal(friend.of(3), "online") {
		t.Fatalf("events: 1 %v, 2 %v, 3 %v", friend.of(1), friend.of(2), friend.of(3))
	}
	// Exactly one surviving pod won each transition.
	total := 0.0
	for _, g := range c.Gateways[1:] {
		n, err := g.Metric("ocvr_gateway_presence_transitions_total", `presence="offline"`)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 2 {
		t.Fatalf("surviving pods announced %v offline transitions, want 2", total)
	}
}
