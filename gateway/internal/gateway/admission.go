package gateway

import (
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

// DefaultMaxPreauthPerSource is the default number of upgrades one source
// address may have in flight before its ticket is redeemed.
const DefaultMaxPreauthPerSource = 100

// sourceLimiter bounds the unauthenticated work one source address can make
// the pod do: upgrades in flight between the request and the end of the
// ticket's redemption (a KV read each, for any well-formed random ticket).
// Sources at zero are forgotten, so the map is bounded by the upgrades in
// flight.
type sourceLimiter struct {
	max int // ≤ 0: no limit

	mu sync.Mutex
	n  map[string]int
}

func newSourceLimiter(max int) *sourceLimiter {
	return &sourceLimiter{max: max, n: map[string]int{}}
}

func (s *sourceLimiter) acquire(source string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 0 && s.n[source] >= s.max {
		return false
	}
	s.n[source]++
	return true
}

func (s *sourceLimiter) release(source string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.n[source]; n > 1 {
		s.n[source] = n - 1
	} else {
		delete(s.n, source)
	}
}
