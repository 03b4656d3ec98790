package batchconn

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// recorder is a ReadFilter that passes bytes through and keeps a copy.
type recorder struct {
	src io.Reader
	mu  sync.Mutex
	got []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.src.Read(p)
	r.mu.Lock()
	r.got = append(r.got, p[:n]...)
	r.mu.Unlock()
	return n, err
}

func (r *recorder) Buffered() int { return 0 }

// TestFilterReads: with a filter, every byte the websocket library reads
// passed through it — those the client sent along with its upgrade
// request (read by the HTTP server before the hijack) first — and a frame
// appended with AppendDeflated goes out with RSV1 set.
func TestFilterReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pool := NewPool()
	rec := make(chan *recorder, 1)
	read := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := Wrap(w, pool)
		bw.FilterReads(func(src io.Reader) ReadFilter { f := &recorder{src: src}; rec <- f; return f })
		ws, err := websocket.Accept(bw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.CloseNow()
		_, msg, err := ws.Read(r.Context())
		if err != nil {
			t.Error(err)
		}
		read <- string(msg)
		c := bw.Conn()
		c.Begin()
		c.AppendDeflated([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}) // "Hello"
		if err := c.Flush(time.Second); err != nil {
			t.Error(err)
		}
		<-r.Context().Done()
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	frame := []byte{0x81, 0x85, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'} // masked with the zero key
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), frame...)); err != nil { // the frame rides the request
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if got := <-read; got != "hello" {
		t.Fatalf("server read %q", got)
	}
	if f := <-rec; !bytes.Contains(f.got, frame) {
		t.Fatalf("the filter saw % x, not the frame", f.got)
	}
	h := make([]byte, 2)
	if _, err := io.ReadFull(br, h); err != nil || h[0] != 0xC1 || h[1] != 7 {
		t.Fatalf("frame header % x (%v), want c1 07", h, err)
	}
}
