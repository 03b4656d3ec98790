package typing_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/typing"
)

// topology gives two client URLs: of one server, or of two nodes of a
// 3-node cluster (the bucket then has 3 replicas).
type topology struct {
	name string
	urls func(t *testing.T) (string, string)
}

var topologies = []topology{
	{"single server", func(t *testing.T) (string, string) {
		s := natsembed.Test(t)
		return s.ClientURL(), s.ClientURL()
	}},
	{"3-node cluster", func(t *testing.T) (string, string) {
		c, err := natsembed.StartCluster(3, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Shutdown)
		if err := c.WaitJetStream(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		u := c.ClientURLs()
		return u[0], u[1]
	}},
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// pods opens one Throttle per URL, each on its own NATS connection, as two
// gateway pods would.
func pods(t *testing.T, urls ...string) []*typing.Throttle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*typing.Throttle
	for _, u := range urls {
		var th *typing.Throttle
		var err error
		// A fresh cluster may still be placing the bucket's replicas.
		for i := 0; i < 50; i++ {
			if th, err = typing.Open(ctx, connect(t, u), ""); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		// A new replicated stream answers once its group has a leader:
		// until then Allow says "no response from stream" (the gateway
		// falls back on its own throttle). Wait for it, on a key of its own.
		// Each try on a deadline of its own: one request lost in a leader
		// election must not use up the whole wait.
		deadline := time.Now().Add(60 * time.Second)
		for i := int64(1); ; i++ {
			tctx, tcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = th.Allow(tctx, "warmup", i)
			tcancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the typing bucket never answered: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		out = append(out, th)
	}
	return out
}

// race calls Allow from every pod on perPod goroutines at once and returns
// how many were allowed.
func race(t *testing.T, ths []*typing.Throttle, perPod int, channel string, user int64) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		won   int
		start = make(chan struct{})
	)
	for _, th := range ths {
		for i := 0; i < perPod; i++ {
			wg.Add(1)
			go func() { // owner: race; exits after one Allow
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ok, err := th.Allow(ctx, channel, user)
				if err != nil {
					t.Errorf("Allow: %v", err)
					return
				}
				if ok {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	return won
}

// TestOneWinnerPerWindowAcrossPods: pods on different NATS connections (and
// on different nodes of a cluster) race for the same user and channel:
// exactly one is allowed per window; nobody within the window; a new window
// opens 3 s after the last one started (not at the key's expiry, which
// comes late), and again exactly one of the racers at its start wins it.
func TestOneWinnerPerWindowAcrossPods(t *testing.T) {
	for _, top := range topologies {
		t.Run(top.name, func(t *testing.T) {
			a, b := top.urls(t)
			ths := pods(t, a, b)
			const channel, user, racers = "ch_race", int64(42), 4
			start := time.Now()
			if n := race(t, ths, racers, channel, user); n != 1 {
				t.Fatalf("%d callers allowed, want exactly 1", n)
			}
			for round := 1; round <= 3; round++ {
				// Within the window: nobody, from either pod.
				for time.Since(start) < typing.Window-300*time.Millisecond {
					if n := race(t, ths, 1, channel, user); n != 0 {
						t.Fatalf("round %d: allowed %v into the window", round, time.Since(start))
					}
					time.Sleep(100 * time.Millisecond)
				}
				// The next window: both pods race until one gets it.
				for {
					pollStart := time.Now()
					n := race(t, ths, racers, channel, user)
					if n > 1 {
						t.Fatalf("round %d: %d callers opened the next window", round, n)
					}
					if n == 1 {
						if opened := time.Since(start); opened < typing.Window-5*time.Millisecond {
							t.Fatalf("round %d: next window after %v, want ≥ %v", round, opened, typing.Window)
						}
						// Promptness is best effort (a lagging replica's
						// read delays it to the key's expiry); "not before"
						// is the guarantee.
						if lag := pollStart.Sub(start) - typing.Window; lag > 500*time.Millisecond {
							t.Fatalf("round %d: next window opened %v late", round, lag)
						}
						start = pollStart // the winner's window started after this
						break
					}
					if time.Since(start) > 2*typing.Window {
						t.Fatalf("round %d: no new window after %v", round, time.Since(start))
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
}

// TestWindowsAreIndependent: each channel and user has its own window.
func TestWindowsAreIndependent(t *testing.T) {
	s := natsembed.Test(t)
	th := pods(t, s.ClientURL())[0]
	ctx := context.Background()
	for _, k := range []struct {
		channel string
		user    int64
	}{{"ch_a", 1}, {"ch_a", 2}, {"ch_b", 1}, {"ch-b_2", 1 << 62}} {
		ok, err := th.Allow(ctx, k.channel, k.user)
		if err != nil || !ok {
			t.Fatalf("first Allow(%s, %d) = %v, %v", k.channel, k.user, ok, err)
		}
		ok, err = th.Allow(ctx, k.channel, k.user)
		if err != nil || ok {
			t.Fatalf("second Allow(%s, %d) = %v, %v", k.channel, k.user, ok, err)
		}
	}
}

// TestInvalidIDs: no input can form a wildcard or an extra key token.
func TestInvalidIDs(t *testing.T) {
	s := natsembed.Test(t)
	th := pods(t, s.ClientURL())[0]
	ctx := context.Background()
	cases := []struct {
		channel string
		user    int64
	}{
		{"", 1}, {"a.b", 1}, {"*", 1}, {">", 1}, {"ch a", 1}, {strings.Repeat("c", 65), 1},
		{"ch", 0}, {"ch", -1},
	}
	for _, c := range cases {
		if ok, err := th.Allow(ctx, c.channel, c.user); err == nil || ok {
			t.Errorf("Allow(%q, %d) = %v, %v; want an error", c.channel, c.user, ok, err)
		}
	}
}

// TestNATSDown: with NATS unreachable, Allow says so (the gateway falls
// back on its per-pod throttle) within the caller's deadline.
func TestNATSDown(t *testing.T) {
	s := natsembed.Test(t)
	th := pods(t, s.ClientURL())[0]
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if ok, err := th.Allow(ctx, "ch", 1); err == nil || ok {
		t.Fatalf("Allow with NATS down = %v, %v; want an error", ok, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Allow took %v with a 1 s deadline", took)
	}
}

// TestAllowAtTakesOverAnEndedWindow: at a time past the window, a window
// whose key has not expired yet (its TTL is whole seconds and expiry runs
// late) is taken over by exactly one caller; within it, nobody.
func TestAllowAtTakesOverAnEndedWindow(t *testing.T) {
	s := natsembed.Test(t)
	ths := pods(t, s.ClientURL(), s.ClientURL())
	ctx := context.Background()
	t0 := time.Now()
	steps := []struct {
		at   time.Duration
		want int // callers allowed of the two pods
	}{
		{0, 1},
		{time.Second, 0},
		{typing.Window - time.Millisecond, 0},
		{typing.Window, 1}, // the key is still there: a takeover
		{typing.Window + time.Second, 0},
		{2 * typing.Window, 1},
	}
	for _, st := range steps {
		won := 0
		for _, th := range ths {
			ok, err := th.AllowAt(ctx, "ch_at", 9, t0.Add(st.at))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				won++
			}
		}
		if won != st.want {
			t.Fatalf("at +%v: %d allowed, want %d", st.at, won, st.want)
		}
	}
}

// TestWithWindow: a gateway's configured window, not whole seconds, holds
// from the first call; the key's TTL (rounded up to a second) does not
// lengthen it.
func TestWithWindow(t *testing.T) {
	s := natsembed.Test(t)
	ctx := context.Background()
	const window = 1500 * time.Millisecond
	th, err := typing.Open(ctx, connect(t, s.ClientURL()), "", typing.WithWindow(window))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if ok, err := th.Allow(ctx, "ch_w", 5); err != nil || !ok {
		t.Fatalf("first Allow = %v, %v", ok, err)
	}
	for {
		before := time.Now()
		ok, err := th.Allow(ctx, "ch_w", 5)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if d := time.Since(start); d < window-5*time.Millisecond {
				t.Fatalf("allowed again after %v, window %v", d, window)
			}
			if lag := before.Sub(start) - window; lag > 300*time.Millisecond {
				t.Fatalf("the next window opened %v late", lag)
			}
			return
		}
		if time.Since(start) > 3*window {
			t.Fatal("no new window")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
