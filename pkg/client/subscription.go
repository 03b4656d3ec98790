package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
)

// SubState is a channel's state in a Session.
type SubState int

const (
	// Unsubscribed: the server refused the channel or ended its
	// subscription (Subscription.Err says how); the session does not
	// subscribe it again unless Subscribe is called.
	Unsubscribed SubState = iota
	// Subscribing: asked for, waiting for subscribed (also between
	// connections, and while a connection resubscribes).
	Subscribing
	// Subscribed: live on the current connection.
	Subscribed
)

func (s SubState) String() string {
	switch s {
	case Subscribing:
		return "subscribing"
	case Subscribed:
		return "subscribed"
	}
	return "unsubscribed"
}

// Subscription is one channel of a Session, as Session.Subscription
// reports it.
type Subscription struct {
	ChannelID string
	State     SubState
	// Continuity is that of the channel's newest subscribed frame: after a
	// reconnect, whether the subscription resumed without loss
	// (Continuity.Lost: refetch the channel's state). Nil before the
	// first.
	Continuity *Continuity
	// Err is why the channel is Unsubscribed: a *SubscribeError.
	Err error
}

// SubscribeError is the server's refusal of a subscribe (an error frame
// with the channel's id: NOT_MEMBER, CHANNEL_NOT_FOUND,
// TOO_MANY_SUBSCRIPTIONS, INVALID_MESSAGE), or its end of a subscription
// (unsubscribed with reason removed: NOT_MEMBER; deleted:
// CHANNEL_NOT_FOUND). gateway/README.md "Error codes" says what to do.
type SubscribeError struct {
	ChannelID string
	Code      string
	Message   string
}

func (e *SubscribeError) Error() string {
	return fmt.Sprintf("subscribe %s: %s: %s", e.ChannelID, e.Code, e.Message)
}

// ErrSubscribeTimeout is wrapped by Subscribe's error when the server did
// not answer within SessionConfig.SubscribeTimeout.
var ErrSubscribeTimeout = errors.New("subscribe timed out")

// ErrUnsubscribed is a pending Subscribe's error after Unsubscribe of the
// same channel.
var ErrUnsubscribed = errors.New("unsubscribed while subscribing")

// channel is a Session's state of one channel.
type channel struct {
	state   SubState
	cont    *Continuity
	err     error
	waiters []chan error // the pending Subscribe calls
	sentOn  *Conn        // the connection its subscribe was sent on
}

// resolve ends every pending Subscribe of the channel with err.
func (c *channel) resolve(err error) {
	for _, w := range c.waiters {
		w <- err // buffered, one value each
	}
	c.waiters = nil
}

// Subscribe adds channel ch to the session and waits until it is
// subscribed: it returns nil on the server's subscribed frame (at once if
// the channel is already subscribed), a *SubscribeError when the server
// refuses it, or an error wrapping ErrSubscribeTimeout (or the context's
// error) when no answer came in time — while disconnected the subscribe is
// sent as soon as a connection is up. A refused channel leaves the
// session; after a timeout it stays (Subscribing) and is subscribed when
// the server answers or on the next connection. Subscribe again after a
// refusal to try anew.
//
// Once subscribed the channel is resubscribed after every reconnect (from
// its cursor); its subscribed frame on Frames, and Subscription, say
// whether it resumed without loss. Frames must be read meanwhile (from
// another goroutine): the subscribed frame is handed to Frames before
// Subscribe returns.
func (s *Session) Subscribe(ctx context.Context, ch string) error {
	if err := protocol.CheckChannelID(ch); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	select {
	case <-s.done:
		return fmt.Errorf("subscribe %s: %w", ch, s.Err())
	default:
	}
	w := make(chan error, 1)
	s.mu.Lock()
	sub := s.subs[ch]
	if sub != nil && sub.state == Subscribed {
		s.mu.Unlock()
		return nil
	}
	if sub == nil || sub.state == Unsubscribed {
		sub = &channel{state: Subscribing}
		s.subs[ch] = sub
	}
	sub.waiters = append(sub.waiters, w)
	c := s.conn
	send := c != nil && sub.sentOn != c
	if send {
		sub.sentOn = c
	}
	s.mu.Unlock()
	if send {
		// Not the caller's ctx: a write whose context ends closes the
		// socket. A failed send means the connection is ending: the next
		// one resubscribes the channel.
		sctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
		_ = c.Subscribe(sctx, ch)
		cancel()
	}
	var timeout <-chan time.Time
	if d := s.cfg.SubscribeTimeout; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-w:
		return err
	case <-timeout:
		s.abandon(ch, w)
		return fmt.Errorf("subscribe %s: %w after %v", ch, ErrSubscribeTimeout, s.cfg.SubscribeTimeout)
	case <-ctx.Done():
		s.abandon(ch, w)
		return fmt.Errorf("subscribe %s: %w", ch, ctx.Err())
	case <-s.done:
		return fmt.Errorf("subscribe %s: %w", ch, s.Err())
	}
}

