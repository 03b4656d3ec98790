package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ocvr/realtime/gateway/internal/deflate"
	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/protocol"
)

func withCompression(c *gateway.Config) { c.Compression = true }

// TestCompressionNegotiation: the gateway answers a permessage-deflate
// offer (Chromium's, coder/websocket's) with no context takeover both
// ways, declines what it cannot honour, and never answers one it was not
// offered — nor any with compression off.
func TestCompressionNegotiation(t *testing.T) {
	on := newEnv(t, withCompression)
	off := newEnv(t, nil)
	alice := on.user(1, "Alice")
	bob := off.user(2, "Bob")
	for _, tc := range []struct {
		name  string
		e     *env
		u     user
		offer string
		want  string
	}{
		{"Chromium's offer", on, alice, "permessage-deflate; client_max_window_bits", deflate.Response},
		{"coder/websocket's offer", on, alice, "permessage-deflate; client_no_context_takeover; server_no_context_takeover", deflate.Response},
		{"a window the encoder cannot keep", on, alice, "permessage-deflate; server_max_window_bits=9", ""},
		{"no offer", on, alice, "", ""},
		{"compression off", off, bob, "permessage-deflate; client_max_window_bits", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dialWire(t, tc.e.wsURL, tc.e.ticket(tc.u), tc.offer)
			if got := w.resp.Header.Get("Sec-WebSocket-Extensions"); got != tc.want {
				t.Fatalf("extension %q, want %q", got, tc.want)
			}
			if f := w.next(); f.rsv1 || !strings.Contains(f.text(t), `"ready"`) {
				t.Fatalf("first frame rsv1=%v %q", f.rsv1, f.payload)
			}
		})
	}
}

// chatMessage is a realistic message_create: big enough to be compressed.
func chatMessage(ch string) protocol.MessageCreate {
	return protocol.MessageCreate{
		ID: "msg_01HZX3K9QF7T", ChannelID: ch, Author: protocol.Author{ID: 48213, DisplayName: "Mira Okafor"},
		Content:   "Are we still meeting in the lobby at 8? I'll bring the new headset so we can test the hand tracking before the match starts.",
		CreatedAt: 1765104000,
	}
}

// TestCompressedDelivery: clients that negotiated compression and clients
// that did not, on one channel, get byte-identical JSON — the Go client
// inflating it, a plain one reading it as it is — and on the wire a
// negotiated socket gets large events with RSV1 set and small ones plain.
func TestCompressedDelivery(t *testing.T) {
	e := newEnv(t, withCompression)
	e.channel("ch_mix", 1, 2, 3, 4)
	_, pub := e.backend()
	ctx := context.Background()

	zipped := e.dial(e.user(1, "Alice")) // the Go client offers compression by default
	plainConn, err := client.Dial(ctx, e.wsURL, e.ticket(e.user(2, "Bob")), client.Options{Heartbeat: -1, NoCompression: true})
	mustNoErr(t, err)
	t.Cleanup(plainConn.CloseNow)
	subscribe(t, zipped, "ch_mix")
	subscribe(t, plainConn, "ch_mix")
	w := dialWire(t, e.wsURL, e.ticket(e.user(3, "Carol")), "permessage-deflate; client_max_window_bits")
	w.next() // ready
	w.send(0x81, []byte(`{"type":"subscribe","data":{"channel_id":"ch_mix"}}`))
	if f := w.next(); !strings.Contains(f.text(t), `"subscribed"`) {
		t.Fatalf("wire client: %q", f.text(t))
	}
	// The load generator's client (client.Lite) inflates too.
	lite, err := client.DialLite(ctx, e.wsURL, e.ticket(e.user(4, "Dan")), client.LiteOptions{Compression: true})
	mustNoErr(t, err)
	t.Cleanup(func() { lite.CloseNow() })
	liteRead := func() string {
		_ = lite.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := lite.ReadText()
		mustNoErr(t, err)
		return string(b)
	}
	if !lite.Compressed() || !strings.Contains(liteRead(), `"ready"`) {
		t.Fatal("lite client: compression not negotiated, or no ready")
	}
	mustNoErr(t, lite.WriteText([]byte(`{"type":"subscribe","data":{"channel_id":"ch_mix"}}`)))
	if f := liteRead(); !strings.Contains(f, `"subscribed"`) {
		t.Fatalf("lite client: %q", f)
	}
	waitFor(t, 5*time.Second, func() bool {
		m := e.metrics()
		return m[label("ocvr_gateway_compression_negotiated_total", "negotiated", "true")] == 3 &&
			m[label("ocvr_gateway_compression_negotiated_total", "negotiated", "false")] == 1
	})

	mustNoErr(t, pub.PublishToChannel(ctx, "ch_mix", protocol.TypeMessageCreate, chatMessage("ch_mix"), bus.Target{}))
	typing := protocol.TypingStart{ChannelID: "ch_mix", UserID: 9, DisplayName: "Dee"}
	mustNoErr(t, pub.PublishToChannel(ctx, "ch_mix", protocol.TypeTypingStart, typing, bus.Target{}))

	for i, typ := range []string{protocol.TypeMessageCreate, protocol.TypeTypingStart} {
		a, b := expect(t, zipped, typ), expect(t, plainConn, typ)
		if string(a.Raw) != string(b.Raw) {
			t.Fatalf("compressed client got\n%s\nplain client got\n%s", a.Raw, b.Raw)
		}
		f := w.next()
		if got := f.text(t); got != string(b.Raw) {
			t.Fatalf("wire client got %q, want %q", got, b.Raw)
		}
		if wantZ := i == 0; f.rsv1 != wantZ {
			t.Fatalf("%s (%d bytes) sent with rsv1=%v, want %v", typ, len(b.Raw), f.rsv1, wantZ)
		}
		if f.rsv1 && 10*len(f.payload) > 8*len(b.Raw) {
			t.Fatalf("%d bytes compressed to %d", len(b.Raw), len(f.payload))
		}
		if got := liteRead(); got != string(b.Raw) {
			t.Fatalf("lite client got %q", got)
		}
	}
	m := e.metrics()
	if m[label("ocvr_gateway_frame_payload_bytes_total", "encoding", "deflate")] == 0 || m["ocvr_gateway_deflated_source_bytes_total"] == 0 {
		t.Fatalf("compressed bytes not counted: %v", m)
	}
}

