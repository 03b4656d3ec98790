package deflate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/flate"
)

func TestNegotiate(t *testing.T) {
	for offer, want := range map[string]bool{
		"":                   false,
		"permessage-deflate": true,
		"permessage-deflate; client_max_window_bits":                                 true, // Chromium's offer
		"permessage-deflate; client_no_context_takeover; server_no_context_takeover": true, // coder/websocket's
		"permessage-deflate; client_max_window_bits=10":                              true,
		"permessage-deflate; server_max_window_bits=15":                              true,
		"permessage-deflate; server_max_window_bits=10":                              false, // cannot bound the encoder's window
		"permessage-deflate; server_max_window_bits=10, permessage-deflate":          true,  // the fallback offer
		"permessage-deflate; foo":                                                    false,
		"permessage-deflate; client_max_window_bits=16":                              false,
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover": false,
		"x-webkit-deflate-frame":                                                     false,
		"PerMessage-Deflate ; Client_Max_Window_Bits":                                true,
	} {
		h := http.Header{}
		if offer != "" {
			h.Set("Sec-WebSocket-Extensions", offer)
		}
		if got := Negotiate(h); got != want {
			t.Errorf("Negotiate(%q) = %v, want %v", offer, got, want)
		}
	}
}

// chat is a realistic frame: compressible JSON, not padding.
const chat = `{"type":"message_create","data":{"id":"msg_01HZX3K9QF","channel_id":"ch_7f3a9c","author":{"id":48213,"display_name":"Mira Okafor"},"content":"Are we still meeting in the lobby at 8? I'll bring the new headset so we can test the hand tracking before the match.","created_at":1765104000,"attachments":[]}}`

func TestCompress(t *testing.T) {
	e := NewEncoder(DefaultMinSize, DefaultLevel)
	for _, tc := range []struct {
		name    string
		payload string
		want    bool
	}{
		{"below the minimum size", `{"type":"heartbeat_ack","data":{"server_time":1765104000}}`, false},
		{"chat message", chat, true},
		{"incompressible", randomText(512), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := e.Compress([]byte(tc.payload))
			if (z != nil) != tc.want {
				t.Fatalf("compressed: %v, want %v", z != nil, tc.want)
			}
			if z == nil {
				return
			}
			if len(z) >= len(tc.payload) {
				t.Fatalf("%d bytes compressed to %d", len(tc.payload), len(z))
			}
			got, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(z), strings.NewReader(tail))))
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatal(err)
			}
			if string(got) != tc.payload {
				t.Fatalf("inflated %q", got)
			}
		})
	}
}

func TestSharedCompressesOnce(t *testing.T) {
	e := NewEncoder(DefaultMinSize, DefaultLevel)
	frame := []byte(chat)
	s := e.Share(len(frame))
	z := s.For(frame)
	if z == nil || &s.For(frame)[0] != &z[0] {
		t.Fatal("a second socket did not get the same bytes")
	}
	if s.For(bytes.Clone(frame)) != nil {
		t.Fatal("a Shared compressed a second frame")
	}
	if e.Share(DefaultMinSize-1) != nil || (*Encoder)(nil).Share(1000) != nil {
		t.Fatal("Share below the minimum size, or with compression off")
	}
}

// clientFrame is a masked client frame.
func clientFrame(fin, rsv1 bool, opcode byte, payload []byte, key uint32) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = binary.BigEndian.AppendUint32(b, key)
	for i, c := range payload {
		b = append(b, c^byte(key>>(8*(3-i%4))))
	}
	return b
}

// frame is one frame read back from a Reader's output, unmasked.
type frame struct {
	b0      byte
	payload string
}

func readFrames(t *testing.T, b []byte) []frame {
	t.Helper()
	var out []frame
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("torn header % x", b)
		}
		b0, b1 := b[0], b[1]
		b = b[2:]
		n := uint64(b1 & 0x7F)
		switch n {
		case 126:
			n, b = uint64(binary.BigEndian.Uint16(b)), b[2:]
		case 127:
			n, b = binary.BigEndian.Uint64(b), b[8:]
		}
		var key [4]byte
		if b1&0x80 != 0 {
			copy(key[:], b)
			b = b[4:]
		}
		p := bytes.Clone(b[:n])
		for i := range p {
			p[i] ^= key[i%4]
		}
		b = b[n:]
		out = append(out, frame{b0, string(p)})
	}
	return out
}

