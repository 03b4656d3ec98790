package presence_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowLink is a TCP relay in front of a real NATS server that holds every
// chunk of bytes, in both directions, for a settable latency: JetStream
// "slowing down" as a pod sees it (a busy or distant server), with the real
// server and client underneath. Order is kept; only timing changes.
type slowLink struct {
	t      *testing.T
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds each direction

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup // the accept loop and every pump
}

func newSlowLink(t *testing.T, targetURL string) *slowLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := targetURL[len("nats://"):]
	l := &slowLink{t: t, ln: ln, target: target}
	l.wg.Add(1)
	go l.accept() // owner: the link; exits when Close closes the listener
	t.Cleanup(l.close)
	return l
}

func (l *slowLink) URL() string { return "nats://" + l.ln.Addr().String() }

// SetDelay sets the one-way latency for bytes read from now on.
func (l *slowLink) SetDelay(d time.Duration) { l.delay.Store(int64(d)) }

func (l *slowLink) close() {
	l.ln.Close()
	l.mu.Lock()
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

func (l *slowLink) accept() {
	defer l.wg.Done()
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", l.target)
		if err != nil {
			in.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, in, out)
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pump(out, in) // owner: the link; exits when either side closes
		go l.pump(in, out)
	}
}

// pump copies src to dst, each chunk leaving delay after it arrived.
func (l *slowLink) pump(dst, src net.Conn) {
	defer l.wg.Done()
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 4096)
	var rd sync.WaitGroup
	rd.Add(1)
	go func() { // owner: this pump; exits when src fails, closing ch
		defer rd.Done()
		defer close(ch)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{append([]byte(nil), buf[:n]...), time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if wait := time.Until(c.at.Add(time.Duration(l.delay.Load()))); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range ch { // let the reader finish
	}
	rd.Wait()
}
