package presence

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/protocol"
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
	Workers  int           // KV workers, each owning a shard of the users (default 8)
	Logger   *slog.Logger
	// OnTransition is called after this pod announced a transition
	// (metrics); presence is "online" or "offline".
	OnTransition func(presence string)
}

// Tracker is a gateway pod's view of presence.
//
// Connected, Disconnected and the re-assert after a NATS reconnect never
// wait for NATS: they change the user's local state under a shard lock,
// mark the user dirty and poke the shard's worker. The worker reconciles
// each dirty user's current state against KV, so any number of changes to
// one user while KV is slow (a flaky client reconnecting in a loop) cost
// one reconciliation, and the backlog is bounded by the number of users,
// not of events. A connect or cleanup never stalls on JetStream, and the
// lease loop, which must refresh the pod's lease on time whatever the
// backlog, never waits for the workers.
type Tracker struct {
	s   *Store
	cfg TrackerConfig
	log *slog.Logger

	// Users are sharded by id over the workers: a user's KV operations
	// are done in order by one worker, and shards do not contend.
	shards []*shard

	reconnect atomic.Pointer[chan struct{}] // closed and replaced on every NATS reconnect
	// lapsed asks the lease loop to refresh and re-assert at once: the
	// watcher saw this pod's own lease expire. Capacity 1: repeats merge.
	lapsed chan struct{}
}

// retryAfter is how long a user whose KV operation failed waits before its
// worker tries again; opTimeout bounds one user's reconciliation step.
const (
	retryAfter = time.Second
	opTimeout  = 10 * time.Second
)

// SanitizePodName maps a Kubernetes pod name (which may hold dots) to a KV
// key token (protocol.IDPattern): a byte that is not an id by itself
// becomes "_".
func SanitizePodName(pod string) string {
	var b strings.Builder
	for i := 0; i < len(pod) && b.Len() < protocol.MaxIDLen; i++ {
		if protocol.ValidID(pod[i : i+1]) {
			b.WriteByte(pod[i])
		} else {
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
	t := &Tracker{s: s, cfg: cfg, log: cfg.Logger, lapsed: make(chan struct{}, 1)}
	ch := make(chan struct{})
	t.reconnect.Store(&ch)
	for i := 0; i < cfg.Workers; i++ {
		t.shards = append(t.shards, newShard())
	}
	return t
}

// Pod is the tracker's KV identity: the sanitised pod name and a random
// suffix.
func (t *Tracker) Pod() string { return t.cfg.Pod }

func (t *Tracker) shard(user int64) *shard {
	return t.shards[uint64(user)%uint64(len(t.shards))]
}

// Connected records a new local connection of user. It never blocks on
// NATS.
func (t *Tracker) Connected(user int64) {
	sh := t.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.state(user)
	st.local++
	if st.local == 1 {
		// 0→1 on this pod: write the entry and claim online (or, if the
		// user is online already, bump u.<user> so a concurrent offline
		// decision elsewhere fails).
		st.assert = true
		st.downAt = time.Time{}
		sh.markLocked(user)
	}
}

// Disconnected records a closed local connection of user. It never blocks
// on NATS. A Disconnected without a matching Connected is ignored.
func (t *Tracker) Disconnected(user int64) {
	sh := t.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.users[user]
	if st == nil || st.local == 0 {
		return
	}
	st.local--
	if st.local == 0 {
		// The entry stays for the grace: if this pod exits meanwhile, the
		// pod that cleans up after it still finds the user and checks.
		st.downAt = time.Now()
		sh.scheduleLocked(st.downAt.Add(t.cfg.Grace), user, false)
	}
}

// NATSReconnected must be called after every NATS reconnect: the lease
// watch is re-created (KV watchers go blind after a server restart) and the
// pod re-asserts its entries, which other pods may have removed if the
// outage outlived the lease. It does not block.
func (t *Tracker) NATSReconnected() {
	ch := make(chan struct{})
	old := t.reconnect.Swap(&ch)
	close(*old)
}

// Run holds the pod's lease, cleans up after dead pods (including pods
// that died while no other was watching), and reconciles local changes
// with KV until ctx ends. Every goroutine it starts has returned when it
// returns.
func (t *Tracker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, sh := range t.shards {
		wg.Add(1)
		go func() { defer wg.Done(); t.work(ctx, sh) }()
	}
	// The lease first: the orphan scan may be slow on a busy server, and
	// the lease must not wait for it.
	wg.Add(3)
	go func() { defer wg.Done(); t.leaseLoop(ctx) }()
	go func() { defer wg.Done(); t.watchLeases(ctx, &wg) }()
	go func() {
		defer wg.Done()
		if err := t.cleanupOrphans(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("presence: clean stale entries", "err", err)
		}
	}()
	wg.Wait()
	return nil
}

// Shutdown deletes the pod's lease at a clean exit. Its remaining entries
// (users whose grace had not run out) are then cleaned up by a surviving
// pod, with the same grace, so a rolling restart causes no flap.
func (t *Tracker) Shutdown(ctx context.Context) {
	_ = t.s.kv.Purge(ctx, "pod."+t.cfg.Pod)
}

// leaseLoop keeps pod.<pod> alive with a per-message TTL. Nothing in it
// waits for the workers: a backlog of presence work must never let the
// lease lapse, which would take every local user offline cluster-wide.
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
		case <-t.lapsed:
			t.log.Warn("presence: own lease expired; re-asserting")
			t.refreshLease(ctx)
			t.reassert()
		}
	}
}

func (t *Tracker) refreshLease(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.LeaseTTL/3)
	defer cancel()
	subj := t.s.kvPre + "$KV." + t.s.bucket + ".pod." + t.cfg.Pod
	ttl := t.cfg.LeaseTTL.Round(time.Second)
	if _, err := t.s.js.Publish(ctx, subj, []byte(time.Now().UTC().Format(time.RFC3339)), jetstream.WithMsgTTL(ttl)); err != nil && ctx.Err() == nil {
		t.log.Warn("presence: refresh lease", "err", err)
	}
}

// reassert marks every local user for re-creating its entry and
// re-claiming online, after an outage during which another pod may have
// cleaned this pod up. It only marks: the workers do the KV work.
func (t *Tracker) reassert() {
	for _, sh := range t.shards {
		sh.mu.Lock()
		for u, st := range sh.users {
			if st.local > 0 {
				st.assert = true
				sh.dirty[u] = struct{}{}
			}
		}
		sh.wakeLocked()
		sh.mu.Unlock()
	}
}

// checkLater schedules an offline check of user after the grace (a dead
// pod's user): it goes offline then unless connected somewhere.
func (t *Tracker) checkLater(user int64) {
	sh := t.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.scheduleLocked(time.Now().Add(t.cfg.Grace), user, true)
}
