// Package ratelimit is a keyed token-bucket limiter with bounded memory:
// one bucket per key (ticketsvc keys by session id), refilled continuously,
// with idle buckets evicted so that memory follows the number of sessions
// active within the last refill window, not the number ever seen.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds the buckets held at once. At roughly 150 bytes a
// bucket this caps the limiter near 15 MB whatever the traffic.
const DefaultMaxKeys = 100_000

// Limiter allows up to perMinute events per key per minute, with bursts up
// to perMinute. It is safe for concurrent use.
type Limiter struct {
	limit   rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// New returns a limiter of perMinute events per key per minute (perMinute
// must be positive). maxKeys ≤ 0 means DefaultMaxKeys; now nil means
// time.Now.
func New(perMinute, maxKeys int, now func() time.Time) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		limit:   rate.Limit(float64(perMinute) / 60),
		burst:   perMinute,
		maxKeys: maxKeys,
		now:     now,
		buckets: make(map[string]*rate.Limiter),
	}
}

// Allow takes one token from key's bucket. When the bucket is empty it
// takes nothing and reports how long until a token is available, so the
// caller can send Retry-After.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()

	b := l.buckets[key]
	if b == nil {
		l.makeRoom(now)
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.TokensAt(now)
	wait := time.Duration(math.Ceil(missing / float64(l.limit) * float64(time.Second)))
	return false, max(wait, time.Nanosecond)
}

// Len reports how many buckets are held (for a metric and for tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// refillTime is how long an empty bucket takes to become full again.
func (l *Limiter) refillTime() time.Duration {
	return time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
}

// makeRoom runs before a bucket is added. It sweeps full buckets at most
// once per refill window, which keeps the amortised cost per call O(1), and
// when the map is still at its cap it drops an arbitrary bucket: that key
// merely starts over with a full burst, which is the cheapest way to fail
// when the cap is reached and never blocks legitimate sessions.
func (l *Limiter) makeRoom(now time.Time) {
	if now.Sub(l.lastSweep) >= l.refillTime() || len(l.buckets) >= l.maxKeys {
		l.sweep(now)
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys {
			break
		}
		delete(l.buckets, k)
	}
}

// sweep drops every bucket that has refilled completely: a full bucket
// behaves exactly like a new one, so forgetting it changes no decision.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}
