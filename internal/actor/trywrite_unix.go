//go:build unix

package actor

import (
	"errors"
	"net"
	"syscall"
)

// tryWriter writes without blocking on sockets that expose their file
// descriptor, so that the loop can write a batch itself when the socket has
// room: handing every batch to the writer goroutine costs two goroutine
// wake-ups, which on a virtual machine cost more than the write.
type tryWriter struct {
	raw syscall.RawConn
	// The write in progress, kept here so that the callback handed to
	// raw.Write is made once and each write allocates nothing.
	buf     []byte
	n       int
	writeFn func(fd uintptr) bool
}

func newTryWriter(nc net.Conn) *tryWriter {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil // TLS, pipes, wrappers: always through the writer
	}
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	w := &tryWriter{raw: raw}
	w.writeFn = w.writeFD
	return w
}

// write makes one non-blocking write of b and returns how many bytes the
// socket took. It never waits: a full socket buffer returns 0, and any
// error is left for the writer goroutine to meet and report.
func (w *tryWriter) write(b []byte) int {
	w.buf, w.n = b, 0
	err := w.raw.Write(w.writeFn)
	w.buf = nil
	if err != nil {
		return 0
	}
	return w.n
}

func (w *tryWriter) writeFD(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), w.buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		w.n = max(n, 0)
		return true // done: never wait for the socket
	}
}
