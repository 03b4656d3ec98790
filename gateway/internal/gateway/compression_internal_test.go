package gateway

import (
	"strings"
	"testing"

	"github.com/ocvr/realtime/pkg/protocol"
)

// TestEventCompressedOncePerPod: an event delivered to many sockets that
// negotiated compression is compressed once — every one of them queues the
// very same bytes — and the sockets that did not get the uncompressed
// frame; with compression off nobody gets a compressed form.
func TestEventCompressedOncePerPod(t *testing.T) {
	data := protocol.MustEncode(protocol.TypeMessageCreate, protocol.MessageCreate{
		ID: "msg_1", ChannelID: "ch_a", Author: protocol.Author{ID: 7, DisplayName: "Ada"},
		Content: strings.Repeat("the lobby opens at eight, bring the headset ", 4), CreatedAt: 1765104000,
	})
	small := protocol.MustEncode(protocol.TypeMessageDelete, protocol.MessageDelete{ID: "msg_1", ChannelID: "ch_a"})
	for _, tc := range []struct {
		name        string
		compression bool
		frame       []byte
		wantZ       bool
	}{
		{"compression on", true, data, true},
		{"a frame below the minimum size", true, small, false},
		{"compression off", false, data, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testGateway(t, func(c *Config) { c.Compression = tc.compression })
			top := &topic{scope: protocol.ScopeChannel, channelID: "ch_a"}
			ev, ok := g.hub.check(top, "ocvr.channel.ch_a", tc.frame, nil, func(_, reason string, _ []byte) { t.Fatal(reason) })
			if !ok {
				t.Fatal("event refused")
			}
			var zipped []*conn
			for i := 0; i < 3; i++ {
				c := heldConn(g, int64(i+1), "ses_z")
				c.deflate = true
				zipped = append(zipped, c)
			}
			plain := heldConn(g, 9, "ses_p")
			for _, c := range append(zipped, plain) {
				ev.deliver(c)
			}
			first := zipped[0].queue[0].z
			if (first != nil) != tc.wantZ {
				t.Fatalf("compressed form: %v, want %v", first != nil, tc.wantZ)
			}
			for _, c := range zipped[1:] {
				z := c.queue[0].z
				if first != nil && (len(z) != len(first) || &z[0] != &first[0]) {
					t.Fatal("a socket got its own compression of the event")
				}
			}
			if f := plain.queue[0]; f.z != nil || &f.data[0] != &tc.frame[0] {
				t.Fatal("the plain socket did not get the event's own bytes")
			}
		})
	}
}
