// Package batchconn coalesces WebSocket frames into one write syscall.
//
// coder/websocket flushes its buffered writer after every message, so a
// connection draining 50 queued frames would make 50 syscalls. Conn sits
// under the websocket library (it is what the HTTP hijack hands over): while
// a batch is open its writes are appended to a pooled buffer, and Flush
// sends them in one write. The wire protocol is unchanged: still one
// WebSocket message per event.
package batchconn

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// writerSize is the bufio.Writer the websocket library writes frames into.
// Batching makes its size irrelevant to syscalls, so it is kept small: an
// idle connection holds it for its whole life.
const writerSize = 512

// readerSize is the read buffer kept per connection. Client frames are
// small (heartbeats, subscribes; 4 KiB at most) and larger reads bypass the
// buffer, so the HTTP server's 4 KiB reader is replaced by a smaller one.
const readerSize = 1024

// maxPooled is the largest batch buffer returned to the pool; a rare huge
// batch is left to the GC rather than pinned.
const maxPooled = 256 << 10

// Pool hands out batch buffers. One per gateway process.
type Pool struct{ p sync.Pool }

// NewPool returns an empty buffer pool.
func NewPool() *Pool {
	return &Pool{p: sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}}
}

// Conn is a net.Conn whose writes can be batched.
type Conn struct {
	net.Conn
	pool *Pool

	mu       sync.Mutex // orders batched and direct writes (the close frame may come from another goroutine)
	batching bool
	buf      *[]byte
}

// Begin opens a batch: writes are buffered until Flush.
func (c *Conn) Begin() {
	c.mu.Lock()
	if !c.batching {
		c.batching = true
		c.buf = c.pool.p.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// Write buffers p while a batch is open, else writes it through.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batching {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Flush closes the batch and writes everything buffered in one write,
// bounded by timeout (0: no deadline).
func (c *Conn) Flush(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.batching {
		return nil
	}
	c.batching = false
	b := c.buf
	c.buf = nil
	var err error
	if len(*b) > 0 {
		if timeout > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(timeout))
		}
		_, err = c.Conn.Write(*b)
		if timeout > 0 {
			_ = c.Conn.SetWriteDeadline(time.Time{})
		}
	}
	if cap(*b) <= maxPooled {
		*b = (*b)[:0]
		c.pool.p.Put(b)
	}
	return err
}

// ResponseWriter wraps an http.ResponseWriter so that hijacking it yields a
// *Conn. After the websocket library has accepted, Conn() returns it.
type ResponseWriter struct {
	http.ResponseWriter
	pool *Pool
	conn *Conn
}

// Wrap returns w wrapped for batching with buffers from pool.
func Wrap(w http.ResponseWriter, pool *Pool) *ResponseWriter {
	return &ResponseWriter{ResponseWriter: w, pool: pool}
}

// Hijack implements http.Hijacker: the websocket library gets a *Conn and a
// small buffered writer over it.
func (w *ResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &Conn{Conn: nc, pool: w.pool}
	var r io.Reader = nc
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent right after its request (pipelined frames).
		b, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), nc)
	}
	return w.conn, bufio.NewReadWriter(bufio.NewReaderSize(r, readerSize), bufio.NewWriterSize(w.conn, writerSize)), nil
}

// Unwrap lets http.ResponseController reach the original writer.
func (w *ResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Conn returns the hijacked connection, or nil before the hijack.
func (w *ResponseWriter) Conn() *Conn { return w.conn }
