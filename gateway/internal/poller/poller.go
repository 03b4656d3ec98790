// Package poller tells the gateway when an idle socket has something to
// read, so that an idle connection needs no goroutine parked in Read.
//
// A parked reader costs a goroutine stack per connection (8 KiB once a
// request has grown it) for sockets that are silent 99.9% of the time. With
// the poller, each socket is armed once (EPOLLONESHOT) on a shared epoll
// set; when data arrives a goroutine is started to read what is there, and
// the socket is re-armed when its buffers are empty.
//
// Lifecycle: New, then Run on one goroutine, then Close. Run blocks in
// epoll_wait without a timeout; an eventfd in the same set wakes it when
// its context ends or Close is called, so an idle gateway makes no
// periodic syscalls and stops at once.
package poller

import (
	"errors"
	"syscall"
)

// ErrUnsupported is returned by New where there is no epoll.
var ErrUnsupported = errors.New("poller: not supported on this platform")

// ErrClosed is returned by Add, Rearm and Run after Close.
var ErrClosed = errors.New("poller: closed")

// Conn is what the poller needs of a socket (*net.TCPConn, *os.File, …).
// syscall.RawConn is the type the standard library's sockets return; the
// poller's own system calls use golang.org/x/sys/unix.
type Conn interface {
	SyscallConn() (syscall.RawConn, error)
}
