package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

// clusterClient is one simulated SDK client. Its fields are its own
// goroutine's, read by result after that goroutine has exited (conn is
// shared with the heartbeats and the final sweep).
type clusterClient struct {
	s    *clusterShard
	u    user
	ch   string
	c    int // channel index
	turn int // next gateway to try
	// holds: the gateways skipped after their pod refused (nil until the
	// first refusal: most clients never get one).
	holds []podHold
	conn  atomic.Pointer[wsConn]

	// Continuity: the newest ready's token and user cursor, the channel
	// cursor (the last position received), whether it has one yet.
	token   string
	userSeq uint64
	chanSeq uint64
	hadSub  bool
	// When each cursor's position was current (unix ns): the user cursor
	// at its ready (no user events here), the channel cursor at its
	// event's publish or its subscribed. A resume needs the stream to hold
	// everything since then: how old it is says whether resumed:false is
	// the continuity window's doing.
	userCursorAt, chanCursorAt int64

	got             eventSet
	maxK            int64
	dups, disorder  int64
	foreign         int64
	connectedAt     int64 // unix ns the current connection was subscribed
	initialUs       float64
	initialFailures int
	disconnects     []clusterDisconnect
	backs           []clusterBack
	gaveUp          bool
}

type clusterDisconnect struct {
	AtNs    int64
	Gateway int
	Code    string
}

type clusterBack struct {
	AtNs         int64
	Gateway      int
	Attempts     int
	ReadyResumed string // true, false or absent (no resume attempted / no field)
	SubResumed   string
	// How old the cursors sent were (ms): the user cursor's and the channel's.
	UserCursorAgeMs, ChanCursorAgeMs float64
}

// attemptResult is one connect attempt: a subscribed connection, or a
// refusal of a kind the SDKs retry (with the server's hint), or a failure.
type attemptResult struct {
	conn                 *wsConn
	gw                   int
	readyRes             string
	subRes               string
	userAgeMs, chanAgeMs float64 // age of the cursors sent, when they were sent
	refusal              string
	hint                 time.Duration
	pod                  bool // the refusal is the gateway's own (1013, HTTP 429/503): another pod may have room
	err                  error
	giveUp               bool // 401 from ticketsvc, 4001 or 4003: the SDKs stop
}

// Refusal kinds: what the cluster is expected to answer under the storm
// (a 1013 is its own kind per reason: refusal1013). Anything else is a
// failure.
const (
	refusedGateway429 = "gateway HTTP 429"
	refusedGateway503 = "gateway HTTP 503"
	refusedTicket429  = "ticketsvc 429"
	refusedTicket503  = "ticketsvc 503"
	refusedDown       = "connection refused (pod down)"
)

// refusal1013 is a 1013's refusal kind — its reason, which says why (hard
// cap, connects in flight, not ready, store failure) — and its retry hint.
func refusal1013(reason string) (string, time.Duration) {
	hint, ok := retryHint(reason)
	if !ok {
		return "1013 " + strconv.Quote(reason) + " (no retry_after)", 0
	}
	if len(reason) > 80 {
		reason = reason[:80]
	}
	return "1013 " + strconv.Quote(reason), hint
}

func (c *clusterClient) run(ctx context.Context, sem chan struct{}) {
	s := c.s
	attempt, attemptsDown := 0, 0
	initial := true
	var t0 time.Time // the first attempt's start, after the wait for a slot
	for ctx.Err() == nil {
		if initial {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if t0.IsZero() {
				t0 = time.Now()
			}
		}
		r := c.attempt(ctx)
		if initial {
			<-sem
		}
		if r.conn == nil {
			if ctx.Err() != nil {
				return // the run ended mid-attempt: not a refusal
			}
			attemptsDown++
			switch {
			case r.refusal != "" && initial:
				s.noteRefusal("first connect: " + r.refusal) // not the wave's
			case r.refusal != "":
				s.noteRefusal(r.refusal)
			default:
				s.noteFailure(r.err)
				if initial {
					c.initialFailures++
				}
			}
			if r.giveUp {
				c.gaveUp = true
				return
			}
			d := retryDelay(attempt, s.base, s.max, r.hint, rand.N[time.Duration])
			if r.pod && len(s.gateways) > 1 {
				// As the SDKs: hold that pod's URL for the hint and try
				// another now; wait only when every one is held.
				hold := r.hint
				if hold <= 0 {
					hold = retryDelay(attempt, s.base, s.max, 0, rand.N[time.Duration])
				}
				if c.holds == nil {
					c.holds = make([]podHold, len(s.gateways))
				}
				d = holdGateway(c.holds, r.gw, time.Now().UnixNano(), hold, rand.N[time.Duration])
			}
			attempt++
			if !delay(ctx, d) {
				return
			}
			continue
		}
		if !c.connected(ctx, r, initial, t0, attemptsDown) {
			return
		}
		initial = false
		attempt, attemptsDown = 1, 0
		// The SDKs wait before the first reconnect too (attempt 0).
		if !delay(ctx, retryDelay(0, s.base, s.max, 0, rand.N[time.Duration])) {
			return
		}
	}
}

