package deflate

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/flate"
)

// tail ends every sync-flushed deflate stream; RFC 7692 §7.2.1 has the
// sender drop it and the receiver put it back.
const tail = "\x00\x00\xff\xff"

// DefaultMinSize is the smallest frame the gateway compresses: below it the
// deflate block's own overhead eats most of the gain (a heartbeat_ack, an
// error, a typing indicator go as they are).
const DefaultMinSize = 128

// DefaultLevel is the compression level: the fastest. On chat frames
// compressed one at a time the higher levels gain under 1% (0.736 of the
// size at level 6, 0.742 at level 1, on the benchmark corpus) for up to
// twice the time.
const DefaultLevel = 1

// Encoder compresses frames, one message at a time and without context
// (nothing carries from one message to the next). One per pod.
type Encoder struct {
	minSize int
	level   int
	writers sync.Pool // *flate.Writer: pooled, one per concurrent compression
}

// NewEncoder returns an encoder that leaves frames shorter than minSize
// uncompressed, compressing at level (1–9).
func NewEncoder(minSize, level int) *Encoder {
	return &Encoder{minSize: minSize, level: level}
}

// Compress returns payload's permessage-deflate form (the tail removed),
// or nil when it is below the encoder's MinSize or compression does not
// make it smaller: such a message goes uncompressed.
func (e *Encoder) Compress(payload []byte) []byte {
	if len(payload) < e.minSize {
		return nil
	}
	fw, _ := e.writers.Get().(*flate.Writer)
	out := bytes.NewBuffer(make([]byte, 0, len(payload)/2+16))
	if fw == nil {
		var err error
		if fw, err = flate.NewWriter(out, e.level); err != nil {
			fw, _ = flate.NewWriter(out, flate.DefaultCompression)
		}
	} else {
		fw.Reset(out)
	}
	_, err := fw.Write(payload)
	if err == nil {
		err = fw.Flush()
	}
	fw.Reset(nil) // drop the reference to out
	e.writers.Put(fw)
	z := out.Bytes()
	if err != nil || !bytes.HasSuffix(z, []byte(tail)) || len(z)-len(tail) >= len(payload) {
		return nil
	}
	return z[:len(z)-len(tail)]
}

// Shared is one message's compressed form, made at most once however many
// sockets want it. The zero of a nil *Shared is "send it uncompressed".
type Shared struct {
	e    *Encoder
	once sync.Once
	src  []byte
	z    []byte
}

// Share returns the lazily compressed form of a message of size n, or nil
// when e is nil (compression off) or n is below the minimum size.
func (e *Encoder) Share(n int) *Shared {
	if e == nil || n < e.minSize {
		return nil
	}
	return &Shared{e: e}
}

// For returns the compressed payload of frame, compressing it on the first
// call; nil means the frame goes uncompressed. A Shared stands for the one
// frame it was first asked for: asked for another (the same event
// re-encoded), it says uncompressed rather than compress per socket.
func (s *Shared) For(frame []byte) []byte {
	if s == nil || len(frame) == 0 {
		return nil
	}
	s.once.Do(func() {
		s.src = frame
		s.z = s.e.Compress(frame)
	})
	if len(s.src) != len(frame) || &s.src[0] != &frame[0] {
		return nil
	}
	return s.z
}
