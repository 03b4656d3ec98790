package gateway

import "sync/atomic"

// softCap is the soft connection limit with hysteresis: /readyz fails once
// the pod holds SoftMaxConns sockets and passes again only at or below the
// re-ready threshold. Without the gap a full pod flaps ready/unready with
// every socket that comes and goes, and each flap moves it in and out of
// the Service's endpoints (and counts against the PodDisruptionBudget).
type softCap struct {
	max, readyAgain int // max ≤ 0: no limit
	over            atomic.Bool
}

// softCapReadyAgain is the default re-ready threshold: 95% of the cap, and
// always at least one socket below it.
func softCapReadyAgain(max, readyAgain int) int {
	switch {
	case max <= 0:
		return 0
	case readyAgain > 0 && readyAgain < max:
		return readyAgain
	case readyAgain >= max:
		return max - 1
	}
	return min(max-1, max*95/100)
}

func newSoftCap(max, readyAgain int) *softCap {
	return &softCap{max: max, readyAgain: softCapReadyAgain(max, readyAgain)}
}

// full reports whether a pod holding n sockets is (still) at its soft cap.
func (s *softCap) full(n int) bool {
	switch {
	case s.max <= 0:
		return false
	case n >= s.max:
		s.over.Store(true)
	case n <= s.readyAgain:
		s.over.Store(false)
	}
	return s.over.Load()
}
