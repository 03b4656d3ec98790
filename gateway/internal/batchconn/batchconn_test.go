package batchconn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// countingConn records each Write reaching the network.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes)
}

// pair returns a batching conn over one end of a TCP connection on
// 127.0.0.1 and the other end.
func pair(t testing.TB) (*Conn, *countingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	cc := &countingConn{Conn: a}
	return &Conn{Conn: cc, pool: NewPool()}, cc, b
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteThroughWithoutBatch(t *testing.T) {
	c, cc, peer := pair(t)
	for _, s := range []string{"one", "two"} {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("write: %d %v", n, err)
		}
	}
	if cc.count() != 2 {
		t.Fatalf("%d network writes, want 2", cc.count())
	}
	if got := readN(t, peer, 6); string(got) != "onetwo" {
		t.Fatalf("peer read %q", got)
	}
	if err := c.Flush(time.Second); err != nil || cc.count() != 2 {
		t.Fatalf("Flush without Begin: %v, %d writes", err, cc.count())
	}
}

func TestBatchCoalesces(t *testing.T) {
	c, cc, peer := pair(t)
	var want bytes.Buffer
	for round := 0; round < 3; round++ {
		c.Begin()
		c.Begin() // idempotent
		for i := 0; i < 50; i++ {
			s := strings.Repeat(string(rune('a'+i%26)), i+1)
			want.WriteString(s)
			if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
				t.Fatalf("write: %d %v", n, err)
			}
		}
		if cc.count() != round {
			t.Fatalf("round %d: %d network writes before Flush", round, cc.count())
		}
		if err := c.Flush(time.Second); err != nil {
			t.Fatal(err)
		}
		if cc.count() != round+1 {
			t.Fatalf("round %d: %d network writes after Flush, want %d", round, cc.count(), round+1)
		}
	}
	if got := readN(t, peer, want.Len()); !bytes.Equal(got, want.Bytes()) {
		t.Fatal("peer read other bytes than written")
	}
	// An empty batch writes nothing.
	c.Begin()
	if err := c.Flush(time.Second); err != nil || cc.count() != 3 {
		t.Fatalf("empty batch: %v, %d writes", err, cc.count())
	}
}

// TestConcurrentWriteDuringBatch: a write from another goroutine while a
// batch is open (the close frame) joins the batch, in order.
func TestConcurrentWriteDuringBatch(t *testing.T) {
	c, _, peer := pair(t)
	c.Begin()
	_, _ = c.Write([]byte("A"))
	done := make(chan struct{})
	go func() { _, _ = c.Write([]byte("B")); close(done) }()
	<-done
	_, _ = c.Write([]byte("C"))
	if err := c.Flush(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, peer, 3); string(got) != "ABC" {
		t.Fatalf("peer read %q", got)
	}
}

// TestFlushTimeout: a peer that does not read makes Flush fail within its
// timeout, and the deadline does not outlive the Flush.
func TestFlushTimeout(t *testing.T) {
	c, cc, peer := pair(t)
	_ = cc.Conn.(*net.TCPConn).SetWriteBuffer(4096)
	_ = peer.(*net.TCPConn).SetReadBuffer(4096)
	big := bytes.Repeat([]byte("x"), 4<<20) // more than both socket buffers
	c.Begin()
	_, _ = c.Write(big)
	start := time.Now()
	err := c.Flush(200 * time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Flush to a stuck peer: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Flush took %v", d)
	}
	// The peer drains; a direct write then has no leftover deadline.
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	time.Sleep(300 * time.Millisecond)
	if _, err := c.Write([]byte("after")); err != nil {
		t.Fatalf("write after a timed-out Flush: %v", err)
	}
}

