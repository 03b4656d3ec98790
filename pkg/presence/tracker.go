package presence

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
)

// TrackerConfig configures a gateway pod's presence tracker.
type TrackerConfig struct {
	// Pod is this pod's name. The tracker's KV identity is the sanitised
	// name plus a random suffix per process, so a restarted process that
	// reuses its name (a StatefulSet, a dev machine) never touches — or
	// has cleaned up — the entries of its previous incarnation.
	Pod      string
	Grace    time.Duration // offline grace (default 10s)
	LeaseTTL time.Duration // pod lease TTL (default 10s); refreshed every LeaseTTL/3
	Workers  int           // parallel KV workers, sharded by user (default 8)
	Logger   *slog.Logger
	// OnTransition is called after this pod announced a transition
	// (metrics); presence is "online" or "offline".
	OnTransition func(presence string)
}

// Tracker is a gateway pod's view of presence. Connected and Disconnected
// are cheap and never block on NATS: a pod touches KV only when a user's
// local connection count goes 0→1 or 1→0, on per-user-ordered workers.
type Tracker struct {
	s   *Store
	cfg TrackerConfig
	log *slog.Logger

	mu     sync.Mutex
	local  map[int64]int       // connections per user on this pod
	downAt map[int64]time.Time // when a user's last local connection closed, until its entry is removed
	work   []chan event

	reconnect atomic.Pointer[chan struct{}] // closed and replaced on every NATS reconnect
}

type eventKind int

const (
	evUp eventKind = iota + 1
	evDown
	evCheck
)

type event struct {
	kind eventKind
	user int64
}

// SanitizePodName maps a Kubernetes pod name (which may hold dots) to a KV
// key token.
func SanitizePodName(pod string) string {
	var b strings.Builder
	for i := 0; i < len(pod) && b.Len() < 64; i++ {
		c := pod[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "pod"
	}
	return b.String()
}

// NewTracker returns a tracker for one gateway pod. Call Run.
func (s *Store) NewTracker(cfg TrackerConfig) *Tracker {
	name := SanitizePodName(cfg.Pod)
	if len(name) > 55 {
		name = name[:55]
	}
	cfg.Pod = kvutil.RandomToken(name+"_", 6)
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 10 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{s: s, cfg: cfg, log: cfg.Logger, local: map[int64]int{}, downAt: map[int64]time.Time{}}
	ch := make(chan struct{})
	t.reconnect.Store(&ch)
	for i := 0; i < cfg.Workers; i++ {
		t.work = append(t.work, make(chan event, 4096))
	}
	return t
}

// Pod is the tracker's KV identity: the sanitised pod name and a random
// suffix.
func (t *Tracker) Pod() string { return t.cfg.Pod }

// Connected records a new local connection of user.
func (t *Tracker) Connected(user int64) {
	t.mu.Lock()
	t.local[user]++
	first := t.local[user] == 1
	t.mu.Unlock()
	if first {
		t.enqueue(event{evUp, user})
	}
}

// Disconnected records a closed local connection of user.
func (t *Tracker) Disconnected(user int64) {
	t.mu.Lock()
	t.local[user]--
	last := t.local[user] <= 0
	if last {
		delete(t.local, user)
		t.downAt[user] = time.Now()
	}
	t.mu.Unlock()
	if last {
		t.enqueue(event{evDown, user})
	}
}

func (t *Tracker) localCount(user int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.local[user]
}

func (t *Tracker) enqueue(e event) {
	// Per-user order: a user always lands on the same worker.
	t.work[uint64(e.user)%uint64(len(t.work))] <- e
}

// NATSReconnected must be called after every NATS reconnect: the lease
// watch is re-created (KV watchers go blind after a server restart) and the
// pod re-asserts its entries, which other pods may have removed if the
// outage outlived the lease.
func (t *Tracker) NATSReconnected() {
	ch := make(chan struct{})
	old := t.reconnect.Swap(&ch)
	close(*old)
}

// Run holds the pod's lease, cleans up after dead pods (including pods
// that died while no other was watching), and processes transitions until
// ctx ends.
func (t *Tracker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, ch := range t.work {
		wg.Add(1)
		go func(ch chan event) {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case e := <-ch:
					t.handle(ctx, e)
				}
			}
		}(ch)
	}
	if err := t.cleanupOrphans(ctx); err != nil {
		t.log.Warn("presence: clean stale entries", "err", err)
	}
	wg.Add(2)
	go func() { defer wg.Done(); t.leaseLoop(ctx) }()
	go func() { defer wg.Done(); t.watchLeases(ctx) }()
	wg.Wait()
	return nil
}

