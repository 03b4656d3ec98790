package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/pkg/protocol"
)

// scriptedConn is one socket accepted by a scriptedGateway; the test
// drives it.
type scriptedConn struct {
	t     *testing.T
	query url.Values
	ws    *websocket.Conn
	in    chan map[string]any // frames the client sent, heartbeats left out
	done  chan struct{}
}

// scriptedGateway hands every socket it accepts to the test, which writes
// frames, reads what the client sends and closes it with a code.
type scriptedGateway struct {
	conns chan *scriptedConn
	url   string
}

func newScriptedGateway(t *testing.T) *scriptedGateway {
	t.Helper()
	g := &scriptedGateway{conns: make(chan *scriptedConn, 8)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		c := &scriptedConn{t: t, query: r.URL.Query(), ws: ws, in: make(chan map[string]any, 64), done: make(chan struct{})}
		go func() { // owner: this handler; ends with the socket
			defer close(c.in)
			for {
				_, b, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				var f map[string]any
				if json.Unmarshal(b, &f) == nil && f["type"] != protocol.TypeHeartbeat {
					c.in <- f
				}
			}
		}()
		g.conns <- c
		<-c.done
	}))
	t.Cleanup(srv.Close)
	g.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"
	return g
}

func (g *scriptedGateway) next(t *testing.T) *scriptedConn {
	t.Helper()
	select {
	case c := <-g.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not connect")
		return nil
	}
}

func (c *scriptedConn) send(frames ...string) {
	c.t.Helper()
	for _, f := range frames {
		if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(f)); err != nil {
			c.t.Fatalf("write %s: %v", f, err)
		}
	}
}

// recv returns the next frame the client sent.
func (c *scriptedConn) recv() map[string]any {
	c.t.Helper()
	select {
	case f, ok := <-c.in:
		if !ok {
			c.t.Fatal("the client closed the socket")
		}
		return f
	case <-time.After(10 * time.Second):
		c.t.Fatal("the client sent nothing")
		return nil
	}
}

func (c *scriptedConn) close(code websocket.StatusCode) {
	_ = c.ws.Close(code, "")
	close(c.done)
}

func readyFrame(token string, seq uint64, resumed *bool) string {
	r := protocol.Ready{ConnectionID: "conn_x", UserID: 7, SessionID: "ses_x", HeartbeatInterval: 30000, ServerTime: 1703523600,
		ResumeToken: token, Seq: seq, Resumed: resumed}
	return string(protocol.MustEncode(protocol.TypeReady, r))
}

func subscribedFrame(ch string, seq uint64, resumed *bool) string {
	return string(protocol.MustEncode(protocol.TypeSubscribed, protocol.Subscribed{ChannelID: ch, Seq: seq, Resumed: resumed}))
}

// chEvent is a positioned channel event as the gateway sends it.
func chEvent(ch string, seq uint64) string {
	return fmt.Sprintf(`{"type":"message_create","data":{"id":"m%d","channel_id":%q,"author":{"id":1,"display_name":"A"},"content":"c","created_at":1703523600,"attachments":[]},"channel_id":%q,"seq":%d}`, seq, ch, ch, seq)
}

// userEvent is a positioned user event.
func userEvent(seq uint64) string {
	return fmt.Sprintf(`{"type":"notification","data":{"id":"n%d","type":"t","title":"T","body":"B","created_at":1703523600},"seq":%d}`, seq, seq)
}

// subscribeAsync calls s.Subscribe in the background, for a scripted
// gateway that answers later, once the session has the channel; the
// result arrives on the channel returned.
func subscribeAsync(t *testing.T, s *Session, ch string) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.Subscribe(context.Background(), ch) }() // owner: the test; ends with the answer or the timeout
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := s.Subscription(ch); ok {
			return errc
		}
		if time.Now().After(deadline) {
			t.Fatalf("Subscribe(%s) did not add the channel", ch)
		}
		time.Sleep(time.Millisecond)
	}
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

// got is a frame as the app sees it, for comparison.
type got struct {
	typ  string
	seq  uint64 // the event's position
	ch   string // the event's subscription
	cont string // the Continuity, formatted ("" when nil)
}

func (g got) String() string { return fmt.Sprintf("%s seq=%d ch=%q %s", g.typ, g.seq, g.ch, g.cont) }

func contString(c *Continuity) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("{ch=%q reconnect=%v resumed=%v seq=%d lost=%v}", c.ChannelID, c.Reconnect, c.Resumed, c.Seq, c.Lost())
}

