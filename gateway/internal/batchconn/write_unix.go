//go:build unix

package batchconn

import (
	"syscall"
	"unsafe"
)

// writeNonBlocking is write(2) on a non-blocking socket, made without
// telling the Go scheduler: it cannot block, so there is nothing to hand
// the P over for. syscall.Write would enter and leave the scheduler's
// syscall state around every delivery, and on a machine where a loopback
// write takes tens of microseconds the runtime's monitor then keeps waking
// (every 20 µs) to retake the P from "blocked" writers and start threads to
// run the rest: measured here as thousands of extra nanosleep and futex
// calls per second on the core that does the writing.
func writeNonBlocking(fd uintptr, b []byte) (int, error) {
	for {
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		switch errno {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		default:
			return 0, errno
		}
	}
}
