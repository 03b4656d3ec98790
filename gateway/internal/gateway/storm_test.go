package gateway_test

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// TestConnectStormInvariants is the overload benchmark's invariants at a
// size make test affords (not timed): clients that all come at once, with
// no jitter, against a pod whose ticket redemption is slow and capped.
// Every client eventually connects; every refusal is a 1013 with a retry
// hint; afterwards the pod holds no goroutine or descriptor more than
// before.
func TestConnectStormInvariants(t *testing.T) {
	const clients, limit = 120, 4
	e := newEnv(t, func(c *gateway.Config) { c.MaxRedeemsInFlight = limit })
	users := make([]user, clients)
	for i := range users {
		users[i] = e.user(int64(1000+i), "U"+strconv.Itoa(i))
	}
	// Warm up what the first connect loads once (pools, the user topics'
	// machinery), then take the baseline.
	e.dial(e.user(999, "Warm")).CloseNow()
	waitFor(t, 5*time.Second, func() bool { return e.g.Connections() == 0 })
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	// A slow store: every redeem takes 20 ms, so the cap is reached.
	gateway.SetRedeemHook(e.g, func() { time.Sleep(20 * time.Millisecond) })
	var (
		mu       sync.Mutex
		conns    []*client.Conn
		refused  int
		badCodes []string
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for _, u := range users {
		wg.Add(1)
		go func(u user) {
			defer wg.Done()
			<-start
			for attempt := 0; attempt < 40; attempt++ {
				c, err := e.dialTicket("", e.ticket(u))
				if err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					return
				}
				var ce *client.CloseError
				hint := client.RetryAfter(err)
				mu.Lock()
				if !errors.As(err, &ce) || ce.Code != protocol.CloseTryAgainLater || hint <= 0 || !strings.Contains(ce.Reason, "retry_after=") {
					badCodes = append(badCodes, err.Error())
					mu.Unlock()
					return
				}
				refused++
				mu.Unlock()
				// As the SDKs do: the hint, plus jitter up to the hint.
				time.Sleep(hint + rand.N(hint))
			}
			mu.Lock()
			badCodes = append(badCodes, "user "+strconv.FormatInt(u.id, 10)+": never connected")
			mu.Unlock()
		}(u)
	}
	close(start)
	wg.Wait()
	gateway.SetRedeemHook(e.g, nil)
	if len(badCodes) > 0 {
		t.Fatalf("%d clients failed otherwise than with a retryable 1013, e.g. %s", len(badCodes), badCodes[0])
	}
	if len(conns) != clients || e.g.Connections() != clients {
		t.Fatalf("%d clients connected (%d registered), want %d", len(conns), e.g.Connections(), clients)
	}
	if refused == 0 {
		t.Fatal("no upgrade was refused: the cap was never reached, the test proves nothing")
	}
	if got := e.metric(label("ocvr_gateway_connects_total", "result", "busy")); int(got) != refused {
		t.Errorf("connects_total{busy} = %v, want %d", got, refused)
	}
	t.Logf("%d clients, %d refusals with a retry hint before all were in", clients, refused)

	for _, c := range conns {
		c.CloseNow()
	}
	waitFor(t, 10*time.Second, func() bool { return e.g.Connections() == 0 })
	// Torn-down connections' goroutines and sockets go soon, not at once.
	waitFor(t, 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= goroutines+5 && openFDs(t) <= fds+5
	})
}
