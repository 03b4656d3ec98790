package gateway

import (
	"context"
	"errors"
	"sync"
)

// DefaultMaxConnsPerUser is the default per-user connection cap of a pod:
// generous for one person's devices and tabs, small enough that one stolen
// or scripted session cannot hold a pod's sockets.
const DefaultMaxConnsPerUser = 16

// userConns counts each user's connections on this pod, from the moment a
// ticket is redeemed (the user is known) until the connection's cleanup,
// for the per-user cap (Config.MaxConnsPerUser). Users at zero are
// forgotten, so the map is bounded by the open connections.
type userConns struct {
	mu sync.Mutex
	n  map[int64]int
}

func newUserConns() *userConns { return &userConns{n: map[int64]int{}} }

// acquire takes one of user's slots; it reports false when user already
// holds max (max ≤ 0: no limit).
func (u *userConns) acquire(user int64, max int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if max > 0 && u.n[user] >= max {
		return false
	}
	u.n[user]++
	return true
}

// release gives back one of user's slots.
func (u *userConns) release(user int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n := u.n[user]; n > 1 {
		u.n[user] = n - 1
	} else {
		delete(u.n, user)
	}
}

// count is user's current number of slots (tests, diagnostics).
func (u *userConns) count(user int64) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n[user]
}

// users is the number of users holding at least one slot.
func (u *userConns) users() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.n)
}

// connectUserLimit is the connects_total result of a socket refused by the
// per-user cap.
const connectUserLimit = "user_limit"

// redeemAborted is the connects_total and ticket_redeems_total result of an
// upgrade whose client went away while its ticket was being redeemed.
const redeemAborted = "aborted"

// failedRedeem labels a redemption that failed with a store error: aborted
// when the request's context was canceled (the client left), error
// otherwise (a timeout or an unreachable store: an outage).
func failedRedeem(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.Canceled) {
		return redeemAborted
	}
	return "error"
}
