package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
)

// SessionConfig configures a reconnecting Session.
type SessionConfig struct {
	// TicketURLs are ticketsvc base URLs and WSURLs gateway socket URLs;
	// each attempt picks the next of each (round robin), as a load
	// balancer would.
	TicketURLs []string
	WSURLs     []string
	Token      string // bearer session token sess_…
	Options    Options

	// Backoff: attempt n waits a uniformly random time in
	// [0, min(MaxBackoff, BaseBackoff·2^n)] (full jitter). Defaults 250ms
	// and 30s. The attempt count resets after every ready.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// MaxInvalidTickets ends the session after this many 4001 closes in a
	// row (default 3): a fresh ticket that keeps failing means the session
	// is gone, and looping would only hammer the cluster.
	MaxInvalidTickets int
}

// Session is a connection that survives server restarts: it reconnects
// with a new ticket and exponential backoff with full jitter, resubscribes
// its channels after each reconnect, and stops for good after 4003 (session
// revoked), repeated 4001, or 401 from ticketsvc.
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
	s := &Session{cfg: cfg, frames: make(chan Frame, buf), done: make(chan struct{}), ctx: ctx, cancel: cancel, channels: map[string]struct{}{}}
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

// Subscribe adds a channel to the session: it is subscribed now if
// connected, and again after every reconnect.
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
	delete(s.channels, ch)
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
	attempt, invalid, turn := 0, 0, 0
	for {
		if s.ctx.Err() != nil {
			s.finish(ErrStopped)
			return
		}
		ticketURL := s.cfg.TicketURLs[turn%len(s.cfg.TicketURLs)]
		wsURL := s.cfg.WSURLs[turn%len(s.cfg.WSURLs)]
		turn++
		c, err := s.connect(ticketURL, wsURL)
		var he *HTTPError
		var ce *CloseError
		switch {
		case err == nil:
			attempt, invalid = 0, 0
			err = s.serve(c)
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
		// Exponential backoff with full jitter.
		ceil := s.cfg.BaseBackoff << min(attempt, 16)
		if ceil > s.cfg.MaxBackoff || ceil <= 0 {
			ceil = s.cfg.MaxBackoff
		}
		if he != nil && he.RetryAfter > ceil {
			ceil = he.RetryAfter
		}
		attempt++
		select {
		case <-s.ctx.Done():
		case <-time.After(rand.N(ceil + 1)):
		}
	}
}

func (s *Session) connect(ticketURL, wsURL string) (*Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	t, err := GetTicket(ctx, s.cfg.Options.HTTPClient, ticketURL, s.cfg.Token)
	if err != nil {
		return nil, err
	}
	return Dial(ctx, wsURL, t, s.cfg.Options)
}

// serve pumps one connection's frames until it ends.
func (s *Session) serve(c *Conn) error {
	s.mu.Lock()
	s.conn = c
	s.connects++
	chans := make([]string, 0, len(s.channels))
	for ch := range s.channels {
		chans = append(chans, ch)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
	}()
	if !s.emit(c.readyFrame) {
		c.Close()
		return nil
	}
	for _, ch := range chans {
		if err := c.Subscribe(s.ctx, ch); err != nil {
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
			if f.Type == protocol.TypeUnsubscribed {
				var u protocol.Unsubscribed
				if f.Decode(&u) == nil && u.Reason != protocol.ReasonClient {
					s.mu.Lock()
					delete(s.channels, u.ChannelID) // removed or deleted: do not resubscribe
					s.mu.Unlock()
				}
			}
			if !s.emit(f) {
				c.Close()
				return nil
			}
		}
	}
}

func (s *Session) emit(f Frame) bool {
	select {
	case s.frames <- f:
		return true
	case <-s.ctx.Done():
		return false
	}
}
