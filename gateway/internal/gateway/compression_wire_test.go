package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
)

// wire is a client socket read and written frame by frame, to see what the
// gateway puts on the wire (RSV1, compressed bytes) and to send what no
// library would (a decompression bomb).
type wire struct {
	t    *testing.T
	nc   net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// dialWire upgrades with ticket tk, offering the extensions in offer ("":
// none).
func dialWire(t *testing.T, wsURL, tk, offer string) *wire {
	t.Helper()
	return dialWireEarly(t, wsURL, tk, offer, nil)
}

// dialWireEarly is dialWire sending early (frames) in the same write as the
// upgrade request, before the response.
func dialWireEarly(t *testing.T, wsURL, tk, offer string, early []byte) *wire {
	t.Helper()
	u, err := url.Parse(wsURL)
	mustNoErr(t, err)
	nc, err := net.Dial("tcp", u.Host)
	mustNoErr(t, err)
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + u.Path + "?ticket=" + url.QueryEscape(tk) + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\n"
	if offer != "" {
		req += "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	_, err = nc.Write(append([]byte(req+"\r\n"), early...))
	mustNoErr(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	mustNoErr(t, err)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &wire{t: t, nc: nc, br: br, resp: resp}
}

// wireFrame is a frame from the gateway.
type wireFrame struct {
	rsv1    bool
	opcode  byte
	payload []byte
}

// text is the frame's message: its payload, inflated when RSV1 is set.
func (f wireFrame) text(t *testing.T) string {
	t.Helper()
	if !f.rsv1 {
		return string(f.payload)
	}
	b, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(f.payload), strings.NewReader("\x00\x00\xff\xff"))))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("inflate: %v", err)
	}
	return string(b)
}

func (w *wire) read() wireFrame {
	w.t.Helper()
	var h [2]byte
	_, err := io.ReadFull(w.br, h[:])
	mustNoErr(w.t, err)
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		_, err = io.ReadFull(w.br, e[:])
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		_, err = io.ReadFull(w.br, e[:])
		n = binary.BigEndian.Uint64(e[:])
	}
	mustNoErr(w.t, err)
	if h[1]&0x80 != 0 || h[0]&0x80 == 0 || h[0]&0x30 != 0 {
		w.t.Fatalf("server frame header % x: masked, fragmented or with RSV2/3", h)
	}
	p := make([]byte, n)
	_, err = io.ReadFull(w.br, p)
	mustNoErr(w.t, err)
	return wireFrame{rsv1: h[0]&0x40 != 0, opcode: h[0] & 0x0F, payload: p}
}

// next skips pings and returns the next data or close frame.
func (w *wire) next() wireFrame {
	w.t.Helper()
	for {
		if f := w.read(); f.opcode != 0x9 {
			return f
		}
	}
}

// closeCode reads until the close frame and returns its code.
func (w *wire) closeCode() int {
	w.t.Helper()
	for {
		f := w.next()
		if f.opcode == 0x8 {
			if len(f.payload) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(f.payload))
		}
	}
}

// send writes one masked frame: first byte b0 (FIN, RSV1, opcode).
func (w *wire) send(b0 byte, payload []byte) {
	w.t.Helper()
	_, err := w.nc.Write(maskedFrame(b0, payload))
	mustNoErr(w.t, err)
}

// maskedFrame is a client frame: first byte b0, payload masked.
func maskedFrame(b0 byte, payload []byte) []byte {
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
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// deflated is s compressed as permessage-deflate sends it.
func deflated(s string) []byte {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write([]byte(s))
	_ = fw.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte("\x00\x00\xff\xff"))
}