// connected holds the connection attempt r made until it closes, keeping
// the run's accounting: the connect, a way back (not on the first
// connection), the disconnect. t0 is the first attempt's start, for the
// first connect's latency (zero: not timed). It reports whether the run
// goes on.
func (c *clusterClient) connected(ctx context.Context, r attemptResult, first bool, t0 time.Time, attemptsDown int) bool {
	s := c.s
	now := time.Now()
	c.conn.Store(r.conn)
	if s.ending.Load() {
		r.conn.closeNow()
		return false
	}
	s.noteConnect(now)
	switch {
	case first && t0.IsZero():
		c.initialUs = 1
	case first:
		c.initialUs = float64(now.Sub(t0).Microseconds())
	default:
		c.backs = append(c.backs, clusterBack{AtNs: now.UnixNano(), Gateway: r.gw, Attempts: attemptsDown, ReadyResumed: r.readyRes, SubResumed: r.subRes, UserCursorAgeMs: r.userAgeMs, ChanCursorAgeMs: r.chanAgeMs})
		s.down.Add(-1)
		s.backed.Add(1)
	}
	s.up.Add(1)
	c.connectedAt = now.UnixNano()
	code := c.serve(r.conn)
	c.conn.Store(nil)
	r.conn.closeNow()
	if s.ending.Load() || ctx.Err() != nil {
		return false
	}
	if len(c.disconnects) == 0 {
		s.disc.Add(1)
	}
	c.disconnects = append(c.disconnects, clusterDisconnect{AtNs: time.Now().UnixNano(), Gateway: r.gw, Code: code})
	s.up.Add(-1)
	s.down.Add(1)
	return true
}

