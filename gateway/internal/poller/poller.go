// Package poller tells the gateway when an idle socket has something to
// read, so that an idle connection needs no goroutine parked in Read.
//
// A parked reader costs a goroutine stack per connection (8 KiB once a
// request has grown it) for sockets that are silent 99.9% of the time. With
// the poller, each socket is armed once (EPOLLONESHOT) on a shared epoll
// set; when data arrives a goroutine is started to read what is there, and
// the socket is re-armed when its buffers are empty.
package poller

import (
	"errors"
	"syscall"
)

// ErrUnsupported is returned by New where there is no epoll.
var ErrUnsupported = errors.New("poller: not supported on this platform")

// Conn is what the poller needs of a socket.
type Conn interface {
	SyscallConn() (syscall.RawConn, error)
}
