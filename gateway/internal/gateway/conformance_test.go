package gateway_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/protocol/protocoltest"
)

// The golden conformance tests: every example of the protocol document
// (pkg/protocol/testdata/frames.json), published by a plain NATS client as
// a backend written from the document would, reaches a subscribed client
// byte for byte; every client → server example is answered as the document
// says. pkg/clustertest runs the same across two gateway processes, and
// pkg/js through the TypeScript client in Node and Chromium.

// docUser is the document's user (author.id, user_id 12345) and the
// display name of its typing_start example.
const (
	docUserID  = 12345
	docName    = "TyperName"
	docChannel = "ch_abc123"
)

// busSubject is the subject a backend publishes ex on for user.
func busSubject(ex protocoltest.Example, user int64) string {
	if ex.Subject == "channel" {
		return "ocvr.channel." + ex.ChannelID()
	}
	return "ocvr.user." + strconv.FormatInt(user, 10)
}

func TestDocumentEventsReachClientsByteForByte(t *testing.T) {
	e := newEnv(t, nil)
	e.channel(docChannel, docUserID, 2)
	c := e.dial(e.user(docUserID, docName))
	subscribe(t, c, docChannel)
	nc, _ := e.backend()

	var revoked protocoltest.Example
	n := 0
	for _, ex := range protocoltest.Examples(t) {
		if ex.Direction != "server" || ex.Subject == "" {
			continue
		}
		if ex.Type() == protocol.TypeSessionRevoked {
			revoked = ex // last: it ends the connection
			continue
		}
		n++
		for _, subject := range []string{busSubject(ex, docUserID), "ocvr.broadcast"} {
			t.Run(ex.Name+"@"+subject, func(t *testing.T) {
				mustNoErr(t, nc.Publish(subject, ex.Wire()))
				f := next(t, c)
				if string(f.Raw) != string(ex.Wire()) {
					t.Fatalf("received %s\n      want %s", f.Raw, ex.Wire())
				}
			})
		}
	}
	if n < 9 || revoked.Name == "" {
		t.Fatalf("%d bus examples and session_revoked %q: frames.json lost its examples", n, revoked.Name)
	}
	mustNoErr(t, nc.Publish(busSubject(revoked, docUserID), revoked.Wire()))
	frames, _ := closed(t, c, protocol.CloseSessionRevoked, 5*time.Second)
	if len(frames) != 1 || string(frames[0].Raw) != string(revoked.Wire()) {
		t.Fatalf("before 4003: %d frames, want exactly %s", len(frames), revoked.Wire())
	}
	if got := e.metric("ocvr_gateway_invalid_bus_payloads_total"); got != 0 {
		t.Fatalf("%v payloads refused", got)
	}
}

func TestDocumentClientFramesAnswered(t *testing.T) {
	e := newEnv(t, nil)
	e.channel(docChannel, docUserID, 2)
	typer := e.dial(e.user(docUserID, docName))
	other := e.dial(e.user(2, "Other"))
	subscribe(t, other, docChannel)
	examples := map[string][]byte{}
	for _, ex := range protocoltest.Examples(t) {
		if ex.Document {
			examples[ex.Name] = ex.Wire()
		}
	}
	send := func(name string) {
		t.Helper()
		b, ok := examples[name]
		if !ok {
			t.Fatalf("frames.json has no document example %q", name)
		}
		mustNoErr(t, typer.SendRaw(context.Background(), b))
	}

	send("heartbeat")
	f := expect(t, typer, protocol.TypeHeartbeatAck)
	var ack protocol.HeartbeatAck
	mustNoErr(t, f.Decode(&ack))
	if now := time.Now().Unix(); ack.ServerTime < now-5 || ack.ServerTime > now+5 {
		t.Fatalf("heartbeat_ack server_time %d, want unix seconds near %d", ack.ServerTime, now)
	}

	send("subscribe")
	if f := expect(t, typer, protocol.TypeSubscribed); string(f.Raw) != `{"type":"subscribed","data":{"channel_id":"`+docChannel+`"}}` {
		t.Fatalf("subscribed %s", f.Raw)
	}

	// typing reaches the channel's other subscribers as the document's own
	// typing_start example.
	send("typing")
	if f := expect(t, other, protocol.TypeTypingStart); string(f.Raw) != string(examples["typing_start"]) {
		t.Fatalf("typing_start %s\n       want %s", f.Raw, examples["typing_start"])
	}

	send("unsubscribe")
	if f := expect(t, typer, protocol.TypeUnsubscribed); string(f.Raw) != `{"type":"unsubscribed","data":{"channel_id":"`+docChannel+`","reason":"client"}}` {
		t.Fatalf("unsubscribed %s", f.Raw)
	}
	alive(t, typer)
}

// TestDocumentInvalidTicket: a bad ticket is answered with the document's
// own error example, then close 4001.
func TestDocumentInvalidTicket(t *testing.T) {
	e := newEnv(t, nil)
	var want []byte
	for _, ex := range protocoltest.Examples(t) {
		if ex.Document && ex.Type() == protocol.TypeError {
			want = ex.Wire()
		}
	}
	for _, query := range []string{"ticket=wst_abc123", "", "ticket=wst_" + strings.Repeat("A", 43)} {
		ws, _, err := e.rawDial(t, query, nil)
		mustNoErr(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, b, err := ws.Read(ctx)
		mustNoErr(t, err)
		if string(b) != string(want) {
			t.Fatalf("%q: error frame %s, want %s", query, b, want)
		}
		_, _, err = ws.Read(ctx)
		cancel()
		if code := websocket.CloseStatus(err); code != protocol.CloseInvalidTicket {
			t.Fatalf("%q: closed with %d (%v), want 4001", query, code, err)
		}
	}
}
