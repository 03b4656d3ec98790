package client

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPodRefusal: a gateway's 1013 (hint or not) and its HTTP 429/503
// instead of the upgrade are about its pod; ticketsvc's answers, other
// closes and other HTTP statuses are not.
func TestPodRefusal(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"1013 at the hard cap", &CloseError{Code: 1013, Reason: "pod at connection limit; retry_after=5", RetryAfter: 5 * time.Second}, true},
		{"1013 without a hint", &CloseError{Code: 1013, Reason: "pod at connection limit"}, true},
		{"gateway 429", &UpgradeError{Status: 429, RetryAfter: time.Second}, true},
		{"gateway 503 (draining)", &UpgradeError{Status: 503, RetryAfter: time.Second}, true},
		{"wrapped 1013", errors.Join(errors.New("attempt"), &CloseError{Code: 1013}), true},
		{"gateway 403", &UpgradeError{Status: 403}, false},
		{"ticketsvc 429", &HTTPError{Status: 429, RetryAfter: time.Second}, false},
		{"ticketsvc 503", &HTTPError{Status: 503, RetryAfter: time.Second}, false},
		{"1006", &CloseError{Code: 1006}, false},
		{"1012 drain", &CloseError{Code: 1012}, false},
		{"a network error", errors.New("connection refused"), false},
		{"nil", nil, false},
	}
	for _, tc := range cases {
		if got := podRefusal(tc.err); got != tc.want {
			t.Errorf("%s: podRefusal = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRefusalsPick: the first URL from the turn on that is not held; when
// all are held, the one free first.
func TestRefusalsPick(t *testing.T) {
	now := time.Unix(1000, 0)
	held := func(d time.Duration) time.Time { return now.Add(d) }
	cases := []struct {
		name  string
		until []time.Time
		turn  int
		want  int
	}{
		{"none held: round robin", []time.Time{{}, {}, {}}, 1, 1},
		{"turn wraps", []time.Time{{}, {}, {}}, 3, 0},
		{"held one skipped", []time.Time{{}, held(time.Second), {}}, 1, 2},
		{"skip wraps", []time.Time{{}, {}, held(time.Second)}, 2, 0},
		{"a mark that ended is free", []time.Time{{}, now, {}}, 1, 1},
		{"all held: the earliest", []time.Time{held(3 * time.Second), held(time.Second), held(2 * time.Second)}, 2, 1},
		{"one url", []time.Time{held(time.Second)}, 5, 0},
	}
	for _, tc := range cases {
		r := &refusals{until: tc.until, span: make([]time.Duration, len(tc.until))}
		if got := r.pick(tc.turn, now); got != tc.want {
			t.Errorf("%s: pick(%d) = %d, want %d", tc.name, tc.turn, got, tc.want)
		}
	}
}

// TestRefusalsRefuse: a refusal holds its URL for the hint; the wait is a
// short jitter while another URL is free, else until the earliest hold
// ends plus up to its length.
func TestRefusalsRefuse(t *testing.T) {
	now := time.Unix(1000, 0)
	cases := []struct {
		name     string
		until    []time.Time
		span     []time.Duration
		refused  int
		hold     time.Duration
		min, max time.Duration
	}{
		{"another free", []time.Time{{}, {}}, []time.Duration{0, 0}, 0, 5 * time.Second, 0, switchJitter},
		{"the other held longer", []time.Time{{}, now.Add(4 * time.Second)}, []time.Duration{0, 4 * time.Second}, 0, time.Second, time.Second, 2 * time.Second},
		{"the other free sooner", []time.Time{{}, now.Add(time.Second)}, []time.Duration{0, 5 * time.Second}, 0, 5 * time.Second, time.Second, 6 * time.Second},
		{"all three held", []time.Time{now.Add(2 * time.Second), {}, now.Add(3 * time.Second)}, []time.Duration{5 * time.Second, 0, 5 * time.Second}, 1, 5 * time.Second, 2 * time.Second, 7 * time.Second},
		{"a hold is capped", []time.Time{{}, now.Add(time.Hour)}, []time.Duration{0, time.Hour}, 0, time.Hour, MaxRetryAfter, 2 * MaxRetryAfter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				r := &refusals{until: append([]time.Time(nil), tc.until...), span: append([]time.Duration(nil), tc.span...)}
				d := r.refuse(tc.refused, now, tc.hold)
				if d < tc.min || d > tc.max {
					t.Fatalf("wait %v outside [%v, %v]", d, tc.min, tc.max)
				}
				if want := now.Add(capHint(tc.hold)); !r.until[tc.refused].Equal(want) {
					t.Fatalf("held until %v, want %v", r.until[tc.refused], want)
				}
			}
		})
	}
}

// TestSessionRefusedPodTriesAnotherURL: two gateway URLs, the first refuses
// every upgrade; after a refusal of its pod the session connects to the
// second at once — well before the hint (5 s) — and the reconnecting event
// still carries the hint. ticketsvc's hint is not a pod's: the session
// waits it out (hint + jitter) even with several gateway URLs.
func TestSessionRefusedPodTriesAnotherURL(t *testing.T) {
	cases := []struct {
		name    string
		refuse  refusal // the first gateway's answer to every upgrade
		tickets refusal // ticketsvc's first answer, nil: a ticket
		hint    time.Duration
		within  time.Duration // ready at most this long after the start
		atLeast time.Duration // and at least this long
	}{
		{name: "1013 at the hard cap, retry_after=5", refuse: closeWith(1013, "pod at connection limit; retry_after=5"), hint: 5 * time.Second, within: 2 * time.Second},
		{name: "1013 busy, retry_after=1", refuse: closeWith(1013, "too many connects in flight; retry_after=1"), hint: time.Second, within: 900 * time.Millisecond},
		{name: "1013 without a hint", refuse: closeWith(1013, "pod at connection limit"), within: 2 * time.Second},
		{name: "gateway HTTP 429 Retry-After 5", refuse: httpStatus(429, "5", ""), hint: 5 * time.Second, within: 2 * time.Second},
		{name: "gateway HTTP 503 Retry-After 5 (draining)", refuse: httpStatus(503, "5", ""), hint: 5 * time.Second, within: 2 * time.Second},
		{name: "ticketsvc 429 Retry-After 1: not a pod's", refuse: serveReady, tickets: httpStatus(429, "1", "RATE_LIMITED"), hint: time.Second, within: 20 * time.Second, atLeast: time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ticketRefusals []refusal
			if tc.tickets != nil {
				ticketRefusals = []refusal{tc.tickets}
			}
			tickets, _ := stubServer(t, serveTicket, ticketRefusals...)
			full, fullLog := stubServer(t, http.HandlerFunc(tc.refuse))
			room, roomLog := stubServer(t, serveReady)
			var (
				mu     sync.Mutex
				events []Reconnecting
			)
			start := time.Now()
			s := NewSession(SessionConfig{TicketURLs: []string{tickets}, WSURLs: []string{wsOf(full), wsOf(room)},
				Token: "sess_x", Options: Options{Heartbeat: -1}, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
				OnReconnecting: func(r Reconnecting) {
					mu.Lock()
					events = append(events, r)
					mu.Unlock()
				}})
			defer s.Close()
			waitReady(t, s)
			took := time.Since(start)
			if took > tc.within || took < tc.atLeast {
				t.Errorf("ready after %v, want within [%v, %v]", took, tc.atLeast, tc.within)
			}

			mu.Lock()
			defer mu.Unlock()
			if len(events) != 1 {
				t.Fatalf("%d reconnects, want 1: %+v", len(events), events)
			}
			ev := events[0]
			if ev.Attempt != 1 || ev.RetryAfter != tc.hint || RetryAfter(ev.Err) != tc.hint {
				t.Errorf("reconnect = %+v (%v), want attempt 1, hint %v", ev, ev.Err, tc.hint)
			}
			if tc.tickets != nil {
				// ticketsvc's hint: waited out, whatever the gateways.
				if ev.Delay < tc.hint || ev.Delay > 2*tc.hint {
					t.Errorf("delay %v, want in [%v, %v]", ev.Delay, tc.hint, 2*tc.hint)
				}
				return
			}
			if ev.Delay > switchJitter {
				t.Errorf("delay %v after the pod's refusal, want at most %v", ev.Delay, switchJitter)
			}
			if n, m := len(fullLog.times()), len(roomLog.times()); n != 1 || m != 1 {
				t.Errorf("%d upgrades on the refusing gateway, %d on the other; want 1 and 1", n, m)
			}
		})
	}
}

