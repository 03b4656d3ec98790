package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ocvr/realtime/pkg/client"
)

// wsConn is the cluster workload's socket: the same bare RFC 6455 client
// as client.Lite, except that a refused upgrade says its HTTP status and
// Retry-After (upgradeRefused). client.DialLite folds both into an error
// string, and the clients of this workload must honour the gateway's
// 429/503 Retry-After as the SDKs do.
type wsConn struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte

	wmu  sync.Mutex
	wbuf []byte
}

// upgradeRefused is a plain HTTP answer to the upgrade (429 when the
// source has too many upgrades in flight, 503 while the pod drains).
type upgradeRefused struct {
	Status     int
	RetryAfter time.Duration
}

func (e *upgradeRefused) Error() string {
	return fmt.Sprintf("upgrade refused: HTTP %d (Retry-After %v)", e.Status, e.RetryAfter)
}

// wsDial opens a socket to wsURL with the query (ticket, resume token and
// cursor) from the source address local. The context bounds the handshake.
func wsDial(ctx context.Context, wsURL string, q url.Values, local net.Addr) (*wsConn, error) {
	u, err := url.Parse(wsURL)
	if err != nil || u.Scheme != "ws" {
		return nil, fmt.Errorf("ws dial: want a ws:// URL, got %q", wsURL)
	}
	d := net.Dialer{LocalAddr: local}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("ws dial: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(key[8:], rand.Uint64())
	k := base64.StdEncoding.EncodeToString(key[:])
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	req := "GET " + path + "?" + q.Encode() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, fmt.Errorf("ws dial: write upgrade: %w", err)
	}
	br := bufio.NewReaderSize(nc, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ws dial: read upgrade response: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		e := &upgradeRefused{Status: resp.StatusCode}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return nil, e
	}
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, errors.New("ws dial: bad Sec-WebSocket-Accept")
	}
	_ = nc.SetDeadline(time.Time{})
	return &wsConn{nc: nc, br: br}, nil
}

// readText returns the next text message, answering pings; a close frame
// is a *client.CloseError. The bytes are valid until the next call.
func (c *wsConn) readText() ([]byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		if h[0]&0x80 == 0 {
			return nil, errors.New("ws: fragmented frames are not supported")
		}
		op := h[0] & 0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 1<<20 {
			return nil, fmt.Errorf("ws: frame of %d bytes", n)
		}
		if uint64(cap(c.buf)) < n {
			c.buf = make([]byte, n)
		}
		p := c.buf[:n]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return nil, err
		}
		switch op {
		case 1, 2:
			return p, nil
		case 8:
			ce := &client.CloseError{Code: 1005}
			if len(p) >= 2 {
				ce.Code = int(binary.BigEndian.Uint16(p))
				ce.Reason = string(p[2:])
			}
			_ = c.writeFrame(8, p[:min(len(p), 2)])
			return nil, ce
		case 9:
			if err := c.writeFrame(10, p); err != nil {
				return nil, err
			}
		}
	}
}

func (c *wsConn) writeText(p []byte) error { return c.writeFrame(1, p) }

func (c *wsConn) writeFrame(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := append(c.wbuf[:0], 0x80|op)
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
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range b[start:] {
		b[start+i] ^= mask[i&3]
	}
	c.wbuf = b
	_, err := c.nc.Write(b)
	return err
}

// closeNow drops the socket without a close frame.
func (c *wsConn) closeNow() { _ = c.nc.Close() }
