package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestReasonRetryAfter: the hint of a close reason is its
// retry_after=<integer seconds> token, wherever it stands; anything else is
// no hint (normal backoff), and a huge one is capped.
func TestReasonRetryAfter(t *testing.T) {
	cases := []struct {
		reason string
		want   time.Duration
	}{
		{"pod at connection limit; retry_after=2", 2 * time.Second},
		{"retry_after=1", time.Second},
		{"not ready; retry_after=5; bus unavailable", 5 * time.Second},
		{"retry_after=7 pod at connection limit", 7 * time.Second},
		{"retry_after=0", 0},
		{"retry_after=60", time.Minute},
		{"retry_after=61", MaxRetryAfter},
		{"retry_after=99999999999999999999999", MaxRetryAfter},
		{"retry_after=2.5", 2 * time.Second}, // the integer part: "." ends the token
		{"pod at connection limit", 0},       // the gateway before the hint
		{"", 0},
		{"retry_after=", 0},
		{"retry_after=-3", 0},
		{"retry_after=2s", 0},   // not integer seconds
		{"retry_after=abc", 0},  // not a number
		{"xretry_after=4", 0},   // another token
		{"my_retry_after=4", 0}, // another token
		{"Retry_After=4", 0},    // the token is lower case
		{"retry-after=4", 0},    // the HTTP header's spelling is not the token
		{"a;retry_after=3;b", 3 * time.Second},
	}
	for _, tc := range cases {
		if got := ReasonRetryAfter(tc.reason); got != tc.want {
			t.Errorf("ReasonRetryAfter(%q) = %v, want %v", tc.reason, got, tc.want)
		}
	}
}

// TestHeaderRetryAfter: Retry-After in seconds (what the OCVR servers
// send) or as an HTTP date, capped; malformed or past is no hint.
func TestHeaderRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
	}{
		{"1", time.Second},
		{" 3 ", 3 * time.Second},
		{"0", 0},
		{"120", MaxRetryAfter},
		{"99999999999999999999999", MaxRetryAfter},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"", 0},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{now.Add(time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.value != "" {
			h.Set("Retry-After", tc.value)
		}
		if got := headerRetryAfter(h, now); got != tc.want {
			t.Errorf("Retry-After %q = %v, want %v", tc.value, got, tc.want)
		}
	}
}

// TestBackoffDelay: without a hint, retry n waits within [0, min(max,
// base·2^n)] and spread over it (full jitter); with a hint, within [hint,
// 2·hint] and spread over it, whatever n is; a hint over MaxRetryAfter is
// capped.
func TestBackoffDelay(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: 2 * time.Second}
	cases := []struct {
		name     string
		attempt  int
		hint     time.Duration
		min, max time.Duration
	}{
		{"first retry", 0, 0, 0, 100 * time.Millisecond},
		{"second retry", 1, 0, 0, 200 * time.Millisecond},
		{"fourth retry", 3, 0, 0, 800 * time.Millisecond},
		{"capped at max", 5, 0, 0, 2 * time.Second},
		{"far past any shift", 1000, 0, 0, 2 * time.Second},
		{"hint on the first retry", 0, time.Second, time.Second, 2 * time.Second},
		{"hint above the backoff's max", 9, 5 * time.Second, 5 * time.Second, 10 * time.Second},
		{"hint below the backoff's ceiling", 9, 100 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond},
		{"bogus hint capped", 0, time.Hour, MaxRetryAfter, 2 * MaxRetryAfter},
		{"negative hint is none", 0, -time.Second, 0, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lowHalf, highHalf := 0, 0
			mid := tc.min + (tc.max-tc.min)/2
			for range 400 {
				d := b.delay(tc.attempt, tc.hint)
				if d < tc.min || d > tc.max {
					t.Fatalf("delay %v outside [%v, %v]", d, tc.min, tc.max)
				}
				if d < mid {
					lowHalf++
				} else {
					highHalf++
				}
			}
			// Jitter: both halves of the range are used (each has
			// probability 1/2 per draw; 400 draws all in one half do not
			// happen).
			if lowHalf == 0 || highHalf == 0 {
				t.Errorf("not spread over [%v, %v]: %d below %v, %d above", tc.min, tc.max, lowHalf, mid, highHalf)
			}
		})
	}
}

