package client_test

// Continuity against a real cluster (pkg/clustertest: the gateway and
// ticketsvc binaries on an embedded NATS): a Session that loses its
// connection while events are published through the stream gets every
// missed event once and in order after the reconnect and says it resumed;
// a resume the gateway refuses is reported as lost.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// ticketGate stands in front of ticketsvc: while closed it answers 503, so
// a session that lost its connection stays disconnected until the test
// has published what it must miss.
type ticketGate struct {
	closed atomic.Bool
	url    string
}

func newTicketGate(t *testing.T, target string) *ticketGate {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &ticketGate{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.closed.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"UNAVAILABLE","message":"held by the test"}}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

// recorder keeps every frame a session delivers.
type recorder struct {
	mu     sync.Mutex
	frames []client.Frame
	done   chan struct{}
}

func record(s *client.Session) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() { // owner: the test; ends when the session does
		defer close(r.done)
		for f := range s.Frames() {
			r.mu.Lock()
			r.frames = append(r.frames, f)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *recorder) all() []client.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Frame(nil), r.frames...)
}

// of returns the frames of type typ.
func (r *recorder) of(typ string) []client.Frame {
	var out []client.Frame
	for _, f := range r.all() {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

// ids returns the data.id of every frame of type typ, in order.
func (r *recorder) ids(t *testing.T, typ string) []string {
	t.Helper()
	var out []string
	for _, f := range r.of(typ) {
		var v struct {
			ID string `json:"id"`
		}
		if err := f.Decode(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v.ID)
	}
	return out
}

func seqIDs(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func message(ch, id string) protocol.MessageCreate {
	return protocol.MessageCreate{ID: id, ChannelID: ch, Author: protocol.Author{ID: 999, DisplayName: "Backend"}, Content: "event " + id, CreatedAt: 1764417600}
}

func notification(id string) protocol.Notification {
	return protocol.Notification{ID: id, Type: "test", Title: "T", Body: "B", CreatedAt: 1764417600}
}

// fixture is a cluster, one user with a channel, and a session of that
// user behind a ticket gate.
type fixture struct {
	c    *clustertest.Cluster
	user clustertest.User
	ch   string
	gate *ticketGate
}

func newFixture(t *testing.T, gateways int, args ...string) *fixture {
	t.Helper()
	c := clustertest.Start(t, clustertest.Options{Gateways: gateways,
		GatewayArgs: append([]string{"--readiness-delay", "100ms", "--drain-window", "300ms"}, args...)})
	f := &fixture{c: c, user: c.NewUser(1, "alice"), ch: "ch_resume"}
	c.Channel(f.ch, f.user.ID)
	f.gate = newTicketGate(t, c.TicketURLs()[0])
	return f
}

func (f *fixture) session(t *testing.T, ws []string, token string, resume *client.ResumeState) (*client.Session, *recorder) {
	t.Helper()
	s := client.NewSession(client.SessionConfig{TicketURLs: []string{f.gate.url}, WSURLs: ws, Token: token,
		BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Resume: resume})
	rec := record(s)
	t.Cleanup(func() { s.Close(); <-rec.done })
	if err := s.Subscribe(context.Background(), f.ch); err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func (f *fixture) publish(t *testing.T, msgs []string, notes []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range msgs {
		if err := f.c.Publisher.MessageCreated(ctx, message(f.ch, id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range notes {
		if err := f.c.Publisher.Notify(ctx, f.user.ID, notification(id)); err != nil {
			t.Fatal(err)
		}
	}
}

func waitIDs(t *testing.T, rec *recorder, typ string, n int) {
	t.Helper()
	clustertest.Eventually(t, 30*time.Second, fmt.Sprintf("%d %s", n, typ), func() bool { return len(rec.of(typ)) >= n })
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// checkPositions: within each subscription, delivered positions only grow.
func checkPositions(t *testing.T, rec *recorder) {
	t.Helper()
	last := map[string]uint64{}
	for _, f := range rec.all() {
		if f.Seq == 0 {
			continue
		}
		if f.Seq <= last[f.ChannelID] {
			t.Errorf("%s at %d delivered after %d (subscription %q)", f.Type, f.Seq, last[f.ChannelID], f.ChannelID)
		}
		last[f.ChannelID] = f.Seq
	}
}

func continuity(t *testing.T, f client.Frame) client.Continuity {
	t.Helper()
	if f.Continuity == nil {
		t.Fatalf("%s without Continuity: %s", f.Type, f.Raw)
	}
	return *f.Continuity
}

// TestSessionResumesWithoutLoss: the connection of a subscribed session
// ends (a drain to another pod; a crashed pod that comes back) while
// channel and user events are published through the stream; after the
// reconnect the session delivers every missed event exactly once and in
// order, then the live ones, and reports resumed for the user's events
// and for the channel.
func TestSessionResumesWithoutLoss(t *testing.T) {
	cases := []struct {
		name string
		ws   func(c *clustertest.Cluster) []string
		drop func(t *testing.T, c *clustertest.Cluster)
		back func(t *testing.T, c *clustertest.Cluster) // before the gate opens
	}{
		{
			name: "drained (1012), resumed on another pod",
			ws:   func(c *clustertest.Cluster) []string { return c.WSURLs() },
			drop: func(t *testing.T, c *clustertest.Cluster) {
				if err := c.Gateways[0].Stop(20 * time.Second); err != nil {
					t.Fatal(err)
				}
			},
			back: func(t *testing.T, c *clustertest.Cluster) {},
		},
		{
			name: "pod killed (1006) and restarted",
			ws:   func(c *clustertest.Cluster) []string { return c.WSURLs()[:1] },
			drop: func(t *testing.T, c *clustertest.Cluster) { c.Gateways[0].Kill() },
			back: func(t *testing.T, c *clustertest.Cluster) {
				if err := c.Gateways[0].Restart(20 * time.Second); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 2)
			s, rec := f.session(t, tc.ws(f.c), f.user.Token, nil)
			waitIDs(t, rec, protocol.TypeSubscribed, 1)

			f.publish(t, seqIDs("m", 0, 5), seqIDs("n", 0, 2))
			waitIDs(t, rec, protocol.TypeMessageCreate, 5)
			waitIDs(t, rec, protocol.TypeNotification, 2)

			f.gate.closed.Store(true)
			tc.drop(t, f.c)
			clustertest.Eventually(t, 30*time.Second, "the connection to end", func() bool { return s.Conn() == nil })
			// Missed: published while the session has no connection.
			f.publish(t, seqIDs("m", 5, 25), seqIDs("n", 2, 6))
			tc.back(t, f.c)
			f.gate.closed.Store(false)

			waitIDs(t, rec, protocol.TypeReady, 2)
			waitIDs(t, rec, protocol.TypeSubscribed, 2)
			waitIDs(t, rec, protocol.TypeMessageCreate, 25)
			waitIDs(t, rec, protocol.TypeNotification, 6)
			f.publish(t, seqIDs("m", 25, 27), seqIDs("n", 6, 7)) // live again
			waitIDs(t, rec, protocol.TypeMessageCreate, 27)
			waitIDs(t, rec, protocol.TypeNotification, 7)
			time.Sleep(300 * time.Millisecond) // a duplicate would arrive by now

			if got, want := rec.ids(t, protocol.TypeMessageCreate), seqIDs("m", 0, 27); !equal(got, want) {
				t.Errorf("channel events delivered:\n%v\nwant each once, in order:\n%v", got, want)
			}
			if got, want := rec.ids(t, protocol.TypeNotification), seqIDs("n", 0, 7); !equal(got, want) {
				t.Errorf("user events delivered:\n%v\nwant each once, in order:\n%v", got, want)
			}
			checkPositions(t, rec)
			readies, subs := rec.of(protocol.TypeReady), rec.of(protocol.TypeSubscribed)
			if len(readies) != 2 || len(subs) != 2 {
				t.Fatalf("%d readies and %d subscribed, want 2 of each", len(readies), len(subs))
			}
			for i, want := range []client.Continuity{{Reconnect: false}, {Reconnect: true, Resumed: true}} {
				got := continuity(t, readies[i])
				if got.Reconnect != want.Reconnect || got.Resumed != want.Resumed || got.Lost() {
					t.Errorf("ready %d: %+v, want %+v (%s)", i+1, got, want, readies[i].Raw)
				}
				got = continuity(t, subs[i])
				if got.ChannelID != f.ch || got.Reconnect != want.Reconnect || got.Resumed != want.Resumed || got.Lost() {
					t.Errorf("subscribed %d: %+v, want %+v (%s)", i+1, got, want, subs[i].Raw)
				}
			}
			if n := s.Connects(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
			if err := s.Err(); err != nil {
				t.Errorf("session ended: %v", err)
			}
			t.Logf("%d duplicates dropped", s.Duplicates())
		})
	}
}

// TestSessionResumeRefused: a resume the gateway refuses — a forged token,
// another session's token, a cursor older than the continuity window — is
// reported as lost on ready and on the channel's subscribed, and the
// events published after it are delivered (from the new positions, even
// when the refused cursors were higher).
func TestSessionResumeRefused(t *testing.T) {
	t.Run("forged token", func(t *testing.T) {
		f := newFixture(t, 1)
		forged := &client.ResumeState{Token: "rt1_AAAAAAAAAAEAAAAAZYmyEHNlc194.Zm9yZ2Vk", Seq: 1 << 40, Channels: map[string]uint64{f.ch: 1 << 40}}
		s, rec := f.session(t, f.c.WSURLs(), f.user.Token, forged)
		checkRefused(t, f, s, rec)
	})
	t.Run("another session's token", func(t *testing.T) {
		f := newFixture(t, 1)
		other := f.c.NewUser(f.user.ID, "alice on another device")
		s0, rec0 := f.session(t, f.c.WSURLs(), other.Token, nil)
		waitIDs(t, rec0, protocol.TypeSubscribed, 1)
		st := s0.State()
		if st.Token == "" {
			t.Fatal("the gateway gave no resume token")
		}
		s, rec := f.session(t, f.c.WSURLs(), f.user.Token, &st)
		checkRefused(t, f, s, rec)
	})
	t.Run("away longer than the window", func(t *testing.T) {
		f := newFixture(t, 1, "--continuity-window", "3s")
		s, rec := f.session(t, f.c.WSURLs(), f.user.Token, nil)
		waitIDs(t, rec, protocol.TypeSubscribed, 1)
		f.publish(t, []string{"before"}, []string{"before"})
		waitIDs(t, rec, protocol.TypeMessageCreate, 1)
		waitIDs(t, rec, protocol.TypeNotification, 1)
		f.gate.closed.Store(true)
		f.c.Gateways[0].Kill()
		clustertest.Eventually(t, 30*time.Second, "the connection to end", func() bool { return s.Conn() == nil })
		f.publish(t, []string{"missed"}, []string{"missed"})
		if err := f.c.Gateways[0].Restart(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second) // the window is 3 s
		f.gate.closed.Store(false)
		checkRefused(t, f, s, rec)
	})
}

// checkRefused waits for the session's refused (re)connect and checks it
// is reported as lost, then that live events are delivered.
func checkRefused(t *testing.T, f *fixture, s *client.Session, rec *recorder) {
	t.Helper()
	ready := func() (client.Frame, bool) {
		for _, fr := range rec.of(protocol.TypeReady) {
			if fr.Continuity != nil && fr.Continuity.Reconnect {
				return fr, true
			}
		}
		return client.Frame{}, false
	}
	clustertest.Eventually(t, 30*time.Second, "the resuming ready", func() bool { _, ok := ready(); return ok })
	var sub client.Frame
	clustertest.Eventually(t, 30*time.Second, "the resubscription", func() bool {
		for _, fr := range rec.of(protocol.TypeSubscribed) {
			if fr.Continuity != nil && fr.Continuity.Reconnect {
				sub = fr
				return true
			}
		}
		return false
	})
	r, _ := ready()
	if c := continuity(t, r); c.Resumed || !c.Lost() {
		t.Errorf("ready: %+v, want lost (%s)", c, r.Raw)
	}
	if !strings.Contains(string(r.Raw), `"resumed":false`) {
		t.Errorf("ready does not say resumed false: %s", r.Raw)
	}
	if c := continuity(t, sub); c.ChannelID != f.ch || c.Resumed || !c.Lost() {
		t.Errorf("subscribed: %+v, want lost (%s)", c, sub.Raw)
	}
	if !strings.Contains(string(sub.Raw), `"resumed":false`) {
		t.Errorf("subscribed does not say resumed false: %s", sub.Raw)
	}
	msgs, notes := len(rec.of(protocol.TypeMessageCreate)), len(rec.of(protocol.TypeNotification))
	f.publish(t, []string{"after"}, []string{"after"})
	waitIDs(t, rec, protocol.TypeMessageCreate, msgs+1)
	waitIDs(t, rec, protocol.TypeNotification, notes+1)
	m, n := rec.ids(t, protocol.TypeMessageCreate), rec.ids(t, protocol.TypeNotification)
	if m[len(m)-1] != "after" || n[len(n)-1] != "after" {
		t.Errorf("last events delivered: %v, %v; want the ones published after the refusal", m, n)
	}
	checkPositions(t, rec)
	if err := s.Err(); err != nil {
		t.Errorf("session ended: %v", err)
	}
}

// TestSessionResumesUnderLoad: events are published every few
// milliseconds while the session's pod drains (1012), then the other pod
// drains: events published around each close — delivered live, in flight,
// or missed — reach the app exactly once and in order, and each reconnect
// resumed.
func TestSessionResumesUnderLoad(t *testing.T) {
	f := newFixture(t, 2)
	s, rec := f.session(t, f.c.WSURLs(), f.user.Token, nil)
	waitIDs(t, rec, protocol.TypeSubscribed, 1)
	var stop atomic.Bool
	var msgs, notes int
	pubErr := make(chan error, 1)
	go func() { // owner: this test; stops with stop
		defer close(pubErr)
		for !stop.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := f.c.Publisher.MessageCreated(ctx, message(f.ch, fmt.Sprintf("m%d", msgs)))
			if err == nil {
				msgs++
				if msgs%4 == 0 {
					if err = f.c.Publisher.Notify(ctx, f.user.ID, notification(fmt.Sprintf("n%d", notes))); err == nil {
						notes++
					}
				}
			}
			cancel()
			if err != nil {
				pubErr <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	for _, g := range []int{0, 1} {
		if err := f.c.Gateways[g].Stop(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		if g == 0 {
			if err := f.c.Gateways[0].Restart(20 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	stop.Store(true)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	waitIDs(t, rec, protocol.TypeMessageCreate, msgs)
	waitIDs(t, rec, protocol.TypeNotification, notes)
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive by now
	if got, want := rec.ids(t, protocol.TypeMessageCreate), seqIDs("m", 0, msgs); !equal(got, want) {
		t.Errorf("channel events: %d delivered, %d published; want each once, in order:\n%v", len(got), len(want), got)
	}
	if got, want := rec.ids(t, protocol.TypeNotification), seqIDs("n", 0, notes); !equal(got, want) {
		t.Errorf("user events: %d delivered, %d published; want each once, in order:\n%v", len(got), len(want), got)
	}
	checkPositions(t, rec)
	readies, subs := rec.of(protocol.TypeReady), rec.of(protocol.TypeSubscribed)
	if len(readies) < 3 || len(subs) != len(readies) {
		t.Fatalf("%d readies and %d subscribed, want as many, and at least 3", len(readies), len(subs))
	}
	for i := range readies {
		r, sub := continuity(t, readies[i]), continuity(t, subs[i])
		if i > 0 && (!r.Resumed || !sub.Resumed) {
			t.Errorf("reconnect %d: ready %+v, subscribed %+v; want both resumed", i, r, sub)
		}
	}
	t.Logf("%d channel and %d user events over %d connections, %d duplicates dropped", msgs, notes, s.Connects(), s.Duplicates())
}

// TestSessionSlowReaderNotCutOff: an app that stops reading while
// thousands of large events are published overflows the gateway's queue
// for it; it is not cut off (4009) but caught up from the stream, and gets
// every event once and in order on the same connection.
func TestSessionSlowReaderNotCutOff(t *testing.T) {
	f := newFixture(t, 1)
	s := client.NewSession(client.SessionConfig{TicketURLs: []string{f.gate.url}, WSURLs: f.c.WSURLs(), Token: f.user.Token,
		BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Options: client.Options{Buffer: 8}})
	defer s.Close()
	if err := s.Subscribe(context.Background(), f.ch); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for subscribed := false; !subscribed; {
		select {
		case fr := <-s.Frames():
			subscribed = fr.Type == protocol.TypeSubscribed
		case <-timeout:
			t.Fatal("not subscribed")
		}
	}
	// 3000 events of 3 KB: more than the socket buffers and the gateway's
	// queue hold while nothing reads.
	const n = 3000
	body := strings.Repeat("x", 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		m := message(f.ch, fmt.Sprintf("m%d", i))
		m.Content = body
		if err := f.c.Publisher.MessageCreated(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	timeout = time.After(60 * time.Second)
	for len(ids) < n {
		select {
		case fr, ok := <-s.Frames():
			if !ok {
				t.Fatalf("session ended: %v", s.Err())
			}
			if fr.Type == protocol.TypeMessageCreate {
				var v struct{ ID string }
				if err := fr.Decode(&v); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, v.ID)
			}
		case <-timeout:
			t.Fatalf("%d events of %d after 60 s", len(ids), n)
		}
	}
	if !equal(ids, seqIDs("m", 0, n)) {
		t.Errorf("%d events, not each once in order", len(ids))
	}
	if c := s.Connects(); c != 1 {
		t.Errorf("%d connections, want 1 (the slow reader was cut off)", c)
	}
	catchups, _ := f.c.Gateways[0].Metric("ocvr_gateway_catchups_total")
	t.Logf("%d duplicates dropped; the gateway started %v catch-ups", s.Duplicates(), catchups)
}
