package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/pkg/protocol"
)

// scriptedSession is a session of a scripted gateway, its frames drained.
func scriptedSession(t *testing.T, g *scriptedGateway, subscribeTimeout time.Duration) *Session {
	t.Helper()
	s, err := StartSession(context.Background(), SessionConfig{TicketURLs: []string{okTickets(t)}, WSURLs: []string{g.url},
		Token: "sess_x", Options: Options{Heartbeat: -1}, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		SubscribeTimeout: subscribeTimeout})
	if err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	go func() { // owner: the test; ends with the session
		defer close(drained)
		for range s.Frames() {
		}
	}()
	t.Cleanup(func() { s.Close(); <-drained })
	return s
}

// recvSubscribe reads the client's next frame, which must subscribe ch.
func (c *scriptedConn) recvSubscribe(ch string) {
	c.t.Helper()
	f := c.recv()
	data, _ := f["data"].(map[string]any)
	if f["type"] != protocol.TypeSubscribe || data["channel_id"] != ch {
		c.t.Fatalf("got %v, want a subscribe of %s", f, ch)
	}
}

func errorFrame(code, ch string) string {
	return string(protocol.MustEncode(protocol.TypeError, protocol.Error{Code: code, Message: "refused by the test", ChannelID: ch}))
}

func state(t *testing.T, s *Session, ch string) Subscription {
	t.Helper()
	sub, ok := s.Subscription(ch)
	if !ok {
		t.Fatalf("the session has no %s", ch)
	}
	return sub
}

// TestSubscribeWaitsForTheAnswer: Subscribe returns on the server's
// answer, not when the frame is sent (the old Session returned at once,
// and nil with nothing sent while disconnected): subscribed → nil; a
// refusal → *SubscribeError with the server's code, and the channel
// leaves the session; UNAVAILABLE → asked again on the same connection;
// no answer → ErrSubscribeTimeout, the channel kept; subscribing while
// disconnected → sent once a connection is up.
func TestSubscribeWaitsForTheAnswer(t *testing.T) {
	g := newScriptedGateway(t)
	s := scriptedSession(t, g, 10*time.Second)

	// While disconnected: nothing to send yet.
	early := subscribeAsync(t, s, "ch_early")
	c := g.next(t)
	c.send(readyFrame("", 0, nil))
	c.recvSubscribe("ch_early")
	select {
	case err := <-early:
		t.Fatalf("Subscribe returned %v before the server answered", err)
	default:
	}
	if st := state(t, s, "ch_early"); st.State != Subscribing {
		t.Errorf("state before subscribed = %v, want subscribing", st.State)
	}
	c.send(subscribedFrame("ch_early", 0, nil))
	if err := <-early; err != nil {
		t.Fatalf("Subscribe = %v, want nil", err)
	}
	if st := state(t, s, "ch_early"); st.State != Subscribed || st.Continuity == nil || st.Continuity.Lost() {
		t.Errorf("after subscribed: %+v", st)
	}
	if err := s.Subscribe(context.Background(), "ch_early"); err != nil {
		t.Errorf("Subscribe of a subscribed channel = %v", err)
	}

	for _, code := range []string{protocol.CodeNotMember, protocol.CodeChannelNotFound, protocol.CodeTooManySubscriptions} {
		ch := "ch_" + code
		refused := subscribeAsync(t, s, ch)
		c.recvSubscribe(ch)
		c.send(errorFrame(code, ch))
		var se *SubscribeError
		if err := <-refused; !errors.As(err, &se) || se.Code != code || se.ChannelID != ch {
			t.Errorf("Subscribe(%s) = %v, want a SubscribeError %s", ch, err, code)
		}
		if st := state(t, s, ch); st.State != Unsubscribed || !errors.As(st.Err, &se) || se.Code != code {
			t.Errorf("%s after %s: %+v", ch, code, st)
		}
	}

	// UNAVAILABLE: retried after 1–2 s on the same connection.
	retried := subscribeAsync(t, s, "ch_retry")
	c.recvSubscribe("ch_retry")
	c.send(errorFrame(protocol.CodeUnavailable, "ch_retry"))
	c.recvSubscribe("ch_retry")
	c.send(subscribedFrame("ch_retry", 0, nil))
	if err := <-retried; err != nil {
		t.Errorf("Subscribe after UNAVAILABLE = %v, want nil", err)
	}

	// No answer: a timeout; the channel stays, and a later answer makes
	// it subscribed.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Subscribe(ctx, "ch_slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Subscribe without an answer = %v, want the context's deadline", err)
	}
	c.recvSubscribe("ch_slow")
	c.send(subscribedFrame("ch_slow", 0, nil))
	waitState(t, s, "ch_slow", Subscribed)

	// Unsubscribe fails a pending Subscribe.
	pending := subscribeAsync(t, s, "ch_gone")
	c.recvSubscribe("ch_gone")
	if err := s.Unsubscribe(context.Background(), "ch_gone"); err != nil {
		t.Fatal(err)
	}
	if err := <-pending; !errors.Is(err, ErrUnsubscribed) {
		t.Errorf("pending Subscribe after Unsubscribe = %v, want ErrUnsubscribed", err)
	}
	c.close(websocket.StatusNormalClosure)
}

