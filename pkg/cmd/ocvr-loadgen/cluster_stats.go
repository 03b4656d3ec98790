package main

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// The cluster workload's pure bookkeeping: a latency histogram that shards
// can merge exactly, the SDKs' retry delay, the 1013 retry hint, and the
// per-client record of which events of its channel arrived.

// histGrowth is the width of a latencyHist bucket: each bucket's upper
// bound is 2% above its lower one, so a percentile read from a merged
// histogram is within 2% of the exact one.
const histGrowth = 1.02

var logHistGrowth = math.Log(histGrowth)

// latencyHist counts values in µs in logarithmic buckets: bucket b > 0
// holds (g^(b-1), g^b], bucket 0 everything up to 1 µs. Raw samples of
// 56,000 clients would not fit a shard's JSON; these merge exactly.
type latencyHist struct {
	Buckets map[int]int64 `json:"buckets"`
	N       int64         `json:"n"`
	MaxUs   float64       `json:"max_us"`
}

func newLatencyHist() *latencyHist { return &latencyHist{Buckets: map[int]int64{}} }

func histBucket(us float64) int {
	if us <= 1 {
		return 0
	}
	return int(math.Ceil(math.Log(us) / logHistGrowth))
}

func (h *latencyHist) add(us float64) {
	if h.Buckets == nil {
		h.Buckets = map[int]int64{}
	}
	us = max(us, 0) // one host's clock, but never a negative bucket
	h.Buckets[histBucket(us)]++
	h.N++
	h.MaxUs = max(h.MaxUs, us)
}

func (h *latencyHist) merge(o *latencyHist) {
	if o == nil {
		return
	}
	if h.Buckets == nil {
		h.Buckets = map[int]int64{}
	}
	for b, n := range o.Buckets {
		h.Buckets[b] += n
	}
	h.N += o.N
	h.MaxUs = max(h.MaxUs, o.MaxUs)
}

// quantile is the p-th percentile (0..100) in µs, by the rank percentile()
// uses on sorted samples (index (n-1)·p/100): the upper bound of the bucket
// holding that sample, at most the largest value seen.
func (h *latencyHist) quantile(p float64) float64 {
	if h == nil || h.N == 0 {
		return 0
	}
	rank := int64(float64(h.N-1)*p/100) + 1
	keys := make([]int, 0, len(h.Buckets))
	for b := range h.Buckets {
		keys = append(keys, b)
	}
	slices.Sort(keys)
	var cum int64
	for _, b := range keys {
		cum += h.Buckets[b]
		if cum >= rank {
			return min(math.Pow(histGrowth, float64(b)), h.MaxUs)
		}
	}
	return h.MaxUs
}

// maxRetryHint caps a server's hint, as the SDKs do (a bogus server must
// not park its clients for ever).
const maxRetryHint = 60 * time.Second

// retryDelay is how long the SDKs wait before the next attempt after
// `attempt` failed ones (0: the first retry after a connection ended, or
// the start). Without a hint it is exponential backoff with full jitter, a
// uniform draw in [0, min(max, base·2^attempt)]; with one (Retry-After, a
// 1013's retry_after) it is hint + a draw in [0, hint]: never before the
// hint, and a herd that got the same hint does not return in one instant.
// rnd(n) draws in [0, n).
func retryDelay(attempt int, base, maxDelay, hint time.Duration, rnd func(time.Duration) time.Duration) time.Duration {
	if hint = min(hint, maxRetryHint); hint > 0 {
		return hint + rnd(hint+1)
	}
	ceil := base << min(attempt, 16)
	if ceil > maxDelay || ceil <= 0 {
		ceil = maxDelay
	}
	return rnd(ceil + 1)
}

// gatewaySwitchJitter bounds the pause before the next gateway after one
// refused, as the SDKs do (pkg/client switchJitter).
const gatewaySwitchJitter = 100 * time.Millisecond

// podHold is a gateway a client skips after its pod refused (1013, HTTP
// 429/503 instead of the upgrade), as the SDKs do with several URLs
// (pkg/client refusals): until when (unix ns) and for how long (the hint,
// or the backoff delay without one).
type podHold struct {
	until int64
	span  time.Duration
}

// pickGateway is the gateway of n to try at now: the first from turn on
// not held; when every one is, the one free first. holds may be nil (no
// refusal yet).
func pickGateway(holds []podHold, turn, n int, now int64) int {
	best := turn % n
	if holds == nil {
		return best
	}
	for k := range n {
		i := (turn + k) % n
		if holds[i].until <= now {
			return i
		}
		if holds[i].until < holds[best].until {
			best = i
		}
	}
	return best
}

// holdGateway holds gateway i from now for d and returns the wait before
// the next attempt: a draw in [0, gatewaySwitchJitter] while another
// gateway is free; else until the earliest hold ends plus a draw in [0,
// its length], so that a herd refused everywhere does not come back
// together. rnd(n) draws in [0, n).
func holdGateway(holds []podHold, i int, now int64, d time.Duration, rnd func(time.Duration) time.Duration) time.Duration {
	d = min(max(d, 0), maxRetryHint)
	holds[i] = podHold{until: now + int64(d), span: d}
	first := i
	for j, h := range holds {
		if h.until <= now {
			return rnd(gatewaySwitchJitter + 1)
		}
		if h.until < holds[first].until {
			first = j
		}
	}
	return time.Duration(holds[first].until-now) + rnd(holds[first].span+1)
}

// retryAfterToken is the hint a gateway may write into a 1013's reason,
// e.g. "pod at connection limit; retry_after=2": free text for humans, so
// the token is searched for.
var retryAfterToken = regexp.MustCompile(`\bretry_after=(\d+)\b`)

// retryHint reads the retry_after=<seconds> token of a close reason,
// capped at maxRetryHint; ok is false without one.
func retryHint(reason string) (time.Duration, bool) {
	m := retryAfterToken.FindStringSubmatch(reason)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil || n >= uint64(maxRetryHint/time.Second) {
		return maxRetryHint, true // too large for an int is a very long hint
	}
	return time.Duration(n) * time.Second, true
}

// eventSet is the set of a channel's events (numbered 0, 1, 2, … within
// the channel) that a client received: a bitset, so 56,000 clients each
// keep a few words.
type eventSet struct{ w []uint64 }

// add records k and reports whether it is new.
func (s *eventSet) add(k int64) bool {
	if k < 0 {
		return false
	}
	i := int(k / 64)
	for len(s.w) <= i {
		s.w = append(s.w, 0)
	}
	bit := uint64(1) << (k % 64)
	if s.w[i]&bit != 0 {
		return false
	}
	s.w[i] |= bit
	return true
}

func (s *eventSet) has(k int64) bool {
	i := int(k / 64)
	return k >= 0 && i < len(s.w) && s.w[i]&(uint64(1)<<(k%64)) != 0
}

// channelEvents is how many of the first `published` events went to
// channel c: the publisher sends event n to channel n mod channels, so
// channel c's events are c, c+channels, c+2·channels, …
func channelEvents(published int64, channels, c int) int64 {
	if channels <= 0 || published <= int64(c) {
		return 0
	}
	return (published-int64(c)-1)/int64(channels) + 1
}