func collect(t *testing.T, s *Session, n int) []got {
	t.Helper()
	var out []got
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case f, ok := <-s.Frames():
			if !ok {
				t.Fatalf("the session ended after %d frames: %v; got %v", len(out), s.Err(), out)
			}
			out = append(out, got{f.Type, f.Seq, f.ChannelID, contString(f.Continuity)})
		case <-timeout:
			t.Fatalf("%d frames of %d after 10 s: %v", len(out), n, out)
		}
	}
	return out
}

func checkFrames(t *testing.T, what string, have, want []got) {
	t.Helper()
	if len(have) != len(want) {
		t.Errorf("%s: %d frames, want %d:\nhave %v\nwant %v", what, len(have), len(want), have, want)
		return
	}
	for i := range want {
		if have[i] != want[i] {
			t.Errorf("%s: frame %d = %v, want %v", what, i+1, have[i], want[i])
		}
	}
}

func okTickets(t *testing.T) string {
	return ticketService(t, 200, `{"data":{"ticket":"wst_abcdefghijklmnopqrstuvwxyz012345","expires_in":30}}`)
}

// TestSessionResumesAndDropsDuplicates scripts a gateway over three
// connections and checks what the Session asks and what the app sees:
// the resume request (resume token and user cursor in the query, each
// channel's cursor in its subscribe), duplicates dropped (within a
// connection, and in a replay that overlaps what was delivered), the
// Continuity on ready and subscribed, and a refused resume whose new
// positions are below the old cursors (a recreated stream): the events
// after it are delivered, not dropped as duplicates.
func TestSessionResumesAndDropsDuplicates(t *testing.T) {
	g := newScriptedGateway(t)
	s := NewSession(SessionConfig{TicketURLs: []string{okTickets(t)}, WSURLs: []string{g.url}, Token: "sess_x",
		Options: Options{Heartbeat: -1}, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	defer s.Close()
	subscribing := subscribeAsync(t, s, "ch_a")

	// 1: a fresh connection: no resume asked, subscribe without a cursor.
	c := g.next(t)
	if c.query.Has("resume") || c.query.Has("seq") {
		t.Errorf("first connection asked to resume: %v", c.query)
	}
	c.send(readyFrame("rt1_A", 10, nil))
	if f := c.recv(); f["type"] != "subscribe" || fmt.Sprint(f["data"]) != "map[channel_id:ch_a]" {
		t.Errorf("first subscribe = %v", f)
	}
	c.send(subscribedFrame("ch_a", 20, nil),
		chEvent("ch_a", 21), chEvent("ch_a", 22), userEvent(23),
		chEvent("ch_a", 22), userEvent(23), // duplicates
		chEvent("ch_a", 19), // older than the subscription: a duplicate
		`{"type":"typing_start","data":{"channel_id":"ch_a","user_id":2,"display_name":"B"}}`,
		`{"type":"presence_update","data":{"user_id":2,"status":"online"},"seq":"x"}`, // no valid position
	)
	checkFrames(t, "connection 1", collect(t, s, 7), []got{
		{"ready", 0, "", `{ch="" reconnect=false resumed=false seq=10 lost=false}`},
		{"subscribed", 0, "", `{ch="ch_a" reconnect=false resumed=false seq=20 lost=false}`},
		{"message_create", 21, "ch_a", ""},
		{"message_create", 22, "ch_a", ""},
		{"notification", 23, "", ""},
		{"typing_start", 0, "", ""},
		{"presence_update", 0, "", ""},
	})
	if err := <-subscribing; err != nil {
		t.Errorf("Subscribe = %v", err)
	}
	c.close(websocket.StatusServiceRestart) // drain: 1012

	// 2: resumed; the replay overlaps what was delivered.
	c = g.next(t)
	if c.query.Get("resume") != "rt1_A" || c.query.Get("seq") != "23" || c.query.Get("ticket") == "" {
		t.Errorf("second connection's query = %v, want ticket, resume=rt1_A, seq=23", c.query)
	}
	c.send(readyFrame("rt1_B", 23, yes()))
	if f := c.recv(); fmt.Sprint(f["data"]) != "map[channel_id:ch_a seq:22]" {
		t.Errorf("resubscribe = %v, want channel_id ch_a and seq 22", f)
	}
	c.send(subscribedFrame("ch_a", 22, yes()),
		chEvent("ch_a", 21), chEvent("ch_a", 22), userEvent(23), // already delivered
		chEvent("ch_a", 24), userEvent(25))
	checkFrames(t, "connection 2", collect(t, s, 4), []got{
		{"ready", 0, "", `{ch="" reconnect=true resumed=true seq=23 lost=false}`},
		{"subscribed", 0, "", `{ch="ch_a" reconnect=true resumed=true seq=22 lost=false}`},
		{"message_create", 24, "ch_a", ""},
		{"notification", 25, "", ""},
	})
	c.close(websocket.StatusGoingAway)

	// 3: refused, and the stream was recreated: positions restart low.
	c = g.next(t)
	if c.query.Get("resume") != "rt1_B" || c.query.Get("seq") != "25" {
		t.Errorf("third connection's query = %v, want resume=rt1_B, seq=25", c.query)
	}
	c.send(readyFrame("rt1_C", 3, no()))
	if f := c.recv(); fmt.Sprint(f["data"]) != "map[channel_id:ch_a seq:24]" {
		t.Errorf("resubscribe = %v, want channel_id ch_a and seq 24", f)
	}
	// A refused subscription is live at once: an event can precede its
	// subscribed.
	c.send(chEvent("ch_a", 4), subscribedFrame("ch_a", 3, no()), chEvent("ch_a", 4), chEvent("ch_a", 5), userEvent(6), userEvent(3),
		`{"type":"heartbeat_ack","data":{"server_time":1703523600}}`) // after the duplicates: they were handled
	checkFrames(t, "connection 3", collect(t, s, 6), []got{
		{"ready", 0, "", `{ch="" reconnect=true resumed=false seq=3 lost=true}`},
		{"message_create", 4, "ch_a", ""},
		{"subscribed", 0, "", `{ch="ch_a" reconnect=true resumed=false seq=4 lost=true}`},
		{"message_create", 5, "ch_a", ""},
		{"notification", 6, "", ""},
		{"heartbeat_ack", 0, "", ""},
	})
	if d := s.Duplicates(); d != 8 {
		t.Errorf("Duplicates = %d, want 8", d)
	}
	st := s.State()
	if st.Token != "rt1_C" || st.Seq != 6 || len(st.Channels) != 1 || st.Channels["ch_a"] != 5 {
		t.Errorf("State = %+v, want token rt1_C, seq 6, ch_a at 5", st)
	}
	c.close(websocket.StatusGoingAway)

	// 4: a gateway without continuity (no token): nothing is asked next
	// time, and every subscription is lost across the reconnect.
	c = g.next(t)
	c.send(readyFrame("", 0, nil))
	c.recv()
	c.send(subscribedFrame("ch_a", 0, nil))
	checkFrames(t, "connection 4", collect(t, s, 2), []got{
		{"ready", 0, "", `{ch="" reconnect=true resumed=false seq=0 lost=true}`},
		{"subscribed", 0, "", `{ch="ch_a" reconnect=true resumed=false seq=0 lost=true}`},
	})
	c.close(websocket.StatusGoingAway)
	c = g.next(t)
	if c.query.Has("resume") {
		t.Errorf("resumed with a token from before a connection that had none: %v", c.query)
	}
	c.send(readyFrame("", 0, nil))
	if f := c.recv(); fmt.Sprint(f["data"]) != "map[channel_id:ch_a]" {
		t.Errorf("resubscribe without continuity = %v, want no cursor", f)
	}
	c.close(websocket.StatusNormalClosure)
}

// TestSessionResumeState: a session started from a saved state asks to
// resume with it on its first connection, subscribes the state's channels
// from their cursors, and reports the outcome as a reconnect; Unsubscribe
// forgets a channel's cursor, so a later Subscribe starts it afresh.
func TestSessionResumeState(t *testing.T) {
	g := newScriptedGateway(t)
	s := NewSession(SessionConfig{TicketURLs: []string{okTickets(t)}, WSURLs: []string{g.url}, Token: "sess_x",
		Options: Options{Heartbeat: -1}, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Resume: &ResumeState{Token: "rt1_saved", Seq: 40, Channels: map[string]uint64{"ch_b": 41}}})
	defer s.Close()
	c := g.next(t)
	if c.query.Get("resume") != "rt1_saved" || c.query.Get("seq") != "40" {
		t.Errorf("query = %v, want resume=rt1_saved, seq=40", c.query)
	}
	c.send(readyFrame("rt1_D", 40, yes()))
	if f := c.recv(); fmt.Sprint(f["data"]) != "map[channel_id:ch_b seq:41]" {
		t.Errorf("subscribe = %v, want ch_b from 41", f)
	}
	c.send(subscribedFrame("ch_b", 41, no()), chEvent("ch_b", 50))
	checkFrames(t, "restored", collect(t, s, 3), []got{
		{"ready", 0, "", `{ch="" reconnect=true resumed=true seq=40 lost=false}`},
		{"subscribed", 0, "", `{ch="ch_b" reconnect=true resumed=false seq=41 lost=true}`},
		{"message_create", 50, "ch_b", ""},
	})
	ctx := context.Background()
	if err := s.Unsubscribe(ctx, "ch_b"); err != nil {
		t.Fatal(err)
	}
	subscribing := subscribeAsync(t, s, "ch_b")
	c.recv() // unsubscribe
	c.recv() // subscribe
	c.send(subscribedFrame("ch_b", 52, nil), chEvent("ch_b", 53))
	checkFrames(t, "subscribed again", collect(t, s, 2), []got{
		{"subscribed", 0, "", `{ch="ch_b" reconnect=false resumed=false seq=52 lost=false}`},
		{"message_create", 53, "ch_b", ""},
	})
	if err := <-subscribing; err != nil {
		t.Errorf("Subscribe = %v", err)
	}
	c.close(websocket.StatusInternalError)
	c = g.next(t)
	if c.query.Get("resume") != "rt1_D" || c.query.Get("seq") != "40" {
		t.Errorf("query = %v, want resume=rt1_D, seq=40", c.query)
	}
	c.send(readyFrame("rt1_E", 40, yes()))
	if f := c.recv(); fmt.Sprint(f["data"]) != "map[channel_id:ch_b seq:53]" {
		t.Errorf("subscribe = %v, want ch_b from 53", f)
	}
	c.close(websocket.StatusNormalClosure)
}

// TestSessionStopsOnRevocation: a session that holds a resume token still
// never reconnects after 4003.
func TestSessionStopsOnRevocation(t *testing.T) {
	g := newScriptedGateway(t)
	s := NewSession(SessionConfig{TicketURLs: []string{okTickets(t)}, WSURLs: []string{g.url}, Token: "sess_x",
		Options: Options{Heartbeat: -1}, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	defer s.Close()
	c := g.next(t)
	c.send(readyFrame("rt1_A", 10, nil))
	c.close(websocket.StatusCode(protocol.CloseSessionRevoked))
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end after 4003")
	}
	var ce *CloseError
	if err := s.Err(); !errors.As(err, &ce) || ce.Code != protocol.CloseSessionRevoked {
		t.Errorf("Err = %v, want close 4003", err)
	}
	select {
	case c := <-g.conns:
		t.Errorf("reconnected after 4003 (query %v)", c.query)
		close(c.done)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestDialFailuresNeverShowTheResumeToken: the resume token is in the
// connect URL too; no error a failed Dial returns holds it.
func TestDialFailuresNeverShowTheResumeToken(t *testing.T) {
	const token = "rt1_AAAAAAAAMDkAAAAAZYmyEHNlc19RazN2OFRuWTFwTHgybVph.q2V0aGluZy1zaWduZWQ"
	cases := map[string]func(t *testing.T) string{
		"refused port":                func(t *testing.T) string { return "ws://" + refusedAddr(t) + "/v1/ws" },
		"HTTP 404 instead of upgrade": func(t *testing.T) string { return "ws://" + httpServer(t, 404) + "/v1/ws" },
		"no answer (timeout)":         func(t *testing.T) string { return "ws://" + silentAddr(t) + "/v1/ws" },
		"malformed URL":               func(t *testing.T) string { return "ws://127.0.0.1:80:80/v1/ws" },
		"unresolvable host":           func(t *testing.T) string { return "ws://gateway.ocvr.invalid/v1/ws" },
	}
	for name, u := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := Dial(ctx, u(t), secret, Options{Heartbeat: -1, ResumeToken: token, ResumeSeq: 1042})
			if err == nil {
				t.Fatal("dial succeeded")
			}
			for _, m := range messages(err) {
				if strings.Contains(m, token) || strings.Contains(m, token[4:]) || strings.Contains(m, secret) {
					t.Errorf("a secret leaks in %q", m)
				}
			}
			t.Logf("%v", err)
		})
	}
}
