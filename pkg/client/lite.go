package client

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocvr/realtime/pkg/redact"
)

// Lite is a minimal protocol connection for load generators and bots that
// handle thousands of sockets: a bare RFC 6455 client with no goroutine of
// its own, no JSON decoding and no per-frame allocation. The caller reads
// frames in its own loop; a frame's bytes are valid until the next read.
// Use Conn for anything else.
type Lite struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte

	// Compression (LiteOptions.Compression): the gateway agreed to it;
	// fr and zbuf are made at the first compressed message.
	deflate bool
	fr      io.ReadCloser
	zbuf    []byte
	wire    atomic.Int64 // bytes of the data frames read (headers included)

	wmu  sync.Mutex
	wbuf []byte
}

// LiteOptions tune DialLite.
type LiteOptions struct {
	// LocalAddr is the source address, e.g. 127.0.0.7:0, to spread many
	// sockets over loopback addresses when ephemeral ports run short.
	LocalAddr net.Addr
	// ReadBuffer is the size of the read buffer (default 4096).
	ReadBuffer int
	Header     http.Header
	// Compression offers permessage-deflate (as Chromium does); when the
	// gateway agrees, compressed messages are inflated by ReadText.
	Compression bool
}

// DialLite opens a socket to wsURL with ticket. It returns once the upgrade
// is done; the first frame read is ready (or an error frame before 4001).
// Its errors never hold the ticket (pkg/redact).
func DialLite(ctx context.Context, wsURL, ticket string, o LiteOptions) (*Lite, error) {
	l, err := dialLite(ctx, wsURL, ticket, o)
	return l, redact.Error(err)
}

func dialLite(ctx context.Context, wsURL, ticket string, o LiteOptions) (*Lite, error) {
	u, err := url.Parse(wsURL)
	if err != nil || u.Scheme != "ws" {
		return nil, fmt.Errorf("dial lite: want a ws:// URL, got %q", redact.URL(wsURL))
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	d := net.Dialer{LocalAddr: o.LocalAddr}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial lite: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	q := u.Query()
	if ticket != "" {
		q.Set("ticket", ticket)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, q.Encode(), u.Host, k)
	if o.Compression {
		b.WriteString("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
	}
	for name, vs := range o.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("dial lite: %w", err)
	}
	size := o.ReadBuffer
	if size <= 0 {
		size = 4096
	}
	br := bufio.NewReaderSize(nc, size)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("dial lite: read upgrade response: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, &UpgradeError{Status: resp.StatusCode, RetryAfter: headerRetryAfter(resp.Header, time.Now())}
	}
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, fmt.Errorf("dial lite: upgrade refused: %s", resp.Status)
	}
	_ = nc.SetDeadline(time.Time{})
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if ext != "" && (!o.Compression || !strings.HasPrefix(ext, "permessage-deflate")) {
		nc.Close()
		return nil, fmt.Errorf("dial lite: the server answered with an extension not offered: %q", ext)
	}
	return &Lite{nc: nc, br: br, deflate: ext != ""}, nil
}

// Compressed reports whether the gateway agreed to permessage-deflate.
func (l *Lite) Compressed() bool { return l.deflate }

// WireBytes is how many bytes of data frames (headers and payloads, as
// they came: compressed or not) the connection has read.
func (l *Lite) WireBytes() int64 { return l.wire.Load() }

// Inflate returns the message whose permessage-deflate payload is p (from
// ReadRaw). The bytes are valid until the next call.
func (l *Lite) Inflate(p []byte) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff"))
	if l.fr == nil {
		l.fr = flate.NewReader(src)
	} else if err := l.fr.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	out := l.zbuf[:0]
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := l.fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("lite: inflate: %w", err)
		}
		if len(out) > 1<<20 {
			return nil, errors.New("lite: compressed message inflates past 1 MiB")
		}
	}
	l.zbuf = out
	return out, nil
}

// NetConn is the underlying socket (for deadlines and buffer sizes).
func (l *Lite) NetConn() net.Conn { return l.nc }

// ReadText returns the next text message (inflated, if it came
// compressed). Pings are answered; a close frame returns a *CloseError.
// The bytes are valid until the next call.
func (l *Lite) ReadText() ([]byte, error) {
	p, compressed, err := l.ReadRaw()
	if err != nil || !compressed {
		return p, err
	}
	return l.Inflate(p)
}

// ReadRaw is ReadText without the inflation: compressed reports that p is
// a permessage-deflate payload (Inflate reads it). A load generator that
// cannot afford to inflate every message inflates a sample.
func (l *Lite) ReadRaw() (p []byte, compressed bool, err error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(l.br, h[:]); err != nil {
			return nil, false, err
		}
		op := h[0] & 0x0f
		rsv1 := h[0]&0x40 != 0
		if rsv1 && !l.deflate {
			return nil, false, errors.New("lite: a compressed frame without compression negotiated")
		}
		hdr := 2
		if h[0]&0x80 == 0 {
			return nil, false, errors.New("lite: fragmented frames are not supported")
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(l.br, e[:]); err != nil {
				return nil, false, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
			hdr += 2
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(l.br, e[:]); err != nil {
				return nil, false, err
			}
			n = binary.BigEndian.Uint64(e[:])
			hdr += 8
		}
		if n > 1<<20 {
			return nil, false, fmt.Errorf("lite: frame of %d bytes", n)
		}
		if uint64(cap(l.buf)) < n {
			l.buf = make([]byte, n)
		}
		p := l.buf[:n]
		if _, err := io.ReadFull(l.br, p); err != nil {
			return nil, false, err
		}
		switch op {
		case 1, 2:
			l.wire.Add(int64(hdr) + int64(n))
			return p, rsv1, nil
		case 8:
			ce := &CloseError{Code: 1005}
			if len(p) >= 2 {
				ce.Code = int(binary.BigEndian.Uint16(p))
				ce.Reason = string(p[2:])
				ce.RetryAfter = ReasonRetryAfter(ce.Reason)
			}
			_ = l.writeFrame(8, p[:min(len(p), 2)])
			return nil, false, ce
		case 9:
			if err := l.writeFrame(10, p); err != nil {
				return nil, false, err
			}
		}
	}
}

// WriteText sends one text message.
func (l *Lite) WriteText(p []byte) error { return l.writeFrame(1, p) }

func (l *Lite) writeFrame(op byte, p []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	b := l.wbuf[:0]
	b = append(b, 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range b[start:] {
		b[start+i] ^= mask[i&3]
	}
	l.wbuf = b
	_, err := l.nc.Write(b)
	return err
}

// Close sends a normal close frame and closes the socket.
func (l *Lite) Close() error {
	_ = l.writeFrame(8, []byte{0x03, 0xe8})
	return l.nc.Close()
}

// CloseNow closes the socket without a close frame.
func (l *Lite) CloseNow() error { return l.nc.Close() }