// Shutdown deletes the pod's lease at a clean exit. Its remaining entries
// (users whose grace had not run out) are then cleaned up by a surviving
// pod, with the same grace, so a rolling restart causes no flap.
func (t *Tracker) Shutdown(ctx context.Context) {
	_ = t.s.kv.Purge(ctx, "pod."+t.cfg.Pod)
}

func (t *Tracker) handle(ctx context.Context, e event) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch e.kind {
	case evUp:
		if t.localCount(e.user) == 0 {
			return // already gone again; the down event follows
		}
		if _, err := t.s.kv.Put(ctx, connKey(e.user, t.cfg.Pod), nil); err != nil {
			t.log.Warn("presence: put entry", "user", e.user, "err", err)
			return
		}
		won, err := t.s.goOnline(ctx, e.user)
		if err != nil {
			t.log.Warn("presence: online", "user", e.user, "err", err)
		}
		if won && t.cfg.OnTransition != nil {
			t.cfg.OnTransition("online")
		}
	case evDown:
		// The entry stays for the grace: if this pod exits meanwhile, the
		// pod that cleans up after it still finds the user and checks.
		t.checkLater(e.user)
	case evCheck:
		// The grace runs from the user's last disconnect anywhere: a check
		// scheduled for an older one (another pod's cleanup) must not cut
		// short the grace of a disconnect here, whose own check follows.
		t.mu.Lock()
		n := t.local[e.user]
		down, had := t.downAt[e.user]
		fresh := had && time.Since(down) < t.cfg.Grace
		if n == 0 && had && !fresh {
			delete(t.downAt, e.user)
		}
		t.mu.Unlock()
		if n > 0 || fresh {
			return
		}
		if had {
			if err := t.s.kv.Purge(ctx, connKey(e.user, t.cfg.Pod)); err != nil && !kvutil.IsNotFound(err) {
				t.log.Warn("presence: delete entry", "user", e.user, "err", err)
				return
			}
		}
		won, err := t.s.goOfflineIfIdle(ctx, e.user)
		if err != nil {
			t.log.Warn("presence: offline", "user", e.user, "err", err)
		}
		if won && t.cfg.OnTransition != nil {
			t.cfg.OnTransition("offline")
		}
	}
}

func (t *Tracker) checkLater(user int64) {
	time.AfterFunc(t.cfg.Grace, func() { t.enqueue(event{evCheck, user}) })
}

// leaseLoop keeps pod.<pod> alive with a per-message TTL.
func (t *Tracker) leaseLoop(ctx context.Context) {
	every := t.cfg.LeaseTTL / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	t.refreshLease(ctx)
	for {
		reconnected := *t.reconnect.Load()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.refreshLease(ctx)
		case <-reconnected:
			t.refreshLease(ctx)
			t.reassert()
		}
	}
}

func (t *Tracker) refreshLease(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.LeaseTTL/3)
	defer cancel()
	subj := "$KV." + t.s.bucket + ".pod." + t.cfg.Pod
	ttl := t.cfg.LeaseTTL.Round(time.Second)
	if _, err := t.s.js.Publish(ctx, subj, []byte(time.Now().UTC().Format(time.RFC3339)), jetstream.WithMsgTTL(ttl)); err != nil {
		t.log.Warn("presence: refresh lease", "err", err)
	}
}

// reassert re-creates the entries of every local user and re-claims their
// online state, after an outage during which another pod may have cleaned
// this pod up.
func (t *Tracker) reassert() {
	t.mu.Lock()
	users := make([]int64, 0, len(t.local))
	for u := range t.local {
		users = append(users, u)
	}
	t.mu.Unlock()
	for _, u := range users {
		t.enqueue(event{evUp, u})
	}
}

// watchLeases watches lease keys; an expired or deleted lease of another pod
// triggers its cleanup, claimed by exactly one surviving pod.
func (t *Tracker) watchLeases(ctx context.Context) {
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
					// other pods may be cleaning up after us. Re-assert.
					if ctx.Err() == nil {
						t.log.Warn("presence: own lease expired; re-asserting")
						go func() { t.refreshLease(ctx); t.reassert() }()
					}
					continue
				}
				go t.claimCleanup(ctx, pod)
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
		if err := t.s.kv.Purge(ctx, k); err != nil && !kvutil.IsNotFound(err) {
			return fmt.Errorf("remove entry: %w", err)
		}
		t.checkLater(user)
	}
	return nil
}
