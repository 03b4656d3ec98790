package presence

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// shard is the local presence state of the users one worker owns.
type shard struct {
	mu    sync.Mutex
	users map[int64]*userState
	dirty map[int64]struct{} // users whose state changed since the worker last looked
	due   dueHeap            // timed re-checks: offline graces, dead pods' users, retries
	// wake tells the worker something changed. Capacity 1 and sent to
	// without blocking: one pending wake covers any number of changes.
	wake chan struct{}
}

// userState is one user's state on this pod. Only the shard's worker
// deletes it, so the worker may keep a pointer across a KV call.
type userState struct {
	local  int       // open connections of the user on this pod
	assert bool      // write the entry and claim online: set on 0→1 and by reassert
	entry  bool      // c.<user>.<pod> was written and not yet removed
	downAt time.Time // when local last dropped to 0: the grace runs from here
	check  bool      // an offline check is due although this pod holds no entry (a dead pod's user)
}

func newShard() *shard {
	return &shard{users: map[int64]*userState{}, dirty: map[int64]struct{}{}, wake: make(chan struct{}, 1)}
}

func (sh *shard) state(user int64) *userState {
	st := sh.users[user]
	if st == nil {
		st = &userState{}
		sh.users[user] = st
	}
	return st
}

func (sh *shard) wakeLocked() {
	select {
	case sh.wake <- struct{}{}:
	default: // a wake is pending already
	}
}

func (sh *shard) markLocked(user int64) {
	sh.dirty[user] = struct{}{}
	sh.wakeLocked()
}

// scheduleLocked re-checks user at at. check marks a check for a user this
// pod may hold nothing of; without it the re-check is skipped when the
// user's state is gone (settled meanwhile).
func (sh *shard) scheduleLocked(at time.Time, user int64, check bool) {
	heap.Push(&sh.due, due{at: at, user: user, check: check})
	if sh.due[0].user == user && sh.due[0].at.Equal(at) {
		sh.wakeLocked() // the worker sleeps until an earlier due time
	}
}

// take returns the dirty users, after moving the re-checks that are due
// into them, and how long the worker may sleep.
func (sh *shard) take(now time.Time) ([]int64, time.Duration) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for len(sh.due) > 0 && !sh.due[0].at.After(now) {
		d := heap.Pop(&sh.due).(due)
		st := sh.users[d.user]
		if st == nil {
			if !d.check {
				continue
			}
			st = sh.state(d.user)
		}
		if d.check {
			st.check = true
		}
		sh.dirty[d.user] = struct{}{}
	}
	var batch []int64
	for u := range sh.dirty {
		batch = append(batch, u)
	}
	clear(sh.dirty)
	sleep := time.Hour
	if len(sh.due) > 0 {
		sleep = sh.due[0].at.Sub(now)
	}
	return batch, sleep
}

// work is a shard's worker: it reconciles dirty users until ctx ends.
func (t *Tracker) work(ctx context.Context, sh *shard) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		batch, sleep := sh.take(time.Now())
		for _, u := range batch {
			if ctx.Err() != nil {
				return
			}
			t.reconcile(ctx, sh, u)
		}
		if len(batch) > 0 {
			continue // more may have changed meanwhile
		}
		timer.Reset(sleep)
		select {
		case <-ctx.Done():
			return
		case <-sh.wake:
		case <-timer.C:
		}
	}
}

// reconcile brings KV in line with user's current local state: one step per
// call, the state re-read after every KV operation. A failed operation
// keeps its flag and is retried after retryAfter.
func (t *Tracker) reconcile(ctx context.Context, sh *shard, user int64) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	now := time.Now()
	sh.mu.Lock()
	st := sh.users[user]
	switch {
	case st == nil:
		sh.mu.Unlock()
	case st.local > 0:
		st.check = false
		if !st.assert {
			sh.mu.Unlock()
			return
		}
		st.assert = false
		sh.mu.Unlock()
		t.goOnline(ctx, sh, st, user)
	case !st.downAt.IsZero() && now.Sub(st.downAt) < t.cfg.Grace:
		// In the grace; its re-check is scheduled. A connect that came and
		// went before we looked claims nothing.
		st.assert = false
		sh.mu.Unlock()
	default:
		st.assert = false
		entry, check := st.entry, st.check
		sh.mu.Unlock()
		t.goOffline(ctx, sh, st, user, entry, check)
	}
}

func (t *Tracker) goOnline(ctx context.Context, sh *shard, st *userState, user int64) {
	retry := func() {
		sh.mu.Lock()
		st.assert = true
		sh.scheduleLocked(time.Now().Add(retryAfter), user, false)
		sh.mu.Unlock()
	}
	written, won, err := t.s.claimOnline(ctx, user, connKey(user, t.cfg.Pod))
	if written {
		sh.mu.Lock()
		st.entry = true
		sh.mu.Unlock()
	}
	if err != nil {
		t.log.Warn("presence: online", "user", user, "err", err)
		retry()
		return
	}
	if won && t.cfg.OnTransition != nil {
		t.cfg.OnTransition("online")
	}
}

// goOffline removes this pod's entry of a user whose grace has run out and
// takes the user offline if no pod holds a connection: exactly one pod
// wins that transition cluster-wide.
func (t *Tracker) goOffline(ctx context.Context, sh *shard, st *userState, user int64, entry, check bool) {
	retry := func() {
		sh.mu.Lock()
		st.check = st.check || check
		sh.scheduleLocked(time.Now().Add(retryAfter), user, false)
		sh.mu.Unlock()
	}
	if entry {
		if err := t.s.removeEntry(ctx, connKey(user, t.cfg.Pod), 0); err != nil {
			t.log.Warn("presence: delete entry", "user", user, "err", err)
			retry()
			return
		}
		sh.mu.Lock()
		st.entry = false
		sh.mu.Unlock()
	}
	if entry || check {
		won, err := t.s.goOfflineIfIdle(ctx, user)
		if err != nil {
			t.log.Warn("presence: offline", "user", user, "err", err)
			check = true
			retry()
			return
		}
		if won && t.cfg.OnTransition != nil {
			t.cfg.OnTransition("offline")
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st.check = false
	if _, again := sh.dirty[user]; st.local == 0 && !st.entry && !st.assert && !again {
		delete(sh.users, user)
	}
}

// due is a timed re-check of a user.
type due struct {
	at    time.Time
	user  int64
	check bool
}

// dueHeap orders re-checks by time (container/heap).
type dueHeap []due

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(due)) }
func (h *dueHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}
