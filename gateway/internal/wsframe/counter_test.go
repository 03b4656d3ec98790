package wsframe

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// frame encodes one frame as a client would (masked) or a server (not).
func frame(opcode byte, payload int, masked bool) []byte {
	b := []byte{0x80 | opcode}
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch {
	case payload < 126:
		b = append(b, m|byte(payload))
	case payload <= 0xFFFF:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(payload))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(payload))
	}
	if masked {
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, bytes.Repeat([]byte{0x88}, payload)...) // payload bytes that look like close headers
}

func TestCounterFeed(t *testing.T) {
	const ping, pong, closeOp, text, binaryOp, cont = 0x9, 0xA, 0x8, 0x1, 0x2, 0x0
	tests := []struct {
		name   string
		frames [][]byte
		want   int
	}{
		{"empty ping", [][]byte{frame(ping, 0, true)}, 1},
		{"text then ping", [][]byte{frame(text, 5, true), frame(ping, 4, true)}, 1},
		{"125-byte ping", [][]byte{frame(ping, 125, true), frame(pong, 125, false)}, 2},
		{"16-bit length", [][]byte{frame(text, 126, true), frame(ping, 1, true), frame(binaryOp, 300, false)}, 1},
		{"64-bit length", [][]byte{frame(text, 70000, true), frame(closeOp, 2, true)}, 1},
		{"fragmented message", [][]byte{{0x01, 0x82, 1, 2, 3, 4, 0, 0}, frame(ping, 0, true), {0x80 | cont, 0x81, 1, 2, 3, 4, 0}}, 1},
		{"no control frames", [][]byte{frame(text, 10, true), frame(text, 0, true), frame(binaryOp, 65535, true)}, 0},
		{"ping flood", bytes.Split(bytes.Repeat(append(frame(ping, 3, true), '|'), 100), []byte{'|'})[:100], 100},
	}
	for _, tt := range tests {
		stream := bytes.Join(tt.frames, nil)
		t.Run(tt.name+"/whole", func(t *testing.T) {
			var c Counter
			if got := c.Feed(stream); got != tt.want {
				t.Fatalf("got %d control frames, want %d", got, tt.want)
			}
			if c.state != stHeader0 {
				t.Fatalf("ends in state %d, want at a frame boundary", c.state)
			}
		})
		t.Run(tt.name+"/byte by byte", func(t *testing.T) {
			var c Counter
			got := 0
			for i := range stream {
				got += c.Feed(stream[i : i+1])
			}
			if got != tt.want {
				t.Fatalf("got %d control frames, want %d", got, tt.want)
			}
		})
	}
}

// countingConn counts the control frames of what the server reads after
// the HTTP request (the frames start after its blank line).
type countingConn struct {
	net.Conn
	mu       sync.Mutex
	c        Counter
	head     []byte // the request so far, until its end is seen
	inFrames bool
	controls int
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.mu.Lock()
	b := p[:n]
	if !cc.inFrames {
		cc.head = append(cc.head, b...)
		i := bytes.Index(cc.head, []byte("\r\n\r\n"))
		if i >= 0 {
			cc.inFrames = true
			b = cc.head[i+4:]
		} else {
			b = nil
		}
	}
	cc.controls += cc.c.Feed(b)
	cc.mu.Unlock()
	return n, err
}

// TestCounterOnARealClient: the frames coder/websocket's client writes
// (pings between messages of every length class) are counted exactly.
func TestCounterOnARealClient(t *testing.T) {
	var counted *countingConn
	got := make(chan int, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				counted.mu.Lock()
				got <- counted.controls
				counted.mu.Unlock()
				return
			}
		}
	}))
	srv.Listener = &countingListener{Listener: srv.Listener, set: func(c *countingConn) { counted = c }}
	srv.Start()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.CloseRead(ctx) // a reader for the pongs
	const pings = 7
	for i, size := range []int{0, 100, 126, 1000, 70000, 5, 65535} {
		if err := ws.Write(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), size)); err != nil {
			t.Fatal(err)
		}
		if i < pings {
			if err := ws.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = ws.Close(websocket.StatusNormalClosure, "") // one more control frame
	select {
	case n := <-got:
		if n != pings+1 {
			t.Fatalf("counted %d control frames, want %d pings and a close", n, pings)
		}
	case <-ctx.Done():
		t.Fatal("server never saw the end")
	}
}

type countingListener struct {
	net.Listener
	set func(*countingConn)
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	l.set(cc)
	return cc, nil
}
