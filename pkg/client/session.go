package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
)

// SessionConfig configures a reconnecting Session.
type SessionConfig struct {
	// TicketURLs are ticketsvc base URLs and WSURLs gateway socket URLs;
	// each attempt picks the next of each (round robin), as a load
	// balancer would, skipping gateway URLs that refused recently (see
	// BaseBackoff).
	TicketURLs []string
	WSURLs     []string
	// Token is the bearer session token sess_…; or TokenFunc, if set,
	// returns it before every ticket request (e.g. from the app's auth
	// state, refreshed when it expires). An error of TokenFunc fails that
	// attempt like a failed ticket request (retried with backoff; Close
	// the session to give up). After a 401 from ticketsvc a session with a
	// TokenFunc asks it again at once, and ends only when the token it
	// then returns is refused too.
	Token     string
	TokenFunc func(ctx context.Context) (string, error)
	Options   Options

	// SubscribeTimeout bounds how long Subscribe waits for the server's
	// answer (default 5 s; negative: only the caller's context). The
	// channel stays in the session after a timeout: it is subscribed when
	// the server answers or on the next connection, unless Unsubscribe.
	SubscribeTimeout time.Duration

	// Backoff: retry n (0 for the first after a connection ended, or the
	// start) waits a uniformly random time in [0, min(MaxBackoff,
	// BaseBackoff·2^n)] (full jitter: a pod's clients spread out instead of
	// coming back together). Defaults 250ms and 30s. The count resets
	// after every ready, so a drain's (1012) first retry is quick, and
	// still jittered.
	//
	// A retry hint of the server replaces that delay with hint +
	// random(0, hint): never before the hint, spread over as long again so
	// that the clients that got the same hint do not return in one
	// instant. Hints are ticketsvc's Retry-After (429, 503), the gateway's
	// Retry-After instead of the upgrade (429, 503) and the
	// retry_after=<seconds> of a close reason (1013), each capped at
	// MaxRetryAfter (60 s). A hint does not reset the count: the retries
	// after it keep growing.
	//
	// With several WSURLs, a gateway's own refusal (close 1013, with or
	// without a hint; HTTP 429/503 instead of the upgrade) is about that
	// pod only: its URL is skipped until now + the hint (or the plain
	// backoff delay without one), and the next attempt goes after at most
	// 100 ms to the next URL not skipped. Only when every URL is skipped
	// does the session wait: until the earliest skip ends, plus random(0,
	// that skip's length). ticketsvc's refusals and other failures (a lost
	// connection, a timeout) keep the rule above; so does a session with
	// one URL.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// OnReconnecting, if set, is told of every reconnect the session
	// schedules (its delay, the server's hint, why) before it waits. It is
	// called on the session's goroutine: it must return quickly.
	OnReconnecting func(Reconnecting)
	// MaxInvalidTickets ends the session after this many 4001 closes in a
	// row (default protocol.MaxInvalidTickets, 3): a fresh ticket that
	// keeps failing means the session is gone, and looping would only
	// hammer the cluster.
	MaxInvalidTickets int

	// Resume starts the session from a saved State (e.g. one an app kept
	// across a restart): its first connection asks to resume with the
	// token and cursors, and its channels are subscribed from their
	// cursors. Its ready and subscribed frames then say Reconnect, and
	// whether they resumed. Nil: a fresh session.
	Resume *ResumeState
}

// ResumeState is what a Session resumes from (gateway/README.md
// "Continuity"): the resume token of its newest ready, bound to the user
// and session, and the cursor of each subscription.
type ResumeState struct {
	Token    string            // "": the gateway offered no continuity
	Seq      uint64            // the user's own events
	Channels map[string]uint64 // each subscribed channel
}

// Continuity is what a Session says, in band, about a subscription across
// a reconnect. It is set on the ready frame of every connection (the
// user's own events: ChannelID "") and on every subscribed frame of the
// session's channels (Frame.Continuity).
type Continuity struct {
	ChannelID string // "" on ready
	// Reconnect: the subscription continues from an earlier connection (on
	// ready: any connection but the session's first, or its first when
	// started from SessionConfig.Resume; on subscribed: a channel that was
	// subscribed before and that the session resubscribed on its own).
	// Events published in between may have been missed, unless Resumed.
	Reconnect bool
	// Resumed: the gateway confirmed that every event published since the
	// cursor follows, exactly once and in order, before the live ones.
	Resumed bool
	// Seq is the subscription's cursor from here on.
	Seq uint64
}

// Lost reports whether events of the subscription may have been missed
// across a reconnect (Reconnect without Resumed): the gateway asked the
// app to refetch that channel's (or, on ready, the user's) state from its
// backend; the events that follow the frame come after that state.
func (c Continuity) Lost() bool { return c.Reconnect && !c.Resumed }

