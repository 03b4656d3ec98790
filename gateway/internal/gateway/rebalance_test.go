package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// rebalanceOn turns rebalancing on with a short fleet interval and window,
// and a margin of 30%: with 30 sockets 10% is one or two, less than the
// sockets in flight under the race detector.
func rebalanceOn(c *gateway.Config) {
	c.NoRebalance = false
	c.FleetInterval = 100 * time.Millisecond
	c.RebalanceWindow = time.Second
	c.RebalanceMaxRate = 1000
	c.RebalanceMargin = 0.3
}

// TestRebalanceMovesSocketsToAJoiningPod: 30 sockets on one pod, a second
// pod joins; the first closes about 15 with 1012 "rebalancing" (one or two
// more when its view of the second is older than the sockets in flight),
// they reconnect to the second (the load balancer's choice here), and the
// two stay there: the second never sheds back.
func TestRebalanceMovesSocketsToAJoiningPod(t *testing.T) {
	const n = 30
	e := newEnv(t, func(c *gateway.Config) { rebalanceOn(c); c.PodName = "gw-1" })
	users := make([]user, n)
	conns := make([]*client.Conn, n)
	spare := make([]string, n) // tickets for the reconnect, minted here (not in a goroutine)
	for i := range users {
		users[i] = e.user(int64(i+1), fmt.Sprintf("user%d", i+1))
		conns[i] = e.dial(users[i])
		spare[i] = e.ticket(users[i])
	}
	second := e.pod(t, e.ns.ClientURL(), rebalanceOn)

	// Each client waits for its close until the test has seen the pods
	// settle; the ones still open then were kept.
	settled, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		mu     sync.Mutex
		moved  int
		failed []error
		wg     sync.WaitGroup
	)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			for err == nil {
				_, err = c.Next(settled)
			}
			if settled.Err() != nil {
				return // kept: not shed
			}
			var ce *client.CloseError
			if !errors.As(err, &ce) || ce.Code != protocol.CloseServiceRestart || ce.Reason != "rebalancing" {
				mu.Lock()
				failed = append(failed, fmt.Errorf("client %d ended with %v, want 1012 rebalancing", i, err))
				mu.Unlock()
				return
			}
			_, err = e.dialTicket(second.wsURL, spare[i])
			mu.Lock()
			if err != nil {
				failed = append(failed, fmt.Errorf("client %d: reconnect to the second pod: %w", i, err))
			} else {
				moved++
			}
			mu.Unlock()
		}()
	}
	balanced := func() bool {
		a, b := e.g.Connections(), second.g.Connections()
		return a+b == n && a <= n/2 && a >= n/2-2
	}
	for deadline := time.Now().Add(10 * time.Second); !balanced(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("not balanced after 10 s: %d and %d connections, %d moved, errors %v", e.g.Connections(), second.g.Connections(), moved, failed)
		}
	}
	time.Sleep(2 * time.Second) // two windows: nothing moves any more
	stop()
	wg.Wait()
	for _, err := range failed {
		t.Error(err)
	}
	a, b := e.g.Connections(), second.g.Connections()
	if !balanced() || moved != n-a {
		t.Errorf("after settling: %d and %d connections, %d moved; want %d-%d on the first, every shed socket on the second", a, b, moved, n/2-2, n/2)
	}
	if shed := e.metric("ocvr_gateway_rebalance_shed_total"); int(shed) != moved {
		t.Errorf("first pod: rebalance_shed_total %v, want the %d moved", shed, moved)
	}
	if shed := podMetric(t, second, "ocvr_gateway_rebalance_shed_total"); shed != 0 {
		t.Errorf("second pod shed %v sockets back", shed)
	}
	if pods := e.metric("ocvr_gateway_fleet_pods"); pods != 2 {
		t.Errorf("first pod: fleet_pods %v, want 2", pods)
	}
}

// podMetric returns one series of a second pod's /metrics (0 when absent).
func podMetric(t *testing.T, p *pod, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	p.g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return parseMetrics(t, rec.Body)[series]
}