// abandon removes the waiter w of a Subscribe that gave up. With no other
// waiter left, the subscribe counts as unsent: a later Subscribe on the
// same connection sends it again (the first may have been dropped, e.g.
// by RATE_LIMITED, which answers nothing).
func (s *Session) abandon(ch string, w chan error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[ch]
	if sub == nil {
		return
	}
	for i, x := range sub.waiters {
		if x == w {
			sub.waiters = append(sub.waiters[:i], sub.waiters[i+1:]...)
			break
		}
	}
	if len(sub.waiters) == 0 && sub.state == Subscribing {
		sub.sentOn = nil
	}
}

// Unsubscribe removes a channel from the session, with its cursor: a later
// Subscribe starts it afresh. A pending Subscribe of it fails with
// ErrUnsubscribed. The unsubscribe is sent when connected; ctx only
// stops a call made after it ended (the write has its own bound: a write
// cut short would close the socket).
func (s *Session) Unsubscribe(ctx context.Context, ch string) error {
	s.mu.Lock()
	if sub := s.subs[ch]; sub != nil {
		sub.resolve(fmt.Errorf("subscribe %s: %w", ch, ErrUnsubscribed))
	}
	s.forget(ch)
	c := s.conn
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Not the caller's ctx: a write whose context ends closes the socket.
	sctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
	defer cancel()
	return c.Unsubscribe(sctx, ch)
}

// sendTimeout bounds a Session's write of one frame: a socket that takes
// longer is as good as dead.
const sendTimeout = 10 * time.Second

// Subscription reports channel ch's state; false when the session does
// not have it (never subscribed, or unsubscribed by the app).
func (s *Session) Subscription(ch string) (Subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[ch]
	if sub == nil {
		return Subscription{}, false
	}
	return sub.report(ch), true
}

// Subscriptions reports every channel of the session, refused ones
// included.
func (s *Session) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Subscription, 0, len(s.subs))
	for ch, sub := range s.subs {
		out = append(out, sub.report(ch))
	}
	return out
}

// report is the channel's Subscription, with a copy of its Continuity
// (the frame handed to the app holds the original).
func (c *channel) report(ch string) Subscription {
	sub := Subscription{ChannelID: ch, State: c.state, Err: c.err}
	if c.cont != nil {
		cont := *c.cont
		sub.Continuity = &cont
	}
	return sub
}

// active reports whether ch is one of the session's channels to keep
// subscribed. Called with s.mu held.
func (s *Session) active(ch string) bool {
	sub := s.subs[ch]
	return sub != nil && sub.state != Unsubscribed
}

// forget drops a channel from the session, with its cursor. Called with
// s.mu held.
func (s *Session) forget(ch string) {
	delete(s.subs, ch)
	delete(s.cursors, ch)
	delete(s.joined, ch)
}

// refuse ends channel ch after the server refused or ended it: its
// pending Subscribe calls fail with err, it keeps err for Subscription,
// and it is not resubscribed.
func (s *Session) refuse(ch string, err *SubscribeError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[ch]
	if sub == nil || sub.state == Unsubscribed {
		return
	}
	sub.state, sub.err, sub.sentOn = Unsubscribed, err, nil
	sub.resolve(err)
	delete(s.cursors, ch)
	delete(s.joined, ch)
}

// live marks channel ch subscribed on the current connection, with the
// Continuity of its subscribed frame, and ends its pending Subscribe
// calls. Called with s.mu held.
func (s *Session) live(ch string, cont *Continuity) {
	sub := s.subs[ch]
	if sub == nil || sub.state == Unsubscribed {
		return
	}
	sub.state, sub.cont, sub.err = Subscribed, cont, nil
	sub.resolve(nil)
}

// ended is the SubscribeError of a subscription the server ended.
func ended(u protocol.Unsubscribed) *SubscribeError {
	code := protocol.CodeNotMember
	if u.Reason == protocol.ReasonDeleted {
		code = protocol.CodeChannelNotFound
	}
	return &SubscribeError{ChannelID: u.ChannelID, Code: code, Message: "subscription ended: " + u.Reason}
}
