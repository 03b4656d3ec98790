package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// typingThrottle forwards at most one typing_start per user per channel per
// window (DESIGN.md §2). The pod's own map is the cheap first filter;
// cluster, when set, makes the window cluster-wide (the user's devices may
// be on several pods).
type typingThrottle struct {
	window  time.Duration
	now     func() time.Time
	cluster atomic.Pointer[clusterAllow] // unset until the stores are open: this pod only

	mu   sync.Mutex
	last map[typingKey]time.Time
}

// clusterAllow asks the cluster-wide throttle (pkg/typing).
type clusterAllow func(ctx context.Context, channelID string, userID int64) (bool, error)

func (t *typingThrottle) setCluster(f clusterAllow) { t.cluster.Store(&f) }

type typingKey struct {
	user    int64
	channel string
}

func newTypingThrottle(window time.Duration, now func() time.Time) *typingThrottle {
	return &typingThrottle{window: window, now: now, last: map[typingKey]time.Time{}}
}

// allow reports whether user's typing in channel is forwarded now. When the
// cluster-wide throttle cannot be asked, the pod's own decision stands.
func (t *typingThrottle) allow(ctx context.Context, user int64, channel string) bool {
	now := t.now()
	k := typingKey{user, channel}
	t.mu.Lock()
	if last, ok := t.last[k]; ok && now.Sub(last) < t.window {
		t.mu.Unlock()
		return false
	}
	t.last[k] = now
	t.mu.Unlock()
	cluster := t.cluster.Load()
	if cluster == nil {
		return true
	}
	ok, err := (*cluster)(ctx, channel, user)
	return ok || err != nil
}

// sweep forgets entries older than the window.
func (t *typingThrottle) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, at := range t.last {
		if now.Sub(at) >= t.window {
			delete(t.last, k)
		}
	}
}
