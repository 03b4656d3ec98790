package protocol

import "testing"

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

func BenchmarkValidateEvent(b *testing.B) {
	msg := MustEncode(TypeMessageCreate, MessageCreate{
		ID: "msg_0123456789", ChannelID: "ch_general", Author: Author{ID: 42, DisplayName: "Alice"},
		Content:   "a typical chat message of a few dozen words, about two hundred and fifty bytes on the wire once framed, which is the size the fan-out benchmarks use",
		CreatedAt: 1703523600,
	})
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ValidateEvent(ScopeChannel, "ch_general", msg); err != nil {
			b.Fatal(err)
		}
	}
}