// TestHijack: the websocket library's hijack through ResponseWriter yields
// the batching Conn, with a small buffered writer on top.
func TestHijack(t *testing.T) {
	pool := NewPool()
	got := make(chan *ResponseWriter, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := Wrap(w, pool)
		if bw.Conn() != nil {
			t.Error("Conn before hijack")
		}
		if bw.Unwrap() != w {
			t.Error("Unwrap")
		}
		nc, brw, err := http.NewResponseController(bw).Hijack()
		if err != nil {
			t.Error(err)
			got <- nil
			return
		}
		if nc != bw.Conn() || bw.Conn() == nil {
			t.Error("hijacked conn is not the batching Conn")
		}
		if brw.Writer.Size() != writerSize {
			t.Errorf("writer size %d", brw.Writer.Size())
		}
		bw.Conn().Begin()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
		_ = brw.Flush()
		_, _ = brw.WriteString("hello")
		_ = brw.Flush()
		_ = bw.Conn().Flush(time.Second)
		nc.Close()
		got <- bw
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(bufio.NewReader(resp.Body))
	resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("body %q", body)
	}
	if <-got == nil {
		t.FailNow()
	}
}

// socketPair is pair without the counting wrapper: the Conn writes to the
// TCP socket itself, so TryFlush can write without waiting.
func socketPair(t testing.TB) (*Conn, *net.TCPConn, net.Conn) {
	t.Helper()
	c, cc, peer := pair(t)
	tcp := cc.Conn.(*net.TCPConn)
	c.Conn = tcp
	raw, err := tcp.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c.raw = raw
	return c, tcp, peer
}

// TestTryFlush: a batch the socket takes at once is written by TryFlush
// without waiting; a batch larger than the socket takes stays open with
// the unwritten rest, a write from another goroutine (the close frame)
// joins it in order, and Flush sends the rest.
func TestTryFlush(t *testing.T) {
	t.Run("fits", func(t *testing.T) {
		c, _, peer := socketPair(t)
		if !c.TryBegin() {
			t.Fatal("TryBegin on an idle conn")
		}
		c.AppendText([]byte("hello"))
		c.AppendText(bytes.Repeat([]byte("y"), 200))
		done, err := c.TryFlush()
		if !done || err != nil {
			t.Fatalf("TryFlush: done=%v err=%v", done, err)
		}
		got := readN(t, peer, 2+5+4+200)
		if !bytes.Equal(got[:7], []byte("\x81\x05hello")) || !bytes.Equal(got[7:11], []byte{0x81, 126, 0, 200}) {
			t.Fatalf("frames % x", got[:11])
		}
		// Closed: a direct write goes straight out again.
		if _, err := c.Write([]byte("z")); err != nil || string(readN(t, peer, 1)) != "z" {
			t.Fatalf("write after TryFlush: %v", err)
		}
	})
	t.Run("partial", func(t *testing.T) {
		c, _, peer := socketPair(t)
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<21) // 32 MiB, more than both socket buffers
		c.Begin()
		_, _ = c.Write(big)
		done, err := c.TryFlush()
		if done || err != nil {
			t.Fatalf("TryFlush of 4 MiB to a peer not reading: done=%v err=%v", done, err)
		}
		_, _ = c.Write([]byte("END")) // still batching: joins after the rest
		want := append(append([]byte(nil), big...), "END"...)
		read := make(chan []byte, 1)
		go func() {
			b := make([]byte, len(want))
			n, _ := io.ReadFull(peer, b)
			read <- b[:n]
		}()
		if err := c.Flush(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(<-read, want) {
			t.Fatal("peer read other bytes than written")
		}
	})
	t.Run("closed socket", func(t *testing.T) {
		c, tcp, _ := socketPair(t)
		tcp.Close()
		c.Begin()
		c.AppendText([]byte("x"))
		done, err := c.TryFlush()
		if !done || err == nil {
			t.Fatalf("TryFlush on a closed socket: done=%v err=%v", done, err)
		}
	})
	t.Run("no socket", func(t *testing.T) {
		c, cc, peer := pair(t) // a wrapped net.Conn: no descriptor to write without waiting
		c.Begin()
		c.AppendText([]byte("x"))
		if done, err := c.TryFlush(); done || err != nil {
			t.Fatalf("TryFlush without a socket: done=%v err=%v", done, err)
		}
		if cc.count() != 0 {
			t.Fatal("TryFlush wrote through the wrapper")
		}
		if err := c.Flush(time.Second); err != nil || string(readN(t, peer, 3)) != "\x81\x01x" {
			t.Fatalf("Flush after TryFlush: %v", err)
		}
	})
}