// TestSessionWaitsWhenEveryURLRefuses: both gateways refuse once with
// retry_after=1; the session tries the second at once, then, with every
// URL held, waits until the first's hold ends before it tries again.
func TestSessionWaitsWhenEveryURLRefuses(t *testing.T) {
	const hint = time.Second
	refuse := closeWith(1013, "pod at connection limit; retry_after=1")
	a, aLog := stubServer(t, serveReady, refuse)
	b, bLog := stubServer(t, serveReady, refuse)
	var (
		mu     sync.Mutex
		events []Reconnecting
	)
	s := NewSession(SessionConfig{TicketURLs: []string{okTickets(t)}, WSURLs: []string{wsOf(a), wsOf(b)},
		Token: "sess_x", Options: Options{Heartbeat: -1}, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnReconnecting: func(r Reconnecting) {
			mu.Lock()
			events = append(events, r)
			mu.Unlock()
		}})
	defer s.Close()
	waitReady(t, s)

	aAt, bAt := aLog.times(), bLog.times()
	if len(aAt) != 2 || len(bAt) != 1 {
		t.Fatalf("%d upgrades on the first gateway, %d on the second; want 2 (refused, then ready) and 1", len(aAt), len(bAt))
	}
	if gap := bAt[0].Sub(aAt[0]); gap >= hint {
		t.Errorf("the second gateway was tried %v after the first refused, want at once", gap)
	}
	// Lower bound only: the machine may be slow.
	if gap := aAt[1].Sub(aAt[0]); gap < hint {
		t.Errorf("the first gateway was tried again %v after its refusal, before its hint %v", gap, hint)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 {
		t.Fatalf("%d reconnects, want 2: %+v", len(events), events)
	}
	if ev := events[0]; ev.RetryAfter != hint || ev.Delay > switchJitter {
		t.Errorf("first reconnect %+v: want hint %v, delay at most %v", ev, hint, switchJitter)
	}
	// Until the first URL's hold ends (1 s after its refusal, less the
	// time the second attempt took), plus up to the hint.
	if ev := events[1]; ev.RetryAfter != hint || ev.Delay < hint/2 || ev.Delay > 2*hint {
		t.Errorf("second reconnect %+v: want hint %v, delay in [%v, %v]", ev, hint, hint/2, 2*hint)
	}
}

// wsOf is the gateway socket URL of a stub server's http:// URL.
func wsOf(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") + "/v1/ws" }