// Session is a connection that survives server restarts: it reconnects
// with a new ticket and exponential backoff with full jitter, honouring the
// servers' retry hints (SessionConfig.BaseBackoff), and resubscribes its
// channels after each reconnect. It follows the close-code policy of
// protocol.CloseActionOf, as the TypeScript client does: it stops for good
// after 1000 from the server, 4003 (session revoked), 4010 (too many
// connections for the user), protocol.MaxInvalidTickets 4001 closes in a
// row, or 401 from ticketsvc; it reconnects after any other code.
//
// Channels: Subscribe waits for the server's answer (Subscription for
// each channel's state). A channel the server refuses (NOT_MEMBER,
// CHANNEL_NOT_FOUND, …), or ends (unsubscribed removed/deleted), leaves
// the session: it is not resubscribed after a reconnect.
//
// It resumes without loss where the gateway offers continuity: every
// reconnect presents the newest resume token and the user's cursor, and
// resubscribes each channel from its cursor; positioned events at or below
// their subscription's cursor are duplicates and are dropped (Duplicates
// counts them). The ready and subscribed frames carry a *Continuity that
// says whether the missed events follow (Resumed) or must be refetched
// (Lost).
type Session struct {
	cfg    SessionConfig
	frames chan Frame
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	conn     *Conn
	subs     map[string]*channel // every channel Subscribe added, refused ones too
	err      error
	connects int

	// Continuity: the newest resume token; one cursor per subscription
	// ("" is the user's own events); the channels acknowledged with
	// subscribed (or restored from cfg.Resume), whose resubscription
	// continues them; whether the next connection continues an earlier one.
	token      string
	cursors    map[string]uint64
	joined     map[string]bool
	continued  bool
	duplicates uint64
}

// ErrStopped is the Session's Err after Close, or wraps the cause when
// the context given to StartSession ends.
var ErrStopped = errors.New("session closed")

// StartSession checks cfg and starts a session: it connects at once, and
// frames of every connection it makes arrive on Frames (each connection
// starts with a ready frame). The session lives until Close, until ctx
// ends, or until the server ends it (Err says why). An invalid cfg (no
// URLs, no token) is an error and starts nothing.
func StartSession(ctx context.Context, cfg SessionConfig) (*Session, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxInvalidTickets <= 0 {
		cfg.MaxInvalidTickets = protocol.MaxInvalidTickets
	}
	if cfg.SubscribeTimeout == 0 {
		cfg.SubscribeTimeout = DefaultSubscribeTimeout
	}
	s := newSession(cfg)
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	if r := cfg.Resume; r != nil {
		s.continued = true
		s.token = r.Token
		s.cursors[""] = r.Seq
		for ch, seq := range r.Channels {
			if protocol.ValidChannelID(ch) {
				s.subs[ch] = &channel{state: Subscribing}
				s.cursors[ch] = seq
				s.joined[ch] = true
			}
		}
	}
	go s.run()
	return s, nil
}

// NewSession is StartSession without a context; an invalid cfg gives a
// session that has already ended, with the error as its Err.
//
// Deprecated: use StartSession, which reports an invalid cfg and ties the
// session to a context.
func NewSession(cfg SessionConfig) *Session {
	s, err := StartSession(context.Background(), cfg)
	if err != nil {
		s = newSession(cfg)
		s.ctx, s.cancel = context.WithCancelCause(context.Background())
		s.err = err
		close(s.frames)
		close(s.done)
	}
	return s
}

// DefaultSubscribeTimeout is SessionConfig.SubscribeTimeout's default.
const DefaultSubscribeTimeout = 5 * time.Second

// check reports what makes cfg unusable.
func (cfg *SessionConfig) check() error {
	switch {
	case len(cfg.TicketURLs) == 0:
		return errors.New("client: SessionConfig.TicketURLs is empty")
	case len(cfg.WSURLs) == 0:
		return errors.New("client: SessionConfig.WSURLs is empty")
	case cfg.Token == "" && cfg.TokenFunc == nil:
		return errors.New("client: SessionConfig needs a Token or a TokenFunc")
	}
	for _, u := range append(append([]string(nil), cfg.TicketURLs...), cfg.WSURLs...) {
		if u == "" {
			return errors.New("client: SessionConfig has an empty URL")
		}
	}
	return nil
}

func newSession(cfg SessionConfig) *Session {
	buf := cfg.Options.Buffer
	if buf <= 0 {
		buf = 1024
	}
	return &Session{cfg: cfg, frames: make(chan Frame, buf), done: make(chan struct{}),
		subs: map[string]*channel{}, cursors: map[string]uint64{}, joined: map[string]bool{}}
}

// Frames delivers every frame received; it is closed when the session ends.
func (s *Session) Frames() <-chan Frame { return s.frames }

// Done is closed when the session has ended for good.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (nil while it runs): a *CloseError for 4003
// or repeated 4001, an *HTTPError for 401, ErrStopped after Close.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Connects counts the connections made so far (1 + reconnects).
func (s *Session) Connects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connects
}

