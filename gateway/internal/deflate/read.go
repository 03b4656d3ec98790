package deflate

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Inflater is what the pod's connections share to read compressed client
// messages: pooled decompressors and buffers, taken for one message and
// given back, so an idle connection holds none.
type Inflater struct {
	limit   int       // largest inflated message: the read limit
	readers sync.Pool // io.ReadCloser with flate.Resetter
	bufs    sync.Pool // *[]byte
}

// NewInflater returns an inflater for messages of at most limit bytes once
// inflated.
func NewInflater(limit int) *Inflater {
	return &Inflater{limit: limit}
}

// maxCompressed is the largest compressed message read: deflate cannot make
// a message much bigger than it was (stored blocks: 5 bytes per 64 KiB), so
// more than this inflates past the limit anyway.
func (f *Inflater) maxCompressed() int { return f.limit + 1024 }

func (f *Inflater) buf() *[]byte {
	if b, ok := f.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 2*f.limit+64)
	return &b
}

func (f *Inflater) putBuf(b *[]byte) {
	if cap(*b) <= 4*f.limit+256 {
		*b = (*b)[:0]
		f.bufs.Put(b)
	}
}

// Errors after which a Reader reads no more: the message it handed on
// makes the websocket library close the connection.
var (
	ErrTooBig   = errors.New("deflate: compressed message inflates past the read limit")
	ErrProtocol = errors.New("deflate: invalid compressed message")
)

// Reader is a client's byte stream with its compressed messages inflated:
// every frame passes through unchanged except those of a compressed
// message (RSV1 on its first frame), which are read whole and handed on as
// one unfragmented frame, masked with the zero key, carrying the inflated
// payload. Control frames inside a fragmented compressed message go ahead
// of it. A message that inflates past the limit is handed on with limit+1
// bytes (the library refuses it: 1009); an invalid one as a frame with
// RSV2 set (the library fails the connection: 1002).
//
// One per connection that negotiated the extension; it holds no buffer
// between messages.
type Reader struct {
	f   *Inflater
	src io.Reader

	st      state
	pass    bool // the current frame passes through unchanged
	masked  bool
	fin     bool
	need    uint8 // bytes left of the extended length or the mask key
	kpos    uint8 // the mask key's byte for the next payload byte (mod 4)
	key     [4]byte
	length  uint64 // the extended length read so far
	payload uint64 // bytes left of the current frame's payload

	inMsg  bool    // a compressed message is being read
	opcode byte    // its opcode (text or binary)
	msg    *[]byte // its compressed payload so far, unmasked

	// out holds bytes ready for the library, ahead of the socket's: a
	// message handed on, and what a scan read after it. Nil between
	// scans that hand nothing on (Read drops it once drained).
	out    *[]byte
	off    int
	err    error // the Reader's own end (ErrTooBig, ErrProtocol)
	srcErr error // src's error, returned once the bytes read with it are
}

type state uint8

const (
	stHeader0 state = iota // FIN, RSV, opcode
	stHeader1              // MASK, payload length
	stLength               // extended payload length
	stMask                 // masking key
	stPayload
)

// NewReader returns src with its compressed messages inflated.
func (f *Inflater) NewReader(src io.Reader) *Reader {
	return &Reader{f: f, src: src}
}

// Buffered is how many bytes the Reader holds ready without reading src.
func (r *Reader) Buffered() int {
	if r.out == nil {
		return 0
	}
	return len(*r.out) - r.off
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.Buffered() > 0 {
			n := copy(p, (*r.out)[r.off:])
			r.off += n
			if r.Buffered() == 0 {
				r.f.putBuf(r.out)
				r.out, r.off = nil, 0
			}
			return n, nil
		}
		if err := r.srcErr; err != nil {
			r.srcErr = nil
			return 0, err
		}
		if r.err != nil {
			return 0, r.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		n, err := r.src.Read(p)
		k := r.scan(p[:n])
		switch {
		case k > 0 || r.Buffered() > 0:
			r.srcErr = err // after what was read with it
			if k > 0 {
				return k, nil
			}
		case err != nil:
			return 0, err
		}
	}
}

// scan passes p's bytes through in place, takes those of compressed
// messages, and returns how many bytes of p are kept; what follows a
// message handed on goes to out, behind it.
func (r *Reader) scan(p []byte) int {
	// Bytes pass in place in p until a message is handed on (out is nil
	// until then: Read scans only once out is drained), then into out
	// behind it.
	w := 0
	emit := func(b []byte) {
		if r.out != nil {
			*r.out = append(*r.out, b...)
			return
		}
		w += copy(p[w:], b)
	}
	for i := 0; i < len(p) && r.err == nil; {
		switch r.st {
		case stHeader0:
			r.header0(p[i])
			if r.pass && r.err == nil {
				emit(p[i : i+1])
			}
			i++
		case stHeader1:
			b := p[i]
			i++
			r.masked = b&0x80 != 0
			if r.pass {
				emit(p[i-1 : i])
			} else if !r.masked {
				r.fail(ErrProtocol) // a client's frame is masked (RFC 6455 §5.1)
				continue
			}
			switch l := b & 0x7F; l {
			case 126:
				r.st, r.need, r.length = stLength, 2, 0
			case 127:
				r.st, r.need, r.length = stLength, 8, 0
			default:
				r.lengthRead(uint64(l))
			}
		case stLength:
			if r.pass {
				emit(p[i : i+1])
			}
			r.length = r.length<<8 | uint64(p[i])
			i++
			if r.need--; r.need == 0 {
				r.lengthRead(r.length)
			}
		case stMask:
			if r.pass {
				emit(p[i : i+1])
			} else {
				r.key[4-r.need] = p[i]
			}
			i++
			if r.need--; r.need == 0 {
				r.kpos = 0
				r.afterMask()
			}
		case stPayload:
			n := uint64(len(p) - i)
			if n > r.payload {
				n = r.payload
			}
			chunk := p[i : i+int(n)]
			i += int(n)
			r.payload -= n
			if r.pass {
				emit(chunk)
			} else {
				r.take(chunk)
			}
			if r.payload == 0 {
				r.frameEnd()
			}
		}
	}
	return w
}

