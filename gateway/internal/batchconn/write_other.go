//go:build !unix

package batchconn

import "syscall"

// writeNonBlocking reports a full socket: without a raw write, TryFlush
// leaves every batch to Flush.
func writeNonBlocking(fd uintptr, b []byte) (int, error) { return 0, syscall.EAGAIN }
