//go:build linux

package poller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// Poller is one epoll set shared by every socket of a gateway.
type Poller struct {
	epfd int

	mu       sync.Mutex
	handlers map[uint64]func()
	next     uint64
}

// New creates a poller; call Run to dispatch readiness and Close to free it.
func New() (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poller: epoll_create1: %w", err)
	}
	return &Poller{epfd: fd, handlers: map[uint64]func(){}}, nil
}

// Close frees the epoll set. Run must have returned.
func (p *Poller) Close() error { return syscall.Close(p.epfd) }

const armFlags = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// event carries a token, never an fd: a closed fd number can be reused by a
// new socket before a stale event is handled.
func event(token uint64) syscall.EpollEvent {
	return syscall.EpollEvent{Events: armFlags, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
}

// Add arms c for one readability notification; onReadable then runs on a
// new goroutine. It returns the token to Rearm and Remove with.
func (p *Poller) Add(c Conn, onReadable func()) (uint64, error) {
	p.mu.Lock()
	p.next++
	token := p.next
	p.handlers[token] = onReadable
	p.mu.Unlock()
	if err := p.ctl(c, syscall.EPOLL_CTL_ADD, token); err != nil {
		p.forget(token)
		return 0, err
	}
	return token, nil
}

// Rearm waits for the next readability of c. Level-triggered: data that
// arrived since the last read fires at once.
func (p *Poller) Rearm(c Conn, token uint64) error {
	return p.ctl(c, syscall.EPOLL_CTL_MOD, token)
}

// Remove stops watching c (call it before the socket is closed).
func (p *Poller) Remove(c Conn, token uint64) {
	p.forget(token)
	_ = p.ctl(c, syscall.EPOLL_CTL_DEL, token)
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
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := event(token)
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return fmt.Errorf("poller: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("poller: epoll_ctl: %w", cerr)
	}
	return nil
}

// Run dispatches readiness until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	events := make([]syscall.EpollEvent, 256)
	for ctx.Err() == nil {
		// A bounded wait lets Run notice ctx; the thread blocks in the
		// syscall meanwhile, as Go's own netpoller does.
		n, err := syscall.EpollWait(p.epfd, events, 200)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return fmt.Errorf("poller: epoll_wait: %w", err)
		}
		for i := 0; i < n; i++ {
			token := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			p.mu.Lock()
			fn := p.handlers[token]
			p.mu.Unlock()
			if fn != nil {
				go fn()
			}
		}
	}
	return nil
}