// TestCompressedClientFrames: a client's compressed frames are read as the
// plain ones (fragmented too), within the same 4 KiB limit after
// inflation: a decompression bomb is refused with 1009, an invalid
// compressed message fails the connection with 1002.
func TestCompressedClientFrames(t *testing.T) {
	e := newEnv(t, withCompression)
	e.channel("ch_z", 1)
	alice := e.user(1, "Alice")
	open := func(t *testing.T) *wire {
		w := dialWire(t, e.wsURL, e.ticket(alice), "permessage-deflate")
		w.next() // ready
		return w
	}
	t.Run("heartbeat", func(t *testing.T) {
		w := open(t)
		w.send(0xC1, deflated(`{"type":"heartbeat"}`))
		if f := w.next(); !strings.Contains(f.text(t), protocol.TypeHeartbeatAck) {
			t.Fatalf("got %q", f.text(t))
		}
	})
	t.Run("sent with the upgrade request", func(t *testing.T) {
		// Read by the HTTP server before the hijack: inflated all the same.
		w := dialWireEarly(t, e.wsURL, e.ticket(alice), "permessage-deflate", maskedFrame(0xC1, deflated(`{"type":"heartbeat"}`)))
		var got []string
		for i := 0; i < 2; i++ {
			got = append(got, w.next().text(t))
		}
		if !strings.Contains(got[0], `"ready"`) || !strings.Contains(got[1], protocol.TypeHeartbeatAck) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("fragmented subscribe", func(t *testing.T) {
		w := open(t)
		z := deflated(`{"type":"subscribe","data":{"channel_id":"ch_z"}}`)
		w.send(0x41, z[:4]) // RSV1, text, not final
		w.send(0x89, []byte("between"))
		w.send(0x80, z[4:]) // final continuation
		if f := w.read(); f.opcode != 0xA || string(f.payload) != "between" {
			t.Fatalf("pong %v %q", f.opcode, f.payload)
		}
		if f := w.next(); !strings.Contains(f.text(t), `"subscribed"`) {
			t.Fatalf("got %q", f.text(t))
		}
	})
	t.Run("the 4 KiB limit after inflation", func(t *testing.T) {
		w := open(t)
		// Exactly 4096 bytes once inflated: answered (invalid, not too big).
		frame := `{"type":"heartbeat","data":{"pad":"` + strings.Repeat("a", 4096-36-2) + `"}}`
		if len(frame) != 4096 {
			t.Fatalf("frame of %d bytes", len(frame))
		}
		w.send(0xC1, deflated(frame))
		if f := w.next(); !strings.Contains(f.text(t), protocol.TypeHeartbeatAck) && !strings.Contains(f.text(t), protocol.TypeError) {
			t.Fatalf("got %q", f.text(t))
		}
	})
	for _, tc := range []struct {
		name    string
		payload []byte
		code    int
	}{
		{"a decompression bomb", deflated(strings.Repeat("a", 10<<20)), protocol.CloseMessageTooBig},
		{"one byte over", deflated(strings.Repeat("a", 4097)), protocol.CloseMessageTooBig},
		{"invalid deflate data", []byte{0xff, 0xfe, 0xfd, 0xfc}, 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := open(t)
			w.send(0xC1, tc.payload)
			if code := w.closeCode(); code != tc.code {
				t.Fatalf("%d compressed bytes: close %d, want %d", len(tc.payload), code, tc.code)
			}
		})
	}
	// The pod took no harm: a new connection works.
	alive(t, e.dial(alice))
}

// TestCompressedEventsAreValidJSON: channel events (re-encoded with their
// stream position before they are compressed) of varied content reach a
// compressing client intact.
func TestCompressedEventsAreValidJSON(t *testing.T) {
	e := newEnv(t, withCompression)
	e.channel("ch_j", 1)
	_, pub := e.backend()
	c := e.dial(e.user(1, "Alice"))
	subscribe(t, c, "ch_j")
	for i := 0; i < 20; i++ {
		m := chatMessage("ch_j")
		m.Content = strings.Repeat("déjà vu ", i+1)
		mustNoErr(t, pub.PublishToChannel(context.Background(), "ch_j", protocol.TypeMessageCreate, m, bus.Target{}))
		f := expect(t, c, protocol.TypeMessageCreate)
		var got protocol.MessageCreate
		if err := json.Unmarshal(f.Data, &got); err != nil || got.Content != m.Content {
			t.Fatalf("event %d: %v %q", i, err, f.Raw)
		}
	}
}