// TestRetryAfterOfErrors: RetryAfter finds the hint of each kind of
// refusal, wrapped or not.
func TestRetryAfterOfErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want time.Duration
	}{
		{"ticketsvc 429", &HTTPError{Status: 429, Code: "RATE_LIMITED", RetryAfter: 3 * time.Second}, 3 * time.Second},
		{"gateway 503", &UpgradeError{Status: 503, RetryAfter: time.Second}, time.Second},
		{"close 1013 with a hint", &CloseError{Code: 1013, Reason: "x; retry_after=2", RetryAfter: 2 * time.Second}, 2 * time.Second},
		{"close 1013 without", &CloseError{Code: 1013, Reason: "pod at connection limit"}, 0},
		{"wrapped", errors.Join(errors.New("attempt"), &UpgradeError{Status: 429, RetryAfter: 4 * time.Second}), 4 * time.Second},
		{"over the cap", &HTTPError{Status: 503, RetryAfter: time.Hour}, MaxRetryAfter},
		{"a network error", errors.New("connection refused"), 0},
		{"nil", nil, 0},
	}
	for _, tc := range cases {
		if got := RetryAfter(tc.err); got != tc.want {
			t.Errorf("%s: RetryAfter = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// attemptLog records when each request reached a stub server.
type attemptLog struct {
	mu sync.Mutex
	at []time.Time
}

func (l *attemptLog) add() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at = append(l.at, time.Now())
	return len(l.at)
}

func (l *attemptLog) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.at...)
}

// refusal is how a stub server refuses one attempt.
type refusal func(w http.ResponseWriter, r *http.Request)

// closeWith completes the upgrade and closes at once with code and
// reason, as the gateway refuses an admission (1013).
func closeWith(code websocket.StatusCode, reason string) refusal {
	return func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		_ = ws.Close(code, reason)
	}
}

// httpStatus answers status with Retry-After: the gateway's refusals
// before the upgrade, and ticketsvc's.
func httpStatus(status int, retryAfter, code string) refusal {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":{"code":"` + code + `","message":"refused by the test"}}`))
	}
}

// stubServer refuses its first requests with refusals, in order, then
// serves: a ticket (ticketsvc) or a socket that sends ready (gateway).
func stubServer(t *testing.T, serve http.HandlerFunc, refusals ...refusal) (string, *attemptLog) {
	t.Helper()
	log := &attemptLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := log.add(); n <= len(refusals) {
			refusals[n-1](w, r)
			return
		}
		serve(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, log
}

func serveTicket(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte(`{"data":{"ticket":"wst_abcdefghijklmnopqrstuvwxyz012345","expires_in":30}}`))
}

func serveReady(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	if ws.Write(r.Context(), websocket.MessageText, []byte(readyFrame("", 0, nil))) != nil {
		return
	}
	_, _, _ = ws.Read(r.Context()) // until the client goes
}

