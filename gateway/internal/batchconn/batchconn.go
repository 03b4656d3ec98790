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
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/ocvr/realtime/gateway/internal/wsframe"
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
	// head is the handshake's response, not yet sent: it goes out with the
	// connection's first write (ready, or a refusal's close frame), one
	// syscall instead of two per connect.
	head []byte
	raw  syscall.RawConn // the socket, for TryFlush's non-blocking write; nil: not a socket

	br *bufio.Reader // the read buffer handed to the websocket library
	// filter rewrites the client's bytes before the library reads them
	// (permessage-deflate's inflation); nil: none.
	filter ReadFilter
	// prefix: the HTTP server had read bytes past the request (pipelined
	// frames); the websocket library replays them before reading the
	// socket, i.e. before the first call of Read.
	prefix bool

	// frames follows the client's frame boundaries: the websocket library
	// answers control frames inside its Read, so they are counted here.
	frames    wsframe.Counter
	controls  int          // control frames counted before onControl was set
	onControl func() error // called once per control frame read (reader's goroutine)
}

// Read reads from the socket (through the filter, if any). The websocket
// library's reader calls it only once it has consumed the replayed prefix.
func (c *Conn) Read(p []byte) (int, error) {
	if c.filter != nil {
		return c.filter.Read(p)
	}
	return c.readSocket(p)
}

// socket reads the socket itself, under any filter.
type socket struct{ c *Conn }

func (s socket) Read(p []byte) (int, error) { return s.c.readSocket(p) }

