package protocol

import (
	"encoding/json"
	"testing"
)

// Micro-benchmarks of the per-frame and per-event paths. CI runs them with
// -benchtime=1x so they cannot rot; BENCHMARKS.md has the figures.

func BenchmarkDecodeClientFrame(b *testing.B) {
	for _, bc := range []struct{ name, frame string }{
		{"heartbeat", `{"type":"heartbeat"}`},
		{"subscribe", `{"type":"subscribe","data":{"channel_id":"ch_general"}}`},
		{"invalid", `{"type":"subscribe","data":{"channel_id":"ch.>"}}`},
	} {
		frame := []byte(bc.frame)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_, _ = DecodeClientFrame(frame)
			}
		})
	}
}

// BenchmarkValidateEvent: the bus path, once per event per pod. "legacy"
// is byte for byte the payload the benchmark used before ValidateEvent
// became a one-pass router (BENCHMARKS.md compares the two); json.Valid
// on the same bytes is encoding/json's one pass, the yardstick.
func BenchmarkValidateEvent(b *testing.B) {
	const content = "a typical chat message of a few dozen words, about two hundred and fifty bytes on the wire once framed, which is the size the fan-out benchmarks use"
	msg := MustEncode(TypeMessageCreate, MessageCreate{
		ID: "msg_0123456789", ChannelID: "ch_general", Author: Author{ID: 42, DisplayName: "Alice"},
		Content: content, CreatedAt: 1703523600,
	})
	legacy := []byte(`{"type":"message_create","data":{"id":"msg_0123456789","channel_id":"ch_general","author":{"id":42,"display_name":"Alice"},"content":"` + content + `","created_at":"2026-11-29T12:00:00Z"}}`)
	for _, bc := range []struct {
		name    string
		scope   Scope
		payload []byte
	}{
		{"message_create", ScopeChannel, msg},
		{"legacy", ScopeChannel, legacy},
		{"presence_update", ScopeUser, []byte(`{"type":"presence_update","data":{"user_id":12345,"presence":"online","status_text":"Playing OCVR"}}`)},
		{"unknown_type", ScopeChannel, []byte(`{"type":"channel_update","data":{"channel_id":"ch_general","name":"General","topic":"Welcome!"}}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.payload)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := ValidateEvent(bc.scope, "ch_general", bc.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if !json.Valid(msg) {
				b.Fatal("invalid")
			}
		}
	})
}
