package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/presence"
)

func TestPresenceSetGet(t *testing.T) {
	srv := natsembed.Test(t)
	ok(t, srv, "friend", "add", "--user", "1", "--friend", "2")
	r := ok(t, srv, "presence", "get", "--user", "1")
	if got := strings.TrimSpace(r.stdout); got != `{"user_id":1,"online":false,"status_text":""}` {
		t.Fatalf("presence get = %s", got)
	}
	ok(t, srv, "presence", "set", "--user", "1", "--text", "Playing OCVR")
	r = ok(t, srv, "presence", "get", "--user", "1")
	if got := strings.TrimSpace(r.stdout); got != `{"user_id":1,"online":false,"status_text":"Playing OCVR"}` {
		t.Fatalf("presence get = %s", got)
	}
	long := strings.Repeat("x", presence.MaxStatusText+1)
	if r := ctl(t, "--nats-url", srv.ClientURL(), "presence", "set", "--user", "1", "--text", long); r.code != 2 {
		t.Fatalf("oversize text: %s", r)
	}
	if r := ctl(t, "--nats-url", srv.ClientURL(), "presence", "get", "--user", "0"); r.code != 2 {
		t.Fatalf("bad user: %s", r)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConnect runs `ocvrctl connect` against a real gateway and ticketsvc:
// it prints ready, subscribed and a published event as JSON lines.
func TestConnect(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	c.Channel("ch_general", 1)
	u := c.NewUser(1, "Alice")
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- runEnv(ctx, []string{"connect", "--session", u.Token, "--subscribe", "ch_general",
			"--ticket-url", c.TicketURLs()[0], "--ws-url", c.WSURLs()[0]}, &out, &errb, func(string) string { return "" })
	}()
	clustertest.Eventually(t, 10*time.Second, "subscribed printed", func() bool {
		return strings.Contains(out.String(), `{"type":"subscribed","data":{"channel_id":"ch_general"}}`)
	})
	if !strings.HasPrefix(out.String(), `{"type":"ready","data":{"connection_id":"conn_`) {
		t.Fatalf("first line is not ready: %s", out.String())
	}
	r := ctl(t, "--nats-url", c.NATSURLs[0], "publish", "message-create", "--channel", "ch_general", "--author", "2", "--name", "Bob", "--content", "hello", "--id", "msg_x")
	if r.code != 0 {
		t.Fatal(r)
	}
	clustertest.Eventually(t, 10*time.Second, "message printed", func() bool {
		return strings.Contains(out.String(), `{"type":"message_create","data":{"id":"msg_x","channel_id":"ch_general"`)
	})
	// An event type the gateway does not know is delivered, byte for byte
	// (a positioned event, published through the stream, carries its
	// position in additive top-level fields after data: the frame's bytes
	// up to its last brace are the publisher's).
	frame := `{"type":"channel_update","data":{"channel_id":"ch_general", "name":"General","topic":"Welcome!"}}`
	if r := ctl(t, "--nats-url", c.NATSURLs[0], "publish", "raw", "--channel", "ch_general", "--frame", frame); r.code != 0 {
		t.Fatal(r)
	}
	clustertest.Eventually(t, 10*time.Second, "unknown event type printed", func() bool {
		return strings.Contains(out.String(), "\n"+strings.TrimSuffix(frame, "}"))
	})
	// --core: the same bytes, live, without a position.
	if r := ctl(t, "--nats-url", c.NATSURLs[0], "publish", "raw", "--core", "--channel", "ch_general", "--frame", frame); r.code != 0 {
		t.Fatal(r)
	}
	clustertest.Eventually(t, 10*time.Second, "core event printed", func() bool {
		return strings.Contains(out.String(), "\n"+frame+"\n")
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	// A revoked session: connect is refused (exit 5) with one line.
	if err := c.Sessions.Revoke(context.Background(), u.Session.ID, "test"); err != nil {
		t.Fatal(err)
	}
	r = ctl(t, "connect", "--session", u.Token, "--ticket-url", c.TicketURLs()[0], "--ws-url", c.WSURLs()[0])
	if r.code != exitRefused || !strings.Contains(r.stderr, "401") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("revoked session: %s", r)
	}
}

// TestAdvisoriesFromGateway: a payload a real gateway refuses reaches no
// client, and `ocvrctl advisories` says which pod refused it and why.
func TestAdvisoriesFromGateway(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	c.Channel("ch_general", 1)
	u := c.NewUser(1, "Alice")
	conn, err := c.Dial(u, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	probe := clustertest.NewProbe(u, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Subscribe(ctx, "ch_general"); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, "subscribed", func() bool { return probe.Count("subscribed") == 1 })

	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runEnv(ctx, []string{"--nats-url", c.NATSURLs[0], "advisories", "--count", "1"}, &out, &errb, func(string) string { return "" })
	}()
	clustertest.Eventually(t, 10*time.Second, "listening", func() bool { return errb.String() == "listening on ocvr.advisory.rejected\n" })

	frame := `{"type":"session_revoked","data":{"reason":"forged"}}`
	if r := ctl(t, "--nats-url", c.NATSURLs[0], "publish", "raw", "--force", "--channel", "ch_general", "--frame", frame); r.code != 0 {
		t.Fatal(r)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d, stderr %s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no advisory; stdout %q", out.String())
	}
	want := " ocvr.channel.ch_general: invalid event: session_revoked: may only be published on a user subject | 53 bytes: " + frame + "\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Errorf("advisory line %q, want it to end with %q", out.String(), want)
	}
	if n := probe.Count("session_revoked"); n != 0 || probe.Closed() {
		t.Errorf("the refused frame reached the client (%d, closed %v)", n, probe.Closed())
	}
}