// attempt is one connect as the SDKs make it: a ticket from ticketsvc, the
// upgrade to the next gateway in turn (with the resume token and user
// cursor after a first connection), ready, then subscribe (with the
// channel cursor) until subscribed.
func (c *clusterClient) attempt(ctx context.Context) attemptResult {
	s := c.s
	r := attemptResult{gw: pickGateway(c.holds, c.turn, len(s.gateways), time.Now().UnixNano())}
	c.turn = r.gw + 1
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tk, err := client.GetTicket(actx, s.hc, s.ticketURL, c.u.token)
	if err != nil {
		var he *client.HTTPError
		switch {
		case errors.As(err, &he) && he.Status == http.StatusTooManyRequests:
			r.refusal, r.hint = refusedTicket429, he.RetryAfter
		case errors.As(err, &he) && he.Status == http.StatusServiceUnavailable:
			r.refusal, r.hint = refusedTicket503, he.RetryAfter
		case errors.As(err, &he) && he.Status == http.StatusUnauthorized:
			r.err, r.giveUp = err, true
		default:
			r.err = err
		}
		return r
	}
	q := map[string][]string{"ticket": {tk}}
	if s.resume && c.token != "" {
		q["resume"] = []string{c.token}
		q["seq"] = []string{strconv.FormatUint(c.userSeq, 10)}
	}
	conn, err := wsDial(actx, s.gateways[r.gw], q, s.srcAddr())
	if err != nil {
		var ur *upgradeRefused
		switch {
		case errors.As(err, &ur) && ur.Status == http.StatusTooManyRequests:
			r.refusal, r.hint, r.pod = refusedGateway429, ur.RetryAfter, true
		case errors.As(err, &ur) && ur.Status == http.StatusServiceUnavailable:
			r.refusal, r.hint, r.pod = refusedGateway503, ur.RetryAfter, true
		case errors.Is(err, syscall.ECONNREFUSED):
			r.refusal = refusedDown
		default:
			r.err = fmt.Errorf("gw%d: %w", r.gw+1, err)
		}
		return r
	}
	ok := false
	defer func() {
		if !ok {
			conn.closeNow()
		}
	}()
	if dl, has := actx.Deadline(); has {
		_ = conn.nc.SetReadDeadline(dl)
	}
	// ready, or the close that refuses the socket.
	for {
		f, err := conn.readText()
		if err != nil {
			var ce *client.CloseError
			if errors.As(err, &ce) {
				switch {
				case ce.Code == protocol.CloseTryAgainLater:
					r.refusal, r.hint = refusal1013(ce.Reason)
					r.pod = true
				case ce.Code == protocol.CloseInvalidTicket || ce.Code == protocol.CloseSessionRevoked:
					r.err, r.giveUp = fmt.Errorf("gw%d: %w", r.gw+1, err), true
				default:
					r.err = fmt.Errorf("gw%d: before ready: %w", r.gw+1, err)
				}
				return r
			}
			r.err = fmt.Errorf("gw%d: before ready: %w", r.gw+1, err)
			return r
		}
		if hasPrefix(f, `{"type":"ready"`) {
			var ri readyInfo
			if err := json.Unmarshal(f, &ri); err != nil {
				r.err = fmt.Errorf("gw%d: ready: %w", r.gw+1, err)
				return r
			}
			r.readyRes = resumedString(ri.Data.Resumed)
			now := time.Now().UnixNano()
			if c.userCursorAt != 0 {
				r.userAgeMs = float64(now-c.userCursorAt) / 1e6
			}
			c.token, c.userSeq, c.userCursorAt = ri.Data.ResumeToken, ri.Data.Seq, now
			break
		}
		if hasPrefix(f, `{"type":"error"`) {
			r.err = fmt.Errorf("gw%d: before ready: %.160s", r.gw+1, f)
			return r
		}
	}
	var cursor *uint64
	if s.resume && c.hadSub {
		cur := c.chanSeq
		cursor = &cur
	}
	if err := conn.writeText(subscribeFrame(c.ch, cursor)); err != nil {
		r.err = fmt.Errorf("gw%d: subscribe: %w", r.gw+1, err)
		return r
	}
	for {
		f, err := conn.readText()
		if err != nil {
			r.err = fmt.Errorf("gw%d: waiting for subscribed: %w", r.gw+1, err)
			return r
		}
		switch {
		case hasPrefix(f, `{"type":"subscribed"`):
			var si readyInfo
			if err := json.Unmarshal(f, &si); err != nil {
				r.err = fmt.Errorf("gw%d: subscribed: %w", r.gw+1, err)
				return r
			}
			r.subRes = resumedString(si.Data.Resumed)
			now := time.Now().UnixNano()
			if c.chanCursorAt != 0 {
				r.chanAgeMs = float64(now-c.chanCursorAt) / 1e6
			}
			c.chanSeq, c.hadSub, c.chanCursorAt = si.Data.Seq, true, now
			_ = conn.nc.SetReadDeadline(time.Time{})
			ok = true
			r.conn = conn
			return r
		case hasPrefix(f, `{"type":"error"`):
			r.err = fmt.Errorf("gw%d: subscribe: %.160s", r.gw+1, f)
			return r
		case hasPrefix(f, `{"type":"message_create"`):
			c.onEvent(f, time.Now().UnixNano())
		}
	}
}

// serve reads until the connection ends and says how it ended.
func (c *clusterClient) serve(conn *wsConn) string {
	for {
		f, err := conn.readText()
		if err != nil {
			var ce *client.CloseError
			if errors.As(err, &ce) {
				return strconv.Itoa(ce.Code)
			}
			return "1006"
		}
		if hasPrefix(f, `{"type":"message_create"`) {
			c.onEvent(f, time.Now().UnixNano())
		}
	}
}

// Event phases, set by the script through the publisher's phase file and
// carried in each event's id.
var clusterPhases = []string{"before the kill", "wave", "after recovery"}

func phaseName(p int) string {
	if p >= 0 && p < len(clusterPhases) {
		return clusterPhases[p]
	}
	return "phase " + strconv.Itoa(p)
}

// Latency cohorts: a client that was never disconnected, and one that
// was, live or catching up (the event was published before its current
// connection was back: replayed from the stream, its latency is the time
// it was away).
const (
	cohortUndisturbed = "never disconnected"
	cohortLive        = "reconnected, live"
	cohortReplayed    = "reconnected, replayed"
)

func (c *clusterClient) onEvent(f []byte, now int64) {
	phase, n, ts, ok := parseEventID(f)
	if !ok {
		return
	}
	if seq := frameSeq(f); seq > c.chanSeq {
		c.chanSeq, c.chanCursorAt = seq, ts
	}
	if int(n%int64(c.s.channels)) != c.c {
		c.foreign++
		return
	}
	k := n / int64(c.s.channels)
	if !c.got.add(k) {
		c.dups++
		return
	}
	if k < c.maxK {
		c.disorder++
	}
	c.maxK = max(c.maxK, k)
	cohort := cohortUndisturbed
	switch {
	case len(c.disconnects) > 0 && ts < c.connectedAt:
		cohort = cohortReplayed
	case len(c.disconnects) > 0:
		cohort = cohortLive
	}
	c.s.noteLatency(phaseName(phase)+" | "+cohort, float64(now-ts)/1e3)
}
