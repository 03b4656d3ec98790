package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ocvr/realtime/gateway/internal/gateway"
	"github.com/ocvr/realtime/pkg/protocol"
)

// TestHostileInput: each malformed client frame gets INVALID_MESSAGE, no
// channel id ever reaches a NATS subject, and the connection keeps working.
func TestHostileInput(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.FrameRate, c.FrameBurst = 1000, 1000 })
	e.channel("ch_x", 1)
	e.channel("ch_secret", 2)
	c := e.dial(e.user(1, "Alice"))
	ctx := context.Background()

	badIDs := map[string]string{
		"subject wildcard tail": `"ch.>"`,
		"star":                  `"*"`,
		"gt":                    `">"`,
		"space":                 `"a b"`,
		"dot":                   `"a.b"`,
		"65 characters":         `"` + strings.Repeat("a", 65) + `"`,
		"non-ASCII":             `"ch_ünïcödé"`,
		"escaped non-ASCII":     `"ch_\u00e9"`,
		"emoji":                 `"ch_🎉"`,
		"empty":                 `""`,
		"null":                  `null`,
		"number":                `42`,
		"object":                `{"id":"ch_x"}`,
		"array":                 `["ch_x"]`,
		"bool":                  `true`,
		"newline":               `"ch_x\n"`,
		"NUL":                   `"ch_x\u0000"`,
		"tab":                   `"ch\tx"`,
		"percent":               `"ch%2Ex"`,
		"slash":                 `"ch/x"`,
	}
	for _, typ := range []string{protocol.TypeSubscribe, protocol.TypeUnsubscribe, protocol.TypeTyping} {
		for name, id := range badIDs {
			t.Run(typ+"/"+name, func(t *testing.T) {
				mustNoErr(t, c.SendRaw(ctx, []byte(`{"type":"`+typ+`","data":{"channel_id":`+id+`}}`)))
				expectError(t, c, protocol.CodeInvalidMessage, "")
				alive(t, c)
			})
		}
	}

	frames := map[string]string{
		"invalid JSON":          `{"type":"subscribe","data":{"channel_id":"ch_x"}`,
		"not JSON":              `hello`,
		"trailing garbage":      `{"type":"heartbeat"} x`,
		"empty frame":           ``,
		"whitespace":            "  \n",
		"JSON null":             `null`,
		"JSON array":            `[{"type":"heartbeat"}]`,
		"JSON string":           `"heartbeat"`,
		"invalid UTF-8":         "{\"type\":\"subscribe\",\"data\":{\"channel_id\":\"ch_\xff\xfe\"}}",
		"invalid UTF-8 outside": "{\"type\":\"heartbeat\",\"x\":\"\xc3\x28\"}",
		"unknown type":          `{"type":"subscribe_all","data":{"channel_id":"ch_x"}}`,
		"type case":             `{"type":"SUBSCRIBE","data":{"channel_id":"ch_x"}}`,
		"server type":           `{"type":"message_create","data":{"id":"m","channel_id":"ch_x"}}`,
		"type not a string":     `{"type":1}`,
		"type null":             `{"type":null}`,
		"missing type":          `{"data":{"channel_id":"ch_x"}}`,
		"missing data":          `{"type":"subscribe"}`,
		"data null":             `{"type":"typing","data":null}`,
		"data a string":         `{"type":"subscribe","data":"ch_x"}`,
		"data an array":         `{"type":"unsubscribe","data":["ch_x"]}`,
		"missing channel_id":    `{"type":"subscribe","data":{}}`,
		"misspelt channel_id":   `{"type":"subscribe","data":{"channelId":"ch_x"}}`,
		"deeply nested":         `{"type":"subscribe","data":{"channel_id":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}}`,
	}
	for name, raw := range frames {
		t.Run("frame/"+name, func(t *testing.T) {
			mustNoErr(t, c.SendRaw(ctx, []byte(raw)))
			expectError(t, c, protocol.CodeInvalidMessage, "")
			alive(t, c)
		})
	}

	t.Run("binary frame", func(t *testing.T) {
		ws := e.rawReady(t, e.user(1, "Alice"))
		mustNoErr(t, ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"heartbeat"}`)))
		f := rawRead(t, ws)
		var pe protocol.Error
		_ = json.Unmarshal(f.Data, &pe)
		if f.Type != protocol.TypeError || pe.Code != protocol.CodeInvalidMessage {
			t.Fatalf("got %s %s", f.Type, f.Data)
		}
		mustNoErr(t, ws.Write(ctx, websocket.MessageText, []byte(`{"type":"heartbeat"}`)))
		if f := rawRead(t, ws); f.Type != protocol.TypeHeartbeatAck {
			t.Fatalf("got %s", f.Type)
		}
	})

	// Nothing hostile became a subscription: only the user and broadcast
	// subjects (of two connections) and no channel.
	if got := e.metric("ocvr_gateway_bus_subscriptions"); got != 2 {
		t.Errorf("bus_subscriptions = %v, want 2", got)
	}
	if got := e.metric("ocvr_gateway_subscriptions"); got != 0 {
		t.Errorf("subscriptions = %v, want 0", got)
	}
	// A wildcard would have caught this; the connection gets nothing, and
	// still subscribes normally.
	_, pub := e.backend()
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_secret", 1)))
	quiet(t, c, 100*time.Millisecond)
	subscribe(t, c, "ch_x")
	mustNoErr(t, pub.MessageCreated(ctx, msg("ch_x", 2)))
	expectSeq(t, c, 2)
	if got := e.metric(label("ocvr_gateway_frames_in_total", "type", "invalid")); got < float64(3*len(badIDs)+len(frames)+1) {
		t.Errorf("frames_in_total{invalid} = %v", got)
	}
}
