package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
)

// MaxRetryAfter caps every retry hint a server gives (Retry-After, a close
// reason's retry_after=): a bogus or hostile server must not park a client
// for ever.
const MaxRetryAfter = 60 * time.Second

// UpgradeError is a gateway's plain HTTP answer instead of the WebSocket
// upgrade (gateway/README.md "Connecting"): 429 when the client's address
// has too many upgrades in flight, 503 while the pod drains or its
// admission is full — both with Retry-After —, 403 for a refused Origin,
// 426, or a proxy's error page. The ticket was not used.
type UpgradeError struct {
	Status int
	// RetryAfter is the response's Retry-After, capped at MaxRetryAfter;
	// 0 without one.
	RetryAfter time.Duration
}

func (e *UpgradeError) Error() string {
	s := fmt.Sprintf("dial gateway: HTTP %d instead of the upgrade", e.Status)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (Retry-After %v)", e.RetryAfter)
	}
	return s
}

// RetryAfter returns the retry hint a server gave with err, 0 when none: the
// Retry-After of ticketsvc's 429/503 (*HTTPError) or of a gateway's 429/503
// instead of the upgrade (*UpgradeError), or the retry_after=<seconds>
// token of a close reason (*CloseError; the gateway's 1013). Always at most
// MaxRetryAfter.
func RetryAfter(err error) time.Duration {
	var (
		he *HTTPError
		ue *UpgradeError
		ce *CloseError
	)
	var d time.Duration
	switch {
	case errors.As(err, &he):
		d = he.RetryAfter
	case errors.As(err, &ue):
		d = ue.RetryAfter
	case errors.As(err, &ce):
		d = ce.RetryAfter
	}
	return capHint(d)
}

// retryAfterToken is the hint a gateway writes into a close reason, e.g.
// "pod at connection limit; retry_after=2". The reason is free text for
// humans, so the token is searched for, not parsed positionally.
var retryAfterToken = regexp.MustCompile(`\bretry_after=(\d+)\b`)

// ReasonRetryAfter returns the hint of a close reason: the seconds of its
// retry_after=<n> token, capped at MaxRetryAfter; 0 when it has none.
func ReasonRetryAfter(reason string) time.Duration {
	m := retryAfterToken.FindStringSubmatch(reason)
	if m == nil {
		return 0
	}
	return secondsHint(m[1])
}

// headerRetryAfter reads an HTTP Retry-After header: delay-seconds (what
// the OCVR servers send) or, as RFC 9110 also allows, an HTTP date; capped
// at MaxRetryAfter, 0 when absent, malformed or past.
func headerRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		return secondsHint(v)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return capHint(t.Sub(now))
}

// secondsHint turns a string of decimal digits into a capped hint; a number
// too large for an int is a very long hint, so the cap.
func secondsHint(digits string) time.Duration {
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return MaxRetryAfter
		}
		return 0
	}
	if n >= uint64(MaxRetryAfter/time.Second) {
		return MaxRetryAfter
	}
	return time.Duration(n) * time.Second
}

// capHint bounds a hint to [0, MaxRetryAfter].
func capHint(d time.Duration) time.Duration {
	return min(max(d, 0), MaxRetryAfter)
}

// backoff is a Session's reconnect delay policy (documented on
// SessionConfig): full jitter, or a server's hint plus jitter.
type backoff struct {
	base, max time.Duration
}

// delay is the wait before retry number attempt (0 for the first retry
// after a connection or the start). With a hint it is hint + random(0,
// hint): never before the hint, and spread over as long again so that a
// herd that got the same hint does not come back in one instant. Without
// one it is random(0, min(max, base·2^attempt)).
func (b backoff) delay(attempt int, hint time.Duration) time.Duration {
	if hint = capHint(hint); hint > 0 {
		return hint + rand.N(hint+1)
	}
	ceil := b.base << min(attempt, 16)
	if ceil > b.max || ceil <= 0 {
		ceil = b.max
	}
	return rand.N(ceil + 1)
}

// Reconnecting is a reconnect a Session scheduled
// (SessionConfig.OnReconnecting), e.g. for an app to show "reconnecting in
// N s".
type Reconnecting struct {
	// Attempt is 1 for the first retry after a connection ended (or the
	// start), then 2, 3, …; a ready resets it.
	Attempt int
	// Delay is the wait before the attempt.
	Delay time.Duration
	// RetryAfter is the server's hint; 0: none, Delay is the plain
	// backoff. With one gateway URL, and after ticketsvc's hints, Delay
	// honours it: it is in [RetryAfter, 2·RetryAfter]. With several, a
	// gateway's hint holds only the URL that refused: Delay is at most
	// 100 ms when another URL is free, and otherwise lasts until the
	// earliest held URL is free again, plus jitter
	// (SessionConfig.BaseBackoff).
	RetryAfter time.Duration
	// Err is why: the failed attempt's error (*HTTPError, *UpgradeError,
	// *CloseError, a network error) or how the connection ended.
	Err error
}

// switchJitter bounds the pause before the next gateway URL after one
// refused: enough that a pod's refused clients do not all land on the next
// one in the same instant, short against any hint.
const switchJitter = 100 * time.Millisecond

// podRefusal reports whether err is a gateway's refusal of this one pod: a
// close 1013 (with or without a hint) or its HTTP 429/503 instead of the
// upgrade. Another pod may have room. ticketsvc's 429/503 are not: they
// speak for the whole service.
func podRefusal(err error) bool {
	var (
		ue *UpgradeError
		ce *CloseError
	)
	switch {
	case errors.As(err, &ue):
		return ue.Status == http.StatusTooManyRequests || ue.Status == http.StatusServiceUnavailable
	case errors.As(err, &ce):
		return ce.Code == protocol.CloseTryAgainLater
	}
	return false
}

// refusals is, per gateway URL of a Session, until when it is taken as
// refusing and for how long it was marked (the hint, or the backoff delay
// without one): a refusal is about one pod, so with several URLs the next
// attempt skips the marked ones instead of waiting out the hint.
type refusals struct {
	until []time.Time
	span  []time.Duration
}

func newRefusals(n int) *refusals {
	return &refusals{until: make([]time.Time, n), span: make([]time.Duration, n)}
}

// pick is the URL to try at now: the first from turn on (round robin) that
// is not marked; when every one is, the one whose mark ends first.
func (r *refusals) pick(turn int, now time.Time) int {
	n := len(r.until)
	best := turn % n
	for k := range n {
		i := (turn + k) % n
		if !r.until[i].After(now) {
			return i
		}
		if r.until[i].Before(r.until[best]) {
			best = i
		}
	}
	return best
}

// refuse marks URL i as refusing from now for d and returns the wait before
// the next attempt: a small jitter when another URL is not marked; else
// until the earliest mark ends plus random(0, its span), so that a herd
// refused everywhere does not come back together.
func (r *refusals) refuse(i int, now time.Time, d time.Duration) time.Duration {
	d = capHint(d)
	r.until[i], r.span[i] = now.Add(d), d
	first := i
	for j, u := range r.until {
		if !u.After(now) {
			return rand.N(switchJitter + 1)
		}
		if u.Before(r.until[first]) {
			first = j
		}
	}
	return r.until[first].Sub(now) + rand.N(r.span[first]+1)
}