func (c *Conn) readSocket(p []byte) (int, error) {
	c.prefix = false
	n, err := c.Conn.Read(p)
	if n > 0 {
		if cerr := c.countControl(c.frames.Feed(p[:n])); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

func (c *Conn) countControl(n int) error {
	if c.onControl == nil {
		c.controls += n
		return nil
	}
	for ; n > 0; n-- {
		if err := c.onControl(); err != nil {
			return err
		}
	}
	return nil
}

// OnControlFrame has f called for every control frame (ping, pong, close)
// the client sends, on the reading goroutine, as the library reads it; it
// is called at once for those already read. An error from f fails the read
// that brought the frame (the connection is then lost to its reader). Set
// it before serving reads.
func (c *Conn) OnControlFrame(f func() error) {
	c.onControl = f
	n := c.controls
	c.controls = 0
	_ = c.countControl(n) // no read to fail yet: f's own verdict stands
}

// Pending reports whether bytes are already read from the socket but not
// yet consumed: a reader must go on without waiting for the socket to be
// readable again. Only the connection's reader may call it.
func (c *Conn) Pending() bool {
	return c.prefix || (c.br != nil && c.br.Buffered() > 0) || (c.filter != nil && c.filter.Buffered() > 0)
}

// A ReadFilter rewrites a connection's incoming bytes before the websocket
// library reads them; Buffered is how many it holds ready without reading
// its source.
type ReadFilter interface {
	io.Reader
	Buffered() int
}

// FilterReads has the connection's incoming bytes (the socket's, and any
// the HTTP server read past the request) pass through the filter newFilter
// returns. Call it before the upgrade.
func (w *ResponseWriter) FilterReads(newFilter func(src io.Reader) ReadFilter) {
	w.newFilter = newFilter
}

// Begin opens a batch: writes are buffered until Flush.
func (c *Conn) Begin() {
	c.mu.Lock()
	c.beginLocked()
	c.mu.Unlock()
}

func (c *Conn) beginLocked() {
	if !c.batching {
		c.batching = true
		c.buf = c.pool.p.Get().(*[]byte)
		if c.head != nil {
			*c.buf = append(*c.buf, c.head...)
			c.head = nil
		}
	}
}

// TryBegin is Begin for a caller that must not wait: it fails while
// another goroutine holds the connection (e.g. the websocket library writing
// a close frame or a pong to a socket that does not take it).
func (c *Conn) TryBegin() bool {
	if !c.mu.TryLock() {
		return false
	}
	c.beginLocked()
	c.mu.Unlock()
	return true
}

// AppendText appends one unmasked, unfragmented text frame carrying
// payload to the open batch. It is how events are written: the frame is
// encoded straight into the batch buffer, with none of the websocket
// library's per-message work. The library's own writes (close, pong) are
// small single Write calls ordered by the same lock, so frames never
// interleave.
func (c *Conn) AppendText(payload []byte) { c.appendFrame(0x81, payload) }

// AppendDeflated is AppendText for a payload compressed by
// permessage-deflate (RSV1 set): the same compressed bytes go to every
// socket that negotiated the extension. The websocket library knows
// nothing of it (it runs with compression off), and needs not: it never
// writes a data frame on these connections.
func (c *Conn) AppendDeflated(payload []byte) { c.appendFrame(0xC1, payload) }

func (c *Conn) appendFrame(b0 byte, payload []byte) {
	c.mu.Lock()
	b := *c.buf
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, b0, byte(n))
	case n < 1<<16:
		b = append(b, b0, 126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	*c.buf = append(b, payload...)
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
	if c.head != nil {
		c.beginLocked() // the held response and p in one write
		*c.buf = append(*c.buf, p...)
		c.batching = false
		b := c.buf
		c.buf = nil
		_, err := c.Conn.Write(*b)
		c.putLocked(b)
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// putLocked returns a batch buffer to the pool (c.mu held).
func (c *Conn) putLocked(b *[]byte) {
	if cap(*b) <= maxPooled {
		*b = (*b)[:0]
		c.pool.p.Put(b)
	}
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
	c.putLocked(b)
	return err
}

// TryFlush writes the open batch with one non-blocking write: no goroutine
// waits and no deadline is needed. done reports that the batch is closed:
// everything was written, or err says why not. Otherwise the socket took
// only part of it (or the Conn has no socket to write to without waiting):
// the rest stays buffered in the open batch, and the caller must finish it
// with Flush from a goroutine that may block.
func (c *Conn) TryFlush() (done bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.batching {
		return true, nil
	}
	bp := c.buf
	b := *bp
	if len(b) > 0 {
		if c.raw == nil {
			return false, nil
		}
		var n int
		var werr error
		if rerr := c.raw.Write(func(fd uintptr) bool {
			n, werr = writeNonBlocking(fd, b)
			return true // one attempt: never wait for the socket
		}); rerr != nil {
			werr = rerr
		}
		if n < 0 {
			n = 0
		}
		switch {
		case werr == syscall.EAGAIN || (werr == nil && n < len(b)):
			*bp = b[:copy(b, b[n:])]
			return false, nil
		case werr != nil:
			err = &net.OpError{Op: "write", Net: "tcp", Addr: c.RemoteAddr(), Err: werr}
		}
	}
	c.batching = false
	c.buf = nil
	if cap(b) <= maxPooled {
		*bp = b[:0]
		c.pool.p.Put(bp)
	}
	return true, err
}

// ResponseWriter wraps an http.ResponseWriter so that hijacking it yields a
// *Conn. After the websocket library has accepted, Conn() returns it.
type ResponseWriter struct {
	http.ResponseWriter
	pool *Pool
	conn *Conn
	// switching: the websocket library wrote 101 Switching Protocols; the
	// response is held back and sent with the connection's first write.
	switching bool
	newFilter func(src io.Reader) ReadFilter
}

// WriteHeader holds back a 101 response (see Conn.head); any other status
// is written as usual.
func (w *ResponseWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols && w.conn == nil {
		w.switching = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// switchingResponse is the held 101 response with the headers the
// websocket library set.
func switchingResponse(h http.Header) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = h.Write(&b)
	b.WriteString("\r\n")
	return b.Bytes()
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
	c := &Conn{Conn: nc, pool: w.pool}
	if w.switching {
		c.head = switchingResponse(w.Header())
	}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	n := brw.Reader.Buffered()
	switch {
	case w.newFilter != nil:
		// Read goes through the filter, which reads the early bytes first,
		// then the socket. They are not read ahead here (a filter may need
		// more of the socket to make anything of them): Pending reports
		// them by prefix until the socket is read.
		var src io.Reader = socket{c}
		if n > 0 {
			b, _ := brw.Reader.Peek(n)
			_ = c.countControl(c.frames.Feed(b))
			src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), src)
			c.prefix = true
		}
		c.filter = w.newFilter(src)
		c.br = bufio.NewReaderSize(c, readerSize)
	case n == 0:
		c.br = bufio.NewReaderSize(c, readerSize)
	default:
		// Bytes the client sent right after its request: move them into the
		// new buffer, where the websocket library looks for them.
		b, _ := brw.Reader.Peek(n)
		_ = c.countControl(c.frames.Feed(b))
		c.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), c), max(readerSize, n))
		if _, err := c.br.Peek(n); err != nil {
			return nil, nil, err
		}
		c.prefix = true
	}
	w.conn = c
	return c, bufio.NewReadWriter(c.br, bufio.NewWriterSize(c, writerSize)), nil
}

// Unwrap lets http.ResponseController reach the original writer.
func (w *ResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Conn returns the hijacked connection, or nil before the hijack.
func (w *ResponseWriter) Conn() *Conn { return w.conn }

// SyscallConn exposes the socket's file descriptor (for the poller).
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("batchconn: socket has no file descriptor")
	}
	return sc.SyscallConn()
}
