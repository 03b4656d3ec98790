package server

import "sync/atomic"

// admission caps the ticket requests doing KV work (session verify, ticket
// Create) at once. Beyond the cap a request is refused at once with a
// retryable 503 instead of waiting: a queue in front of NATS grows without
// bound in a reconnect storm, and every client in it waits out the whole
// queue (or its own timeout) for a ticket it would get as fast by retrying
// after Retry-After.
type admission struct {
	max int64
	n   atomic.Int64
}

// tryAcquire takes a slot if one is free; it never blocks. A compare-and-swap
// rather than add-then-undo, so a burst of refused requests can never make
// an admitted one see the cap as reached.
func (a *admission) tryAcquire() bool {
	for {
		n := a.n.Load()
		if n >= a.max {
			return false
		}
		if a.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (a *admission) release() { a.n.Add(-1) }

// inFlight is the number of slots taken.
func (a *admission) inFlight() int64 { return a.n.Load() }
