//go:build linux

package poller

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Poller is one epoll set shared by every socket of a gateway.
type Poller struct {
	epfd int
	evfd int // eventfd in the epoll set under wakeToken: wakes Run

	// life guards the file descriptors: epoll_ctl and the wake write hold
	// it for reading, so Close cannot free (and the kernel reuse) an fd
	// number under them.
	life    sync.RWMutex
	closed  bool          // Close was called: no new registrations, Run stops
	freed   bool          // the fds are closed
	running bool          // Run has started
	runDone chan struct{} // closed when Run returns

	mu       sync.Mutex
	handlers map[uint64]func()
	next     uint64
}

// wakeToken is the eventfd's token; socket tokens start at 1.
const wakeToken = 0

// New creates a poller; call Run to dispatch readiness and Close to free it.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poller: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("poller: eventfd: %w", err)
	}
	// Level-triggered and never re-armed: Run drains the counter.
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeToken}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("poller: epoll_ctl eventfd: %w", err)
	}
	return &Poller{epfd: epfd, evfd: evfd, handlers: map[uint64]func(){}, runDone: make(chan struct{})}, nil
}

// Close stops Run (waiting for it to return) and frees the epoll set and
// the eventfd. Handlers already started keep running; Add, Rearm and Run
// return ErrClosed afterwards, Remove does nothing. Safe to call more than
// once and without Run.
func (p *Poller) Close() error {
	p.life.Lock()
	if p.closed {
		p.life.Unlock()
		return nil
	}
	p.closed = true
	running := p.running
	p.life.Unlock()
	if running {
		p.wake()
		<-p.runDone
	}
	p.life.Lock()
	defer p.life.Unlock()
	p.freed = true
	return errors.Join(unix.Close(p.evfd), unix.Close(p.epfd))
}

// wake makes a blocked epoll_wait return.
func (p *Poller) wake() {
	p.life.RLock()
	defer p.life.RUnlock()
	if p.freed {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	// EAGAIN means the counter is saturated: a wake is pending anyway.
	_, _ = unix.Write(p.evfd, one[:])
}

const armFlags = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// event carries a token, never an fd: a closed fd number can be reused by a
// new socket before a stale event is handled.
func event(token uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: armFlags, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
}

func eventToken(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Add arms c for one readability notification; onReadable then runs on a
// new goroutine. It returns the token to Rearm and Remove with.
func (p *Poller) Add(c Conn, onReadable func()) (uint64, error) {
	p.mu.Lock()
	p.next++
	token := p.next
	p.handlers[token] = onReadable
	p.mu.Unlock()
	if err := p.ctl(c, unix.EPOLL_CTL_ADD, token); err != nil {
		p.forget(token)
		return 0, err
	}
	return token, nil
}

// Rearm waits for the next readability of c. Level-triggered: data that
// arrived since the last read fires at once.
func (p *Poller) Rearm(c Conn, token uint64) error {
	return p.ctl(c, unix.EPOLL_CTL_MOD, token)
}

// Remove stops watching c (call it before the socket is closed).
func (p *Poller) Remove(c Conn, token uint64) {
	p.forget(token)
	_ = p.ctl(c, unix.EPOLL_CTL_DEL, token)
}

func (p *Poller) forget(token uint64) {
	p.mu.Lock()
	delete(p.handlers, token)
	p.mu.Unlock()
}

func (p *Poller) ctl(c Conn, op int, token uint64) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("poller: %w", err)
	}
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return ErrClosed
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := event(token)
		cerr = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return fmt.Errorf("poller: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("poller: epoll_ctl: %w", cerr)
	}
	return nil
}

// Run dispatches readiness until ctx ends or Close is called; it returns
// nil then. It may be called once.
func (p *Poller) Run(ctx context.Context) error {
	p.life.Lock()
	switch {
	case p.closed:
		p.life.Unlock()
		return ErrClosed
	case p.running:
		p.life.Unlock()
		return errors.New("poller: Run called twice")
	}
	p.running = true
	p.life.Unlock()
	defer close(p.runDone)
	// The wake is a callback, not a goroutine waiting on ctx.
	stop := context.AfterFunc(ctx, p.wake)
	defer stop()

	events := make([]unix.EpollEvent, 256)
	var drain [8]byte
	for {
		// No timeout: the thread blocks in the syscall, as Go's own
		// netpoller does, until a socket or the eventfd is readable.
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("poller: epoll_wait: %w", err)
		}
		for i := 0; i < n; i++ {
			token := eventToken(&events[i])
			if token == wakeToken {
				_, _ = unix.Read(p.evfd, drain[:]) // reset the counter
				continue
			}
			p.mu.Lock()
			fn := p.handlers[token]
			p.mu.Unlock()
			if fn != nil {
				go fn()
			}
		}
		if ctx.Err() != nil || p.isClosed() {
			return nil
		}
	}
}

func (p *Poller) isClosed() bool {
	p.life.RLock()
	defer p.life.RUnlock()
	return p.closed
}