// TestSubscribeTimeout: SessionConfig.SubscribeTimeout bounds a Subscribe
// the server does not answer (ticketsvc down: no connection at all).
func TestSubscribeTimeout(t *testing.T) {
	down := ticketService(t, 503, `{"error":{"code":"UNAVAILABLE","message":"down"}}`)
	s, err := StartSession(context.Background(), SessionConfig{TicketURLs: []string{down}, WSURLs: []string{"ws://" + refusedAddr(t) + "/v1/ws"},
		Token: "sess_x", BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, SubscribeTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Subscribe(context.Background(), "ch_a"); !errors.Is(err, ErrSubscribeTimeout) {
		t.Errorf("Subscribe = %v, want ErrSubscribeTimeout", err)
	}
	if st := state(t, s, "ch_a"); st.State != Subscribing {
		t.Errorf("state after the timeout = %v, want subscribing (kept)", st.State)
	}
	if err := s.Subscribe(context.Background(), "bad id!"); !errors.Is(err, protocol.ErrInvalidChannelID) {
		t.Errorf("Subscribe of an invalid id = %v, want ErrInvalidChannelID", err)
	}
}

// TestRefusedChannelNotResubscribed: a channel whose resubscription the
// server refuses after a reconnect (the user was removed meanwhile) is
// reported and dropped: the next connection does not subscribe it again
// (the old Session resubscribed it on every reconnect).
func TestRefusedChannelNotResubscribed(t *testing.T) {
	g := newScriptedGateway(t)
	s := scriptedSession(t, g, 10*time.Second)
	a, b := subscribeAsync(t, s, "ch_a"), subscribeAsync(t, s, "ch_b")
	c := g.next(t)
	c.send(readyFrame("", 0, nil))
	seen := map[string]bool{}
	for range 2 {
		f := c.recv()
		seen[fmt.Sprint(f["data"].(map[string]any)["channel_id"])] = true
	}
	if !seen["ch_a"] || !seen["ch_b"] {
		t.Fatalf("subscribed %v, want ch_a and ch_b", seen)
	}
	c.send(subscribedFrame("ch_a", 0, nil), subscribedFrame("ch_b", 0, nil))
	if err := errors.Join(<-a, <-b); err != nil {
		t.Fatal(err)
	}
	c.close(websocket.StatusServiceRestart)

	c = g.next(t)
	c.send(readyFrame("", 0, nil))
	for range 2 {
		c.recv()
	}
	c.send(subscribedFrame("ch_a", 0, nil), errorFrame(protocol.CodeNotMember, "ch_b"))
	waitState(t, s, "ch_b", Unsubscribed)
	waitState(t, s, "ch_a", Subscribed)
	if sa := state(t, s, "ch_a"); sa.Continuity == nil || !sa.Continuity.Reconnect {
		t.Errorf("ch_a after the reconnect: %+v, want a Continuity that says reconnect", sa)
	}
	c.close(websocket.StatusServiceRestart)

	c = g.next(t)
	c.send(readyFrame("", 0, nil))
	c.recvSubscribe("ch_a")
	c.send(`{"type":"heartbeat_ack","data":{"server_time":1703523600}}`)
	select {
	case f := <-c.in:
		t.Errorf("the client sent %v after resubscribing ch_a; the refused ch_b must not be resubscribed", f)
	case <-time.After(200 * time.Millisecond):
	}
	if st := state(t, s, "ch_b"); st.State != Unsubscribed {
		t.Errorf("ch_b = %+v, want unsubscribed", st)
	}
	c.close(websocket.StatusNormalClosure)
}

// waitState waits until channel ch of s is in state want.
func waitState(t *testing.T, s *Session, ch string, want SubState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if sub, ok := s.Subscription(ch); ok && sub.State == want {
			return
		}
		if time.Now().After(deadline) {
			sub, _ := s.Subscription(ch)
			t.Fatalf("%s is %v after 10 s, want %v", ch, sub.State, want)
		}
		time.Sleep(time.Millisecond)
	}
}
