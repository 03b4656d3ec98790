package gateway

import (
	"sync"
)

// DefaultMaxConnsPerUser is the default per-user connection cap of a pod:
// generous for one person's devices and tabs, small enough that one stolen
// or scripted session cannot hold a pod's sockets.
const DefaultMaxConnsPerUser = 16

// DefaultMaxPreauthPerSource is the default number of upgrades one source
// address may have in flight before their tickets are redeemed.
const DefaultMaxPreauthPerSource = 100

// slots counts what each key holds, up to a cap: a user's connections on
// this pod, from the ticket's redemption to the connection's teardown
// (Config.MaxConnsPerUser); a source address's upgrades in flight before
// their tickets are redeemed, the unauthenticated work it can make the pod
// do (Config.MaxPreauthPerSource). Keys at zero are forgotten, so the map
// is bounded by what is held.
type slots[K comparable] struct {
	max int // ≤ 0: no limit

	mu sync.Mutex
	n  map[K]int
}

func newSlots[K comparable](max int) *slots[K] {
	return &slots[K]{max: max, n: map[K]int{}}
}

// acquire takes one of k's slots; it reports false when k holds max.
func (s *slots[K]) acquire(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 0 && s.n[k] >= s.max {
		return false
	}
	s.n[k]++
	return true
}

// release gives back one of k's slots.
func (s *slots[K]) release(k K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.n[k]; n > 1 {
		s.n[k] = n - 1
	} else {
		delete(s.n, k)
	}
}