// header0 reads a frame's first byte and decides whether the frame passes.
func (r *Reader) header0(b byte) {
	opcode, rsv1 := b&0x0F, b&0x40 != 0
	r.fin = b&0x80 != 0
	r.st = stHeader1
	switch {
	case opcode&0x8 != 0: // control frames are never compressed
		r.pass = true
	case r.inMsg:
		// The next frame of a compressed message: a continuation without
		// RSV bits (RFC 7692 §6.1).
		if opcode != 0 || b&0x70 != 0 {
			r.fail(ErrProtocol)
			return
		}
		r.pass = false
	case rsv1 && (opcode == 1 || opcode == 2) && b&0x30 == 0:
		r.pass = false
		r.inMsg, r.opcode = true, opcode
		r.msg = r.f.buf()
	default:
		// A plain frame, or one the library refuses itself.
		r.pass = true
	}
}

func (r *Reader) lengthRead(n uint64) {
	r.payload = n
	if !r.pass && uint64(len(*r.msg))+n > uint64(r.f.maxCompressed()) {
		r.tooBig()
		return
	}
	if r.masked {
		r.st, r.need = stMask, 4
		return
	}
	r.afterMask()
}

func (r *Reader) afterMask() {
	if r.payload == 0 {
		r.frameEnd()
		return
	}
	r.st = stPayload
}

func (r *Reader) frameEnd() {
	r.st = stHeader0
	if !r.pass && r.fin {
		r.complete()
	}
}

// take unmasks a compressed message's payload bytes into msg.
func (r *Reader) take(chunk []byte) {
	m := *r.msg
	start := len(m)
	m = append(m, chunk...)
	for j := start; j < len(m); j++ {
		m[j] ^= r.key[r.kpos&3]
		r.kpos = (r.kpos + 1) & 3
	}
	*r.msg = m
}

// complete inflates the message read and hands it on.
func (r *Reader) complete() {
	msg := r.msg
	r.msg, r.inMsg = nil, false
	defer r.f.putBuf(msg)
	*msg = append(*msg, tail...)

	const room = 14 // the largest frame header
	out := r.f.buf()
	limit := r.f.limit
	b := append((*out)[:0], make([]byte, room)...)
	src := bytes.NewReader(*msg)
	fr, _ := r.f.readers.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(src)
	} else {
		_ = fr.(flate.Resetter).Reset(src, nil)
	}
	var err error
	for len(b)-room <= limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		var n int
		n, err = fr.Read(b[len(b):min(cap(b), room+limit+1)])
		b = b[:len(b)+n]
		if err != nil {
			break
		}
	}
	r.f.readers.Put(fr)
	*out = b
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		r.f.putBuf(out)
		r.fail(ErrProtocol)
		return
	}
	n := len(b) - room
	if n > limit {
		n = limit + 1 // the library reads this far and refuses the message
		b = b[:room+n]
		r.err = ErrTooBig
	}
	h := frameHeader(r.opcode, n)
	start := room - len(h)
	copy(b[start:], h)
	*out = b
	r.hand(out, start)
}

// hand queues a frame in out (the first frame handed on in a scan starts
// out; what the scan keeps after it goes behind it).
func (r *Reader) hand(b *[]byte, start int) {
	if r.out == nil {
		r.out, r.off = b, start
	} else {
		*r.out = append(*r.out, (*b)[start:]...)
		r.f.putBuf(b)
	}
}

// frameHeader is the header of an unfragmented, masked (zero key) frame.
func frameHeader(opcode byte, n int) []byte {
	h := []byte{0x80 | opcode}
	switch {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n < 1<<16:
		h = append(h, 0x80|126, byte(n>>8), byte(n))
	default:
		h = append(h, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(h, 0, 0, 0, 0)
}

// tooBig hands on a message of limit+1 bytes for the library to refuse.
func (r *Reader) tooBig() {
	if r.msg != nil {
		r.f.putBuf(r.msg)
		r.msg = nil
	}
	out := r.f.buf()
	b := append((*out)[:0], frameHeader(r.opcode, r.f.limit+1)...)
	b = append(b, make([]byte, r.f.limit+1)...)
	*out = b
	r.hand(out, 0)
	r.err = ErrTooBig
}

// fail hands on a frame with RSV2 set: the library fails the connection
// with 1002, as RFC 7692 §8.2.3 has it for a message that cannot be read.
func (r *Reader) fail(err error) {
	if r.msg != nil {
		r.f.putBuf(r.msg)
		r.msg = nil
	}
	out := r.f.buf()
	*out = append((*out)[:0], 0x80|0x20|0x1, 0x80, 0, 0, 0, 0)
	r.hand(out, 0)
	r.err = err
}
