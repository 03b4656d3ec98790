package client

import (
	"context"
	"errors"
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
	Token      string // bearer session token sess_…
	Options    Options

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
	// row (default 3): a fresh ticket that keeps failing means the session
	// is gone, and looping would only hammer the cluster.
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
// servers' retry hints (SessionConfig.BaseBackoff), resubscribes its
// channels after each reconnect, and stops for good after 4003 (session
// revoked), repeated 4001, or 401 from ticketsvc.
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
	cancel context.CancelFunc

	mu       sync.Mutex
	conn     *Conn
	channels map[string]struct{}
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

// ErrStopped is the Session's Err after Close.
var ErrStopped = errors.New("session closed")

// NewSession starts a session; frames of every connection it makes arrive
// on Frames (each connection starts with a ready frame).
func NewSession(cfg SessionConfig) *Session {
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxInvalidTickets <= 0 {
		cfg.MaxInvalidTickets = 3
	}
	buf := cfg.Options.Buffer
	if buf <= 0 {
		buf = 1024
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{cfg: cfg, frames: make(chan Frame, buf), done: make(chan struct{}), ctx: ctx, cancel: cancel,
		channels: map[string]struct{}{}, cursors: map[string]uint64{}, joined: map[string]bool{}}
	if r := cfg.Resume; r != nil {
		s.continued = true
		s.token = r.Token
		s.cursors[""] = r.Seq
		for ch, seq := range r.Channels {
			s.channels[ch] = struct{}{}
			s.cursors[ch] = seq
			s.joined[ch] = true
		}
	}
	go s.run()
	return s
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
	for ch := range s.channels {
		if seq, ok := s.cursors[ch]; ok && s.joined[ch] {
			st.Channels[ch] = seq
		}
	}
	return st
}

// Subscribe adds a channel to the session: it is subscribed now if
// connected, and again after every reconnect (from its cursor). Subscribing
// a channel the session has already keeps its cursor.
func (s *Session) Subscribe(ctx context.Context, ch string) error {
	s.mu.Lock()
	s.channels[ch] = struct{}{}
	c := s.conn
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Subscribe(ctx, ch)
}

// Unsubscribe removes a channel from the session.
func (s *Session) Unsubscribe(ctx context.Context, ch string) error {
	s.mu.Lock()
	s.forget(ch)
	c := s.conn
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Unsubscribe(ctx, ch)
}

// Conn is the current connection, or nil between connections.
func (s *Session) Conn() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Close ends the session and its connection (1000).
func (s *Session) Close() {
	s.cancel()
	<-s.done
}

// forget drops a channel from the session, with its cursor: a later
// Subscribe starts it afresh. Called with s.mu held.
func (s *Session) forget(ch string) {
	delete(s.channels, ch)
	delete(s.cursors, ch)
	delete(s.joined, ch)
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
	attempt, invalid, ticketTurn, turn := 0, 0, 0, 0
	marks := newRefusals(len(s.cfg.WSURLs))
	for {
		if s.ctx.Err() != nil {
			s.finish(ErrStopped)
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
		var he *HTTPError
		var ce *CloseError
		switch {
		case err == nil:
			attempt, invalid = 0, 0
			err = s.serve(c, token != "")
			if s.ctx.Err() != nil {
				s.finish(ErrStopped)
				return
			}
			if errors.As(err, &ce) && ce.Code == protocol.CloseSessionRevoked {
				s.finish(ce)
				return
			}
		case errors.As(err, &he) && he.Status == http.StatusUnauthorized:
			s.finish(he)
			return
		case errors.As(err, &ce) && ce.Code == protocol.CloseInvalidTicket:
			invalid++
			if invalid >= s.cfg.MaxInvalidTickets {
				s.finish(ce)
				return
			}
		}
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

func (s *Session) connect(ticketURL, wsURL, token string, seq uint64) (*Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	t, err := GetTicket(ctx, s.cfg.Options.HTTPClient, ticketURL, s.cfg.Token)
	if err != nil {
		return nil, err
	}
	opts := s.cfg.Options
	opts.ResumeToken, opts.ResumeSeq = token, seq
	return Dial(ctx, wsURL, t, opts)
}

// resub is a channel to subscribe on a new connection.
type resub struct {
	ch     string
	seq    uint64
	resume bool // with its cursor
}

// serve pumps one connection's frames until it ends. asked tells whether
// the connection presented a resume token.
//
// Cursors move only once the frame that moves them is handed to the app
// (a Session closed meanwhile must not hold a position the app never saw).
func (s *Session) serve(c *Conn, asked bool) error {
	ready := c.readyFrame
	r := c.Ready
	// pending: the channels this connection resubscribes that continue an
	// earlier connection's subscription, each with whether it asked to
	// resume, until their subscribed; seen: per channel, the newest
	// position delivered on this connection.
	pending := map[string]bool{}
	seen := map[string]uint64{}
	s.mu.Lock()
	s.conn = c
	s.connects++
	ready.Continuity = &Continuity{Reconnect: s.continued, Resumed: asked && r.Resumed != nil && *r.Resumed, Seq: r.Seq}
	subs := make([]resub, 0, len(s.channels))
	for ch := range s.channels {
		seq, ok := s.cursors[ch]
		// Without a token on this ready the gateway offers no continuity.
		sub := resub{ch: ch, seq: seq, resume: asked && r.ResumeToken != "" && ok && s.joined[ch]}
		subs = append(subs, sub)
		if s.joined[ch] {
			pending[ch] = sub.resume
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
	}()
	if !s.emit(ready) {
		c.Close()
		return nil
	}
	s.mu.Lock()
	s.continued = true
	if r.ResumeToken == "" {
		// No continuity here: cursors from before would resume events
		// this connection delivers without a position.
		s.token = ""
		clear(s.cursors)
	} else {
		s.token = r.ResumeToken
		s.cursors[""] = r.Seq
	}
	s.mu.Unlock()
	for _, sub := range subs {
		var err error
		if sub.resume {
			err = c.SubscribeFrom(s.ctx, sub.ch, sub.seq)
		} else {
			err = c.Subscribe(s.ctx, sub.ch)
		}
		if err != nil {
			break
		}
	}
	for {
		select {
		case <-s.ctx.Done():
			c.Close()
			return nil
		case f, ok := <-c.Frames():
			if !ok {
				return c.Err()
			}
			if f.Seq != 0 && s.duplicate(f, seen, pending) {
				continue
			}
			var subSeq uint64
			switch f.Type {
			case protocol.TypeSubscribed:
				f.Continuity = s.subscribed(f, seen, pending)
				if f.Continuity != nil {
					subSeq = f.Continuity.Seq
				}
			case protocol.TypeUnsubscribed:
				var u protocol.Unsubscribed
				if f.Decode(&u) == nil && u.Reason != protocol.ReasonClient {
					s.mu.Lock()
					s.forget(u.ChannelID) // removed or deleted: do not resubscribe
					s.mu.Unlock()
				}
			}
			if !s.emit(f) {
				c.Close()
				return nil
			}
			switch {
			case f.Seq != 0:
				s.advance(f, seen, pending)
			case f.Continuity != nil:
				s.settle(f.Continuity.ChannelID, subSeq)
			}
		}
	}
}

// duplicate reports (and counts) whether positioned event f is at or
// below its subscription's cursor. Channels that are not the session's
// (subscribed through Conn) have no cursor.
//
// A resubscribed channel whose subscribed has not arrived yet is measured
// against what this connection delivered, not the cursor from before: a
// resume that was refused is live from the gateway's position at once, and
// its first events can precede the subscribed that says so; they must
// reach the app even when that position is below the old cursor (a stream
// that was recreated). Its cursor moves only with the subscribed.
func (s *Session) duplicate(f Frame, seen map[string]uint64, pending map[string]bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.cursors[f.ChannelID]
	if f.ChannelID != "" {
		if _, mine := s.channels[f.ChannelID]; !mine {
			return false
		}
		if _, p := pending[f.ChannelID]; p {
			cur, ok = seen[f.ChannelID], true
		}
	}
	if ok && f.Seq <= cur {
		s.duplicates++
		return true
	}
	return false
}

// advance moves the cursor of positioned event f's subscription to it,
// once f was handed to the app.
func (s *Session) advance(f Frame, seen map[string]uint64, pending map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.ChannelID != "" {
		if _, mine := s.channels[f.ChannelID]; !mine {
			return
		}
		if _, p := pending[f.ChannelID]; p {
			seen[f.ChannelID] = max(seen[f.ChannelID], f.Seq)
			return
		}
	}
	s.cursors[f.ChannelID] = max(s.cursors[f.ChannelID], f.Seq)
	seen[f.ChannelID] = max(seen[f.ChannelID], f.Seq)
}

// subscribed tells the app, for a subscribed frame of one of the session's
// channels, whether a resubscription resumed and where the channel's
// cursor stands: the subscribed seq, or an event this connection delivered
// just before it, while the subscription was being set up, if newer.
func (s *Session) subscribed(f Frame, seen map[string]uint64, pending map[string]bool) *Continuity {
	var sub protocol.Subscribed
	if f.Decode(&sub) != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := sub.ChannelID
	if _, ok := s.channels[ch]; !ok {
		return nil // not the session's, or unsubscribed meanwhile
	}
	cont := &Continuity{ChannelID: ch, Seq: max(sub.Seq, seen[ch])}
	if resumed, ok := pending[ch]; ok {
		delete(pending, ch)
		cont.Reconnect = true
		cont.Resumed = resumed && sub.Resumed != nil && *sub.Resumed
	}
	return cont
}

// settle sets a channel's cursor from its subscribed, once that was handed
// to the app.
func (s *Session) settle(ch string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.channels[ch]; !ok {
		return
	}
	s.cursors[ch] = seq
	s.joined[ch] = true
}

func (s *Session) emit(f Frame) bool {
	select {
	case s.frames <- f:
		return true
	case <-s.ctx.Done():
		return false
	}
}
