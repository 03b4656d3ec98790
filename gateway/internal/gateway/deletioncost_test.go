package gateway_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/gateway"
)

// costRecorder is a DeletionCoster that records the costs it is given and
// fails while told to.
type costRecorder struct {
	mu    sync.Mutex
	costs []int32
	fail  bool
}

func (r *costRecorder) SetDeletionCost(_ context.Context, cost int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("refused")
	}
	r.costs = append(r.costs, cost)
	return nil
}

func (r *costRecorder) last() (int32, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.costs) == 0 {
		return -1, 0
	}
	return r.costs[len(r.costs)-1], len(r.costs)
}

// TestDeletionCostFollowsConnections: the pod's deletion cost is its
// connection count, set again when it changes (not when it does not), and
// a failed update is retried and counted.
func TestDeletionCostFollowsConnections(t *testing.T) {
	rec := &costRecorder{}
	e := newEnv(t, func(c *gateway.Config) { c.DeletionCost = rec; c.DeletionCostInterval = 10 * time.Millisecond })
	waitFor(t, 5*time.Second, func() bool { c, _ := rec.last(); return c == 0 })
	alice := e.user(1, "Alice")
	c1 := e.dial(alice)
	e.dial(alice)
	waitFor(t, 5*time.Second, func() bool { c, _ := rec.last(); return c == 2 })
	_, n := rec.last()
	time.Sleep(100 * time.Millisecond) // ten intervals without a change
	if _, again := rec.last(); again != n {
		t.Errorf("%d updates without a change in the count", again-n)
	}
	rec.mu.Lock()
	rec.fail = true
	rec.mu.Unlock()
	c1.CloseNow()
	waitFor(t, 5*time.Second, func() bool {
		return e.metric(label("ocvr_gateway_pod_deletion_cost_updates_total", "result", "error")) >= 2
	})
	rec.mu.Lock()
	rec.fail = false
	rec.mu.Unlock()
	waitFor(t, 5*time.Second, func() bool { c, _ := rec.last(); return c == 1 })
}