// TestTryBeginBusy: while a direct write blocks on a full socket, TryBegin
// fails at once instead of waiting for it.
func TestTryBeginBusy(t *testing.T) {
	c, _, peer := socketPair(t)
	big := bytes.Repeat([]byte("x"), 32<<20)
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(big); wrote <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for c.mu.TryLock() { // wait until the writer holds the conn
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("writer never took the conn")
		}
		time.Sleep(time.Millisecond)
	}
	if c.TryBegin() {
		t.Fatal("TryBegin succeeded while a write blocks")
	}
	peer.Close() // the blocked write fails at once
	if err := <-wrote; err == nil {
		t.Fatal("write to a closed peer succeeded")
	}
	if !c.TryBegin() {
		t.Fatal("TryBegin after the write")
	}
}

// BenchmarkBatchWrite is the writer's path for one socket: a batch of
// frames appended and sent with one non-blocking write (frames=1 is the
// low-rate case, one delivery per write; frames=16 a coalesced backlog).
// The peer reads in another goroutine of this process.
func BenchmarkBatchWrite(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 250)
	for _, frames := range []int{1, 16} {
		b.Run("frames="+strconv.Itoa(frames), func(b *testing.B) {
			c, _, peer := socketPair(b)
			go func() { _, _ = io.Copy(io.Discard, peer) }()
			b.ReportAllocs()
			b.SetBytes(int64(frames * (len(payload) + 4)))
			for i := 0; i < b.N; i++ {
				if !c.TryBegin() {
					b.Fatal("TryBegin")
				}
				for j := 0; j < frames; j++ {
					c.AppendText(payload)
				}
				done, err := c.TryFlush()
				if err != nil {
					b.Fatal(err)
				}
				if !done {
					if err := c.Flush(5 * time.Second); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// countingListener wraps each accepted connection in a countingConn.
type countingListener struct {
	net.Listener
	conns chan *countingConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	l.conns <- cc
	return cc, nil
}

// TestHandshakeRidesTheFirstWrite: the 101 response is held back and goes
// out with the connection's first frame, in one write, whether the frame
// is written through (a refusal's error and close) or batched (ready);
// the client sees an ordinary handshake and the frame.
func TestHandshakeRidesTheFirstWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(ctx context.Context, ws *websocket.Conn, c *Conn) error
	}{
		{"direct", func(ctx context.Context, ws *websocket.Conn, _ *Conn) error {
			return ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ready"}`))
		}},
		{"batched", func(_ context.Context, _ *websocket.Conn, c *Conn) error {
			c.Begin()
			c.AppendText([]byte(`{"type":"ready"}`))
			return c.Flush(time.Second)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cl := &countingListener{Listener: ln, conns: make(chan *countingConn, 1)}
			pool := NewPool()
			done := make(chan struct{})
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(done)
				bw := Wrap(w, pool)
				ws, err := websocket.Accept(bw, r, nil)
				if err != nil {
					t.Error(err)
					return
				}
				defer ws.CloseNow()
				if err := tc.write(r.Context(), ws, bw.Conn()); err != nil {
					t.Error(err)
				}
				<-r.Context().Done()
			})}
			go func() { _ = srv.Serve(cl) }()
			defer srv.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			_, msg, err := ws.Read(ctx)
			if err != nil || string(msg) != `{"type":"ready"}` {
				t.Fatalf("read %q, %v", msg, err)
			}
			cc := <-cl.conns
			cc.mu.Lock()
			writes := cc.writes
			cc.mu.Unlock()
			if len(writes) != 1 {
				t.Fatalf("%d writes, want the handshake and the frame in one", len(writes))
			}
			if w := writes[0]; !bytes.HasPrefix(w, []byte("HTTP/1.1 101 Switching Protocols\r\n")) || !bytes.HasSuffix(w, []byte(`{"type":"ready"}`)) {
				t.Fatalf("write %q", w)
			}
		})
	}
}