// TestSessionHonoursRetryHints: for each refusal that carries a hint —
// the gateway's 1013 with retry_after= in its reason, its HTTP 429 and 503
// before the upgrade, ticketsvc's 429 and 503 — the session's next attempt
// comes no earlier than the hint, the reconnecting event says so (delay,
// hint, the typed error), and the attempt after it keeps counting (a hint
// does not reset the backoff) while it waits only the plain backoff.
func TestSessionHonoursRetryHints(t *testing.T) {
	const hint = time.Second
	cases := []struct {
		name    string
		gateway bool // the refusal is the gateway's (else ticketsvc's)
		refuse  refusal
		check   func(err error) bool
	}{
		{"gateway close 1013 retry_after", true, closeWith(1013, "pod at connection limit; retry_after=1"), func(err error) bool {
			var ce *CloseError
			return errors.As(err, &ce) && ce.Code == 1013 && ce.RetryAfter == hint
		}},
		{"gateway HTTP 429 Retry-After", true, httpStatus(429, "1", ""), func(err error) bool {
			var ue *UpgradeError
			return errors.As(err, &ue) && ue.Status == 429 && ue.RetryAfter == hint
		}},
		{"gateway HTTP 503 Retry-After (draining)", true, httpStatus(503, "1", ""), func(err error) bool {
			var ue *UpgradeError
			return errors.As(err, &ue) && ue.Status == 503 && ue.RetryAfter == hint
		}},
		{"ticketsvc 429 RATE_LIMITED", false, httpStatus(429, "1", "RATE_LIMITED"), func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.Status == 429 && he.Code == "RATE_LIMITED" && he.RetryAfter == hint
		}},
		{"ticketsvc 503 UNAVAILABLE", false, httpStatus(503, "1", "UNAVAILABLE"), func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.Status == 503 && he.Code == "UNAVAILABLE" && he.RetryAfter == hint
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The hinted refusal, then one without a hint (plain backoff),
			// then success.
			plain := closeWith(1013, "pod at connection limit")
			ticketRefusals, gwRefusals := []refusal{tc.refuse}, []refusal{plain}
			if tc.gateway {
				ticketRefusals, gwRefusals = nil, []refusal{tc.refuse, plain}
			}
			tickets, ticketLog := stubServer(t, serveTicket, ticketRefusals...)
			gw, gwLog := stubServer(t, serveReady, gwRefusals...)
			hinted := ticketLog
			if tc.gateway {
				hinted = gwLog
			}
			var (
				mu     sync.Mutex
				events []Reconnecting
			)
			const base = 20 * time.Millisecond
			s := NewSession(SessionConfig{TicketURLs: []string{tickets}, WSURLs: []string{"ws" + strings.TrimPrefix(gw, "http") + "/v1/ws"},
				Token: "sess_x", Options: Options{Heartbeat: -1}, BaseBackoff: base, MaxBackoff: 10 * base,
				OnReconnecting: func(r Reconnecting) {
					mu.Lock()
					events = append(events, r)
					mu.Unlock()
				}})
			defer s.Close()
			waitReady(t, s)

			mu.Lock()
			defer mu.Unlock()
			if len(events) != 2 {
				t.Fatalf("%d reconnects, want 2: %+v", len(events), events)
			}
			first, second := events[0], events[1]
			if first.Attempt != 1 || first.RetryAfter != hint || first.Delay < hint || first.Delay > 2*hint || !tc.check(first.Err) {
				t.Errorf("first reconnect = %+v (%v), want attempt 1, hint %v, delay in [%v, %v], the typed refusal", first, first.Err, hint, hint, 2*hint)
			}
			// The count went on through the hint: retry 2 may wait up to
			// base·2¹.
			if second.Attempt != 2 || second.RetryAfter != 0 || second.Delay > 2*base {
				t.Errorf("second reconnect = %+v (%v), want attempt 2, no hint, delay at most %v", second, second.Err, 2*base)
			}
			// On the wire: the attempt after the hinted refusal came no
			// earlier than the hint (a lower bound only: the machine may
			// be slow).
			at := hinted.times()
			if len(at) < 2 {
				t.Fatalf("%d requests to the refusing server, want at least 2", len(at))
			}
			if gap := at[1].Sub(at[0]); gap < hint {
				t.Errorf("the attempt after the hinted refusal came %v after it, before the hint %v", gap, hint)
			}
			if s.Connects() != 1 {
				t.Errorf("%d connections, want 1", s.Connects())
			}
		})
	}
}

// TestSessionWithoutHintBacksOffAlone: a 1013 whose reason has no
// retry_after (the gateway before the hint) is retried with the plain
// backoff: quick and jittered, no wait of a hint's length.
func TestSessionWithoutHintBacksOffAlone(t *testing.T) {
	const base = 20 * time.Millisecond
	plain := closeWith(1013, "pod at connection limit")
	gw, _ := stubServer(t, serveReady, plain, plain, plain)
	var n atomic.Int32
	var bad atomic.Value
	s := NewSession(SessionConfig{TicketURLs: []string{okTickets(t)}, WSURLs: []string{"ws" + strings.TrimPrefix(gw, "http") + "/v1/ws"},
		Token: "sess_x", Options: Options{Heartbeat: -1}, BaseBackoff: base, MaxBackoff: 10 * base,
		OnReconnecting: func(r Reconnecting) {
			i := n.Add(1)
			ceil := min(10*base, base<<(i-1))
			var ce *CloseError
			if r.Attempt != int(i) || r.RetryAfter != 0 || r.Delay > ceil || !errors.As(r.Err, &ce) || ce.Code != 1013 {
				bad.Store(r)
			}
		}})
	defer s.Close()
	waitReady(t, s)
	if got := n.Load(); got != 3 {
		t.Errorf("%d reconnects, want 3", got)
	}
	if r := bad.Load(); r != nil {
		t.Errorf("reconnect %+v: want attempt n, no hint, delay within the full-jitter ceiling, the 1013", r)
	}
}

// waitReady waits for the session's first ready.
func waitReady(t *testing.T, s *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		select {
		case f, ok := <-s.Frames():
			if !ok {
				t.Fatalf("the session ended: %v", s.Err())
			}
			if f.Type == "ready" {
				return
			}
		case <-ctx.Done():
			t.Fatal("no ready within 20 s")
		}
	}
}