func compressed(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, 1)
	_, _ = fw.Write([]byte(s))
	_ = fw.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte(tail))
}

func TestReader(t *testing.T) {
	const limit = 4096
	big := strings.Repeat("a", limit+1)
	z := compressed(t, chat)
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	ping := clientFrame(true, false, 0x9, []byte("hi"), 7)
	for _, tc := range []struct {
		name string
		in   []byte
		want []frame
		err  error
	}{
		{"plain frames pass unchanged", cat(clientFrame(true, false, 1, []byte(`{"type":"heartbeat"}`), 1), ping),
			[]frame{{0x81, `{"type":"heartbeat"}`}, {0x89, "hi"}}, nil},
		{"a compressed message", clientFrame(true, true, 1, z, 0xdeadbeef),
			[]frame{{0x81, chat}}, nil},
		{"between plain frames", cat(ping, clientFrame(true, true, 1, z, 3), clientFrame(true, false, 1, []byte("x"), 4)),
			[]frame{{0x89, "hi"}, {0x81, chat}, {0x81, "x"}}, nil},
		{"fragmented, a ping inside", cat(clientFrame(false, true, 1, z[:5], 5), ping, clientFrame(false, false, 0, z[5:9], 6), clientFrame(true, false, 0, z[9:], 7)),
			[]frame{{0x89, "hi"}, {0x81, chat}}, nil},
		{"two in a row", cat(clientFrame(true, true, 1, z, 1), clientFrame(true, true, 2, compressed(t, "second"), 2)),
			[]frame{{0x81, chat}, {0x82, "second"}}, nil},
		{"the final block form", clientFrame(true, true, 1, finalBlock(t, chat), 9),
			[]frame{{0x81, chat}}, nil},
		{"exactly the limit", clientFrame(true, true, 1, compressed(t, big[:limit]), 1),
			[]frame{{0x81, big[:limit]}}, nil},
		{"a decompression bomb", clientFrame(true, true, 1, compressed(t, strings.Repeat("a", 1<<20)), 1),
			[]frame{{0x81, strings.Repeat("a", limit+1)}}, ErrTooBig},
		{"a compressed message too long to read", clientFrame(true, true, 1, make([]byte, limit+2000), 1),
			[]frame{{0x81, string(make([]byte, limit+1))}}, ErrTooBig},
		{"corrupt deflate data", clientFrame(true, true, 1, []byte{0xff, 0xff, 0xff}, 1),
			[]frame{{0xA1, ""}}, ErrProtocol},
		{"RSV1 on a continuation", cat(clientFrame(false, true, 1, z[:5], 1), clientFrame(true, true, 0, z[5:], 1)),
			[]frame{{0xA1, ""}}, ErrProtocol},
		{"unmasked", []byte{0xC1, 0x01, 0x00},
			[]frame{{0xA1, ""}}, ErrProtocol},
		{"RSV1 on a ping goes to the library", []byte{0xC9, 0x80, 0, 0, 0, 0},
			[]frame{{0xC9, ""}}, nil},
	} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/one_byte_reads=%v", tc.name, chunked), func(t *testing.T) {
				var src io.Reader = bytes.NewReader(tc.in)
				if chunked {
					src = iotest.OneByteReader(src)
				}
				out, err := io.ReadAll(NewInflater(limit).NewReader(src))
				if !errors.Is(err, tc.err) && !(tc.err == nil && err == nil) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				got := readFrames(t, out)
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("frames\n%.300q\nwant\n%.300q", got, tc.want)
				}
			})
		}
	}
}

func finalBlock(t *testing.T, s string) []byte {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, 1)
	_, _ = fw.Write([]byte(s))
	_ = fw.Close()
	return buf.Bytes()
}

// TestReaderHoldsNothingIdle: between messages a Reader keeps no buffer.
func TestReaderHoldsNothingIdle(t *testing.T) {
	in := clientFrame(true, true, 1, compressed(t, chat), 1)
	r := NewInflater(4096).NewReader(bytes.NewReader(in))
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if r.msg != nil || r.out != nil {
		t.Fatal("the Reader kept a buffer after its message")
	}
}

func randomText(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return string(b)
}
