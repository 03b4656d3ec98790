package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/ticket"
)

// FuzzGatewayFrames drives arbitrary client frames (text or binary)
// through a real connection of a real gateway on an embedded NATS — one
// that negotiated permessage-deflate: frames of 64 bytes or more go
// compressed, the others plain, and the 4 KiB limit applies after
// inflation —, and
// checks each answer against a model of the protocol: every frame gets
// exactly the documented answer — heartbeat_ack, subscribed, unsubscribed
// {reason: client}, nothing (typing), or one error frame with the
// documented code — a frame over 4 KiB closes with 1009, the connection
// survives everything else, and no subject the gateway subscribes to,
// publishes on or looks up in KV is outside the id grammar.
//
// `go test` runs the seeds and testdata/fuzz/FuzzGatewayFrames;
// scripts/fuzz.sh explores further.
func FuzzGatewayFrames(f *testing.F) {
	for _, s := range []string{
		`{"type":"heartbeat"}`,
		`{"type":"subscribe","data":{"channel_id":"ch_a"}}`,
		`{"type":"subscribe","data":{"channel_id":"ch_b"}}`,
		`{"type":"subscribe","data":{"channel_id":"ch_none"}}`,
		`{"type":"typing","data":{"channel_id":"ch_a"}}`,
		`{"type":"unsubscribe","data":{"channel_id":"ch_a"}}`,
		`{"type":"subscribe","data":{"channel_id":"ch.>"}}`,
		`{"type":"subscribe","data":{"channel_id":"*"}}`,
		`{"type":"subscribe","data":{"channel_id":"Ch_A"}}`,
		`{"type":"subscribe","data":{"channel_id":"ch_a","channel_id":"ch_b"}}`,
		`{"TYPE":"subscribe","DATA":{"CHANNEL_ID":"ch_a"}}`,
		`{"type":"typing","data":{"channel_id":"ch_b"}}`,
		`{"type":"subscribe","data":{"channel_id":"` + strings.Repeat("a", 5000) + `"}}`,
		`null`, `[]`, ``, "\xff", `{"type":1}`, `{"type":"message_create","data":{}}`,
	} {
		f.Add(false, []byte(s))
	}
	f.Add(true, []byte(`{"type":"heartbeat"}`))
	e := newEnv(f, func(c *gateway.Config) { c.FrameRate, c.FrameBurst, c.Compression = 1e6, 1<<20, true })
	e.channel("ch_a", 1)
	e.channel("ch_b", 2)
	spy := e.spy(f)
	alice := e.user(1, "Alice")
	var (
		ws   *websocket.Conn
		subs map[string]bool // the model: ch_a subscribed or not
	)
	f.Cleanup(func() {
		if ws != nil {
			ws.CloseNow()
		}
	})
	f.Fuzz(func(t *testing.T, binary bool, frame []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		t.Cleanup(func() {
			if t.Failed() && ws != nil { // start the next input afresh
				ws.CloseNow()
				ws = nil
			}
		})
		if ws == nil {
			tk, err := e.tickets.Mint(ctx, ticketIdentity(alice))
			mustNoErr(t, err)
			var resp *http.Response
			ws, resp, err = websocket.Dial(ctx, e.wsURL+"?ticket="+tk, &websocket.DialOptions{
				CompressionMode: websocket.CompressionNoContextTakeover, CompressionThreshold: 64,
			})
			mustNoErr(t, err)
			if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
				t.Fatal("compression not negotiated")
			}
			ws.SetReadLimit(1 << 20)
			if f := fuzzRead(t, ctx, ws); f.Type != protocol.TypeReady {
				t.Fatalf("first frame %s", f.Type)
			}
			subs = map[string]bool{}
		}
		typ := websocket.MessageText
		if binary {
			typ = websocket.MessageBinary
		}
		mustNoErr(t, ws.Write(ctx, typ, frame))
		if len(frame) > 4096 {
			_, _, err := ws.Read(ctx)
			if code := websocket.CloseStatus(err); code != protocol.CloseMessageTooBig {
				t.Fatalf("%d-byte frame: %v, want close 1009", len(frame), err)
			}
			ws.CloseNow()
			ws = nil
			spy.check(t)
			return
		}
		// The model's answer.
		var want []string // "type" or "error:CODE"
		cf, perr := protocol.DecodeClientFrame(frame)
		switch {
		case binary || perr != nil:
			want = []string{"error:" + protocol.CodeInvalidMessage}
		case cf.Type == protocol.TypeHeartbeat:
			want = []string{protocol.TypeHeartbeatAck}
		case cf.Type == protocol.TypeSubscribe:
			switch cf.ChannelID {
			case "ch_a":
				want = []string{protocol.TypeSubscribed}
				subs["ch_a"] = true
			case "ch_b":
				want = []string{"error:" + protocol.CodeNotMember}
			default:
				want = []string{"error:" + protocol.CodeChannelNotFound}
			}
		case cf.Type == protocol.TypeUnsubscribe:
			if subs[cf.ChannelID] {
				want = []string{protocol.TypeUnsubscribed}
				delete(subs, cf.ChannelID)
			} else {
				want = []string{"error:" + protocol.CodeNotSubscribed}
			}
		case cf.Type == protocol.TypeTyping:
			if !subs[cf.ChannelID] {
				want = []string{"error:" + protocol.CodeNotSubscribed}
			}
		default:
			t.Fatalf("DecodeClientFrame returned type %q", cf.Type)
		}
		// A heartbeat fences the answer: frames are answered in order.
		mustNoErr(t, ws.Write(ctx, websocket.MessageText, []byte(`{"type":"heartbeat"}`)))
		want = append(want, protocol.TypeHeartbeatAck)
		for i, w := range want {
			got := fuzzRead(t, ctx, ws)
			desc := got.Type
			if got.Type == protocol.TypeError {
				var pe protocol.Error
				if err := json.Unmarshal(got.Data, &pe); err != nil || pe.Message == "" {
					t.Fatalf("error frame %s without a code and message", got.Data)
				}
				desc = "error:" + pe.Code
				if pe.ChannelID != "" && !protocol.ValidChannelID(pe.ChannelID) {
					t.Fatalf("error names invalid channel %q", pe.ChannelID)
				}
			}
			if desc != w {
				t.Fatalf("answer %d to %q: got %s %s, want %s (all: %v)", i, frame, desc, got.Data, w, want)
			}
			if got.Type == protocol.TypeSubscribed || got.Type == protocol.TypeUnsubscribed {
				var ref struct {
					ChannelID string `json:"channel_id"`
					Reason    string `json:"reason"`
				}
				_ = json.Unmarshal(got.Data, &ref)
				if ref.ChannelID != cf.ChannelID || (got.Type == protocol.TypeUnsubscribed && ref.Reason != protocol.ReasonClient) {
					t.Fatalf("%s %s, want channel %q", got.Type, got.Data, cf.ChannelID)
				}
			}
		}
		spy.check(t)
		e.checkGatewaySubs(t)
	})
}

// fuzzRead reads one frame or fails.
func fuzzRead(t *testing.T, ctx context.Context, ws *websocket.Conn) protocol.Frame {
	t.Helper()
	typ, b, err := ws.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			t.Fatalf("connection closed: %d %s", ce.Code, ce.Reason)
		}
		t.Fatalf("read: %v", err)
	}
	var f protocol.Frame
	if typ != websocket.MessageText || json.Unmarshal(b, &f) != nil {
		t.Fatalf("server sent %v %q", typ, b)
	}
	return f
}

func ticketIdentity(u user) ticket.Identity {
	return ticket.Identity{SessionID: u.sess.ID, UserID: u.id, DisplayName: u.name}
}