// Duplicates counts the positioned events dropped as duplicates: at or
// below their subscription's cursor.
func (s *Session) Duplicates() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.duplicates
}

// State is what the session would resume from now: the positions of the
// frames it has handed to Frames. Keep it to start a later session from it
// (SessionConfig.Resume) within the continuity window — taken after Close,
// once the app has drained Frames, it covers exactly what the app
// received. Its channels are those acknowledged with subscribed.
func (s *Session) State() ResumeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ResumeState{Token: s.token, Seq: s.cursors[""], Channels: map[string]uint64{}}
	for ch, sub := range s.subs {
		if seq, ok := s.cursors[ch]; ok && s.joined[ch] && sub.state != Unsubscribed {
			st.Channels[ch] = seq
		}
	}
	return st
}

// Conn is the current connection, or nil between connections.
func (s *Session) Conn() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Close ends the session and its connection (1000).
func (s *Session) Close() {
	s.cancel(errClosed)
	<-s.done
}

func (s *Session) finish(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *Session) run() {
	defer close(s.done)
	defer close(s.frames)
	defer s.cancel(nil)
	attempt, invalid, unauthorized, ticketTurn, turn := 0, 0, 0, 0, 0
	marks := newRefusals(len(s.cfg.WSURLs))
	for {
		if s.ctx.Err() != nil {
			s.finish(s.stopped())
			return
		}
		ticketURL := s.cfg.TicketURLs[ticketTurn%len(s.cfg.TicketURLs)]
		ticketTurn++
		gw := marks.pick(turn, time.Now())
		wsURL := s.cfg.WSURLs[gw]
		turn = gw + 1
		s.mu.Lock()
		token, seq := s.token, s.cursors[""]
		s.mu.Unlock()
		c, err := s.connect(ticketURL, wsURL, token, seq)
		if err == nil {
			attempt, invalid, unauthorized = 0, 0, 0
			err = s.serve(c, token != "")
			if s.ctx.Err() != nil {
				s.finish(s.stopped())
				return
			}
		}
		var he *HTTPError
		var ce *CloseError
		switch {
		case errors.As(err, &ce):
			switch protocol.CloseActionOf(ce.Code) {
			case protocol.CloseActionStop:
				s.finish(ce)
				return
			case protocol.CloseActionNewTicket:
				if invalid++; invalid >= s.cfg.MaxInvalidTickets {
					s.finish(ce)
					return
				}
			}
		case errors.As(err, &he) && he.Status == http.StatusUnauthorized:
			// A TokenFunc may hold a newer token (refreshed meanwhile):
			// ask it once more, at once; a second 401 ends the session.
			if unauthorized++; s.cfg.TokenFunc == nil || unauthorized > 1 {
				s.finish(he)
				return
			}
			turn = gw // the same gateway: it did not refuse
			continue
		}
		unauthorized = 0 // this attempt failed otherwise: a later 401 asks TokenFunc again
		hint := RetryAfter(err)
		b := backoff{base: s.cfg.BaseBackoff, max: s.cfg.MaxBackoff}
		var delay time.Duration
		if len(s.cfg.WSURLs) > 1 && podRefusal(err) {
			// The refusal is that pod's: hold its URL for the hint and
			// try another now; wait only when every URL is held.
			hold := hint
			if hold <= 0 {
				hold = b.delay(attempt, 0)
			}
			delay = marks.refuse(gw, time.Now(), hold)
		} else {
			delay = b.delay(attempt, hint)
		}
		attempt++
		if s.cfg.OnReconnecting != nil {
			s.cfg.OnReconnecting(Reconnecting{Attempt: attempt, Delay: delay, RetryAfter: hint, Err: err})
		}
		t := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// stopped is the Err of a session whose context ended: ErrStopped, with
// the cause when it was not Close.
func (s *Session) stopped() error {
	if cause := context.Cause(s.ctx); cause != nil && !errors.Is(cause, errClosed) {
		return fmt.Errorf("%w: %w", ErrStopped, cause)
	}
	return ErrStopped
}

// errClosed is the cancel cause of Close.
var errClosed = errors.New("closed by the app")

func (s *Session) connect(ticketURL, wsURL, token string, seq uint64) (*Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	bearer := s.cfg.Token
	if s.cfg.TokenFunc != nil {
		var err error
		if bearer, err = s.cfg.TokenFunc(ctx); err != nil {
			return nil, fmt.Errorf("session token: %w", err)
		}
	}
	t, err := GetTicket(ctx, s.cfg.Options.HTTPClient, ticketURL, bearer)
	if err != nil {
		return nil, err
	}
	opts := s.cfg.Options
	opts.ResumeToken, opts.ResumeSeq = token, seq
	return Dial(ctx, wsURL, t, opts)
}
