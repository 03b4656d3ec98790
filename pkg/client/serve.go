package client

import (
	"math/rand/v2"
	"time"

	"github.com/ocvr/realtime/pkg/protocol"
)

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
	// sent: how this connection subscribed each channel it resubscribes
	// (an UNAVAILABLE answer is retried the same way).
	sent := map[string]resub{}
	subs := make([]resub, 0, len(s.subs))
	for ch, st := range s.subs {
		if st.state == Unsubscribed {
			continue
		}
		st.sentOn = c
		seq, ok := s.cursors[ch]
		// Without a token on this ready the gateway offers no continuity.
		sub := resub{ch: ch, seq: seq, resume: asked && r.ResumeToken != "" && ok && s.joined[ch]}
		subs = append(subs, sub)
		sent[ch] = sub
		if s.joined[ch] {
			pending[ch] = sub.resume
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conn = nil
		for _, st := range s.subs {
			st.sentOn = nil
			if st.state == Subscribed {
				st.state = Subscribing
			}
		}
		s.mu.Unlock()
	}()
	retry := make(chan string)
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
		case ch := <-retry:
			s.mu.Lock()
			st := s.subs[ch]
			again := st != nil && st.state == Subscribing && st.sentOn == c
			s.mu.Unlock()
			if again {
				if sub, ok := sent[ch]; ok && sub.resume {
					_ = c.SubscribeFrom(s.ctx, ch, sub.seq)
				} else {
					_ = c.Subscribe(s.ctx, ch)
				}
			}
		case f, ok := <-c.Frames():
			if !ok {
				return c.Err()
			}
			if f.Seq != 0 && s.duplicate(f, seen, pending) {
				continue
			}
			// refused: the server refused or ended one of the session's
			// channels; applied once the frame is handed to the app.
			var refused *SubscribeError
			switch f.Type {
			case protocol.TypeSubscribed:
				f.Continuity = s.subscribed(f, seen, pending)
			case protocol.TypeUnsubscribed:
				var u protocol.Unsubscribed
				if f.Decode(&u) == nil && u.Reason != protocol.ReasonClient {
					refused = ended(u) // removed or deleted: do not resubscribe
				}
			case protocol.TypeError:
				var e protocol.Error
				if f.Decode(&e) == nil && s.awaiting(e.ChannelID) {
					switch {
					case e.Code == protocol.CodeNotSubscribed:
					case protocol.RetryableError(e.Code):
						// UNAVAILABLE: ask again in 1–2 s on this connection.
						ch := e.ChannelID
						time.AfterFunc(time.Second+rand.N(time.Second), func() {
							select {
							case retry <- ch:
							case <-c.Done():
							}
						})
					default:
						refused = &SubscribeError{ChannelID: e.ChannelID, Code: e.Code, Message: e.Message}
					}
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
				s.settle(f.Continuity)
			case refused != nil:
				delete(pending, refused.ChannelID)
				s.refuse(refused.ChannelID, refused)
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
		if !s.active(f.ChannelID) {
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
		if !s.active(f.ChannelID) {
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
	if !s.active(ch) {
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

// settle sets a channel's cursor and state from its subscribed, once that
// was handed to the app, and ends its pending Subscribe calls.
func (s *Session) settle(cont *Continuity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := cont.ChannelID
	if !s.active(ch) {
		return
	}
	s.cursors[ch] = cont.Seq
	s.joined[ch] = true
	s.live(ch, cont)
}

// awaiting reports whether ch is one of the session's channels waiting for
// its subscribed: an error about it answers its subscribe.
func (s *Session) awaiting(ch string) bool {
	if ch == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.subs[ch]
	return st != nil && st.state == Subscribing
}

func (s *Session) emit(f Frame) bool {
	select {
	case s.frames <- f:
		return true
	case <-s.ctx.Done():
		return false
	}
}
