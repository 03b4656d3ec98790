package presence

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// watchLeases watches lease keys; an expired or deleted lease of another pod
// triggers its cleanup, claimed by exactly one surviving pod. The cleanups
// run on goroutines counted in wg (Run's), so Run waits for them.
func (t *Tracker) watchLeases(ctx context.Context, wg *sync.WaitGroup) {
	var last uint64
	for ctx.Err() == nil {
		reconnected := *t.reconnect.Load()
		opts := []jetstream.WatchOpt{jetstream.UpdatesOnly()}
		if last > 0 {
			opts = []jetstream.WatchOpt{jetstream.ResumeFromRevision(last + 1)}
		}
		w, err := t.s.kv.Watch(ctx, "pod.*", opts...)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
	loop:
		for {
			select {
			case <-ctx.Done():
				_ = w.Stop()
				return
			case <-reconnected:
				break loop
			case e, ok := <-w.Updates():
				if !ok {
					break loop
				}
				if e == nil {
					continue
				}
				last = e.Revision()
				pod := strings.TrimPrefix(e.Key(), "pod.")
				op := e.Operation()
				if op != jetstream.KeyValueDelete && op != jetstream.KeyValuePurge {
					continue
				}
				if pod == t.cfg.Pod {
					// Our own lease lapsed (a stall longer than the TTL):
					// other pods may be cleaning up after us. The lease
					// loop refreshes and re-asserts.
					select {
					case t.lapsed <- struct{}{}:
					default:
					}
					continue
				}
				wg.Add(1)
				go func() { defer wg.Done(); t.claimCleanup(ctx, pod) }()
			}
		}
		_ = w.Stop()
	}
}

// claimCleanup cleans up after a dead pod if this pod wins the claim.
func (t *Tracker) claimCleanup(ctx context.Context, pod string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The claim expires on its own, so a later death of a pod with the same
	// name can be claimed again.
	if alive, err := t.s.exists(ctx, "pod."+pod); err != nil || alive {
		return // the lease was refreshed late: the pod is alive
	}
	if _, err := t.s.kv.Create(ctx, "gc."+pod, []byte(t.cfg.Pod), jetstream.KeyTTL(time.Minute)); err != nil {
		return // another pod won, or NATS is down
	}
	t.log.Info("presence: cleaning up after dead pod", "dead_pod", pod)
	if err := t.cleanupPod(ctx, pod); err != nil {
		t.log.Warn("presence: cleanup", "dead_pod", pod, "err", err)
	}
}

// cleanupOrphans cleans up after every pod that has entries but no lease:
// pods that died while no other pod was watching.
func (t *Tracker) cleanupOrphans(ctx context.Context) error {
	leases, err := t.s.keys(ctx, "pod.*")
	if err != nil {
		return err
	}
	alive := map[string]bool{}
	for _, k := range leases {
		alive[strings.TrimPrefix(k, "pod.")] = true
	}
	entries, err := t.s.keys(ctx, "c.>")
	if err != nil {
		return err
	}
	dead := map[string]bool{}
	for _, k := range entries {
		if _, pod, ok := parseConnKey(k); ok && pod != t.cfg.Pod && !alive[pod] {
			dead[pod] = true
		}
	}
	for pod := range dead {
		t.claimCleanup(ctx, pod)
	}
	return nil
}

// cleanupPod removes a dead pod's entries and, after the grace, takes its
// users offline where they have no connection elsewhere — exactly once
// cluster-wide, as any offline transition.
func (t *Tracker) cleanupPod(ctx context.Context, pod string) error {
	keys, err := t.s.keys(ctx, "c.*."+pod)
	if err != nil {
		return fmt.Errorf("list entries of %s: %w", pod, err)
	}
	for _, k := range keys {
		user, _, ok := parseConnKey(k)
		if !ok {
			continue
		}
		if err := t.s.removeEntry(ctx, k, 0); err != nil {
			return err
		}
		t.checkLater(user)
	}
	return nil
}
