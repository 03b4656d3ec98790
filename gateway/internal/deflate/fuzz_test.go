package deflate

import (
	"errors"
	"io"
	"testing"
)

// chunks reads in in pieces of n bytes (1 + n%64), as a socket may.
type chunks struct {
	in []byte
	n  int
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.in)
	c.in = c.in[n:]
	return n, nil
}

// FuzzReader feeds arbitrary client bytes (garbage, bombs, torn frames)
// through a Reader in arbitrary pieces: it never panics, its output is
// whole frames, none of which carries more than limit+1 payload bytes, and
// it stops at its first refusal. `go test` runs the seeds;
// scripts/fuzz.sh explores.
func FuzzReader(f *testing.F) {
	f.Add(clientFrame(true, true, 1, compressedBytes(chat), 1), uint8(3))
	f.Add(clientFrame(true, false, 1, []byte(chat), 1), uint8(0))
	f.Add(append(clientFrame(false, true, 1, []byte{0x4a}, 9), clientFrame(true, false, 0, []byte{0x1, 0x0}, 2)...), uint8(1))
	f.Add(clientFrame(true, true, 1, compressedBytes(string(make([]byte, 1<<16))), 5), uint8(63))
	f.Add([]byte{0xC1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, uint8(7))
	const limit = 256
	f.Fuzz(func(t *testing.T, in []byte, n uint8) {
		out, err := io.ReadAll(NewInflater(limit).NewReader(&chunks{in, 1 + int(n%64)}))
		if err != nil && !errors.Is(err, ErrTooBig) && !errors.Is(err, ErrProtocol) {
			t.Fatalf("unexpected error %v", err)
		}
		// Inflation is bounded per message: a message takes 6 input bytes
		// at least and is handed on with limit+1 payload bytes at most.
		if max := len(in) + (len(in)/6+1)*(limit+1+14); len(out) > max {
			t.Fatalf("%d bytes in, %d out", len(in), len(out))
		}
		for b := out; len(b) > 0; {
			size, ok := frameSize(b)
			if !ok {
				break // the input's own last frame, torn
			}
			if op := b[0] & 0x0F; b[0]&0x70 == 0x40 && (op == 1 || op == 2) {
				t.Fatalf("a compressed message was handed on as it was: % x", b[:2])
			}
			b = b[size:]
		}
	})
}

// frameSize is the length of the frame b starts with; ok is false when b
// holds less.
func frameSize(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	h, n := 2, uint64(b[1]&0x7F)
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, false
		}
		h, n = 4, uint64(b[2])<<8|uint64(b[3])
	case 127:
		if len(b) < 10 {
			return 0, false
		}
		h, n = 10, 0
		for _, c := range b[2:10] {
			n = n<<8 | uint64(c)
		}
	}
	if b[1]&0x80 != 0 {
		h += 4
	}
	if h > len(b) || n > uint64(len(b)-h) {
		return 0, false
	}
	return h + int(n), true
}

func compressedBytes(s string) []byte {
	return NewEncoder(0, 1).Compress([]byte(s))
}

// FuzzRoundTrip: any payload, compressed by the Encoder and sent in two
// fragments split anywhere, reads back as itself (or is refused past the
// limit).
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(chat), uint16(10))
	f.Add(make([]byte, 5000), uint16(0))
	const limit = 4096
	e := NewEncoder(0, DefaultLevel)
	f.Fuzz(func(t *testing.T, payload []byte, split uint16) {
		z := e.Compress(payload)
		if z == nil {
			return
		}
		s := int(split) % (len(z) + 1)
		in := append(clientFrame(false, true, 1, z[:s], 0x01020304), clientFrame(true, false, 0, z[s:], 0x0a0b0c0d)...)
		out, err := io.ReadAll(NewInflater(limit).NewReader(&chunks{in, 1 + s%64}))
		if len(payload) > limit {
			if !errors.Is(err, ErrTooBig) {
				t.Fatalf("%d bytes: err %v, want ErrTooBig", len(payload), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got := readFrames(t, out)
		if len(got) != 1 || got[0].payload != string(payload) || got[0].b0 != 0x81 {
			t.Fatalf("read back %.100q", got)
		}
	})
}
