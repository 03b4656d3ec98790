// Package wsframe follows the frame boundaries of a WebSocket byte stream
// (RFC 6455 §5.2) without decoding it, to count the frames the websocket
// library handles by itself: control frames (ping, pong, close) never reach
// the application, yet each one a client sends can make the server write.
package wsframe

// Counter reads a stream's frame headers as the bytes go by. The zero value
// is at the start of a frame.
type Counter struct {
	state   state
	opcode  byte
	masked  bool
	need    int    // bytes left of the extended length or the mask key
	length  uint64 // the extended length read so far
	payload uint64 // payload bytes left to skip
}

type state uint8

const (
	stHeader0 state = iota // FIN, RSV, opcode
	stHeader1              // MASK, payload length
	stLength               // extended payload length (2 or 8 bytes)
	stMask                 // masking key (4 bytes)
	stPayload
)

// IsControl reports whether opcode is a control frame's (0x8–0xF).
func IsControl(opcode byte) bool { return opcode&0x8 != 0 }

// Feed consumes the next bytes of the stream and returns how many control
// frames began in them.
func (c *Counter) Feed(p []byte) (controls int) {
	for i := 0; i < len(p); {
		switch c.state {
		case stHeader0:
			c.opcode = p[i] & 0x0F
			c.state = stHeader1
			i++
		case stHeader1:
			b := p[i]
			i++
			if IsControl(c.opcode) {
				controls++
			}
			c.masked = b&0x80 != 0
			switch l := b & 0x7F; l {
			case 126:
				c.state, c.need, c.length = stLength, 2, 0
			case 127:
				c.state, c.need, c.length = stLength, 8, 0
			default:
				c.payload = uint64(l)
				c.afterLength()
			}
		case stLength:
			c.length = c.length<<8 | uint64(p[i])
			i++
			if c.need--; c.need == 0 {
				c.payload = c.length
				c.afterLength()
			}
		case stMask:
			i++
			if c.need--; c.need == 0 {
				c.afterMask()
			}
		case stPayload:
			skip := uint64(len(p) - i)
			if skip > c.payload {
				skip = c.payload
			}
			i += int(skip)
			if c.payload -= skip; c.payload == 0 {
				c.state = stHeader0
			}
		}
	}
	return controls
}

func (c *Counter) afterLength() {
	if c.masked {
		c.state, c.need = stMask, 4
		return
	}
	c.afterMask()
}

func (c *Counter) afterMask() {
	if c.payload == 0 {
		c.state = stHeader0
		return
	}
	c.state = stPayload
}
