package protocol_test

import (
	"testing"
	"unicode/utf8"

	"github.com/ocvr/realtime/pkg/protocol"
)

// FuzzDecodeClientFrame: whatever a client sends, DecodeClientFrame either
// returns a frame whose channel id is safe to put in a NATS subject, or an
// INVALID_MESSAGE error with a message. `go test` runs the seeds; `go test
// -fuzz FuzzDecodeClientFrame` explores further.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"heartbeat"}`,
		`{"type":"subscribe","data":{"channel_id":"ch_general"}}`,
		`{"type":"typing","data":{"channel_id":"ch.>"}}`,
		`{"type":"unsubscribe","data":{"channel_id":"a\u002eb"}}`,
		`{"type":"subscribe","data":{"channel_id":"x","channel_id":"*"}}`,
		`{"TYPE":"subscribe","DATA":{"CHANNEL_ID":"x"}}`,
		`null`, `[]`, ``, "\xff", `{"type":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cf, perr := protocol.DecodeClientFrame(b)
		if perr != nil {
			if perr.Code != protocol.CodeInvalidMessage || perr.Message == "" || !utf8.ValidString(perr.Message) {
				t.Fatalf("bad error %+v", perr)
			}
			return
		}
		switch cf.Type {
		case protocol.TypeHeartbeat:
			if cf.ChannelID != "" {
				t.Fatalf("heartbeat with channel %q", cf.ChannelID)
			}
		case protocol.TypeSubscribe, protocol.TypeUnsubscribe, protocol.TypeTyping:
			if !protocol.ValidChannelID(cf.ChannelID) {
				t.Fatalf("accepted channel id %q from %q", cf.ChannelID, b)
			}
		default:
			t.Fatalf("accepted type %q from %q", cf.Type, b)
		}
	})
}
