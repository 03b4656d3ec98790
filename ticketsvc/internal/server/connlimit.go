package server

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// connLimitListener bounds the public listener's open connections, so a
// flood of clients cannot exhaust file descriptors or memory (each
// connection holds a descriptor, a goroutine and two 4 KiB buffers). At the
// cap it stops accepting; new connections wait in the kernel's accept queue
// until one closes (netutil.LimitListener's behaviour, plus a count).
//
// A cap alone would let idle keep-alive connections hold every slot for the
// server's IdleTimeout while new clients wait, so shedKeepAlive makes
// responses close their connection once the listener is nearly full: slots
// then turn over with every request.
type connLimitListener struct {
	net.Listener
	slots     chan struct{} // one token per open connection, taken before Accept
	n         atomic.Int64  // connections accepted and not closed (slots also counts a waiting Accept)
	soft      int64         // from this many open connections on, responses close theirs
	done      chan struct{}
	closeOnce sync.Once
}

func newConnLimitListener(ln net.Listener, max int) *connLimitListener {
	return &connLimitListener{
		Listener: ln,
		slots:    make(chan struct{}, max),
		soft:     int64(max - max/4), // keep-alive up to 3/4 full
		done:     make(chan struct{}),
	}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.n.Add(1)
	return &limitedConn{Conn: c, release: func() {
		l.n.Add(-1)
		<-l.slots
	}}, nil
}

// Close unblocks an Accept waiting for a free slot (http.Server.Shutdown
// closes the listener and waits for Serve to return).
func (l *connLimitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// open is the number of connections accepted and not yet closed.
func (l *connLimitListener) open() int64 { return l.n.Load() }

// shedKeepAlive answers with "Connection: close" while the listener is at
// least 3/4 full. net/http closes the connection after such a response; the
// client opens a new one for its next request, which is cheap next to
// waiting for an idle connection to time out.
func (l *connLimitListener) shedKeepAlive(next http.Handler) http.Handler {
	closeHdr := []string{"close"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.open() >= l.soft {
			w.Header()["Connection"] = closeHdr
		}
		next.ServeHTTP(w, r)
	})
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
