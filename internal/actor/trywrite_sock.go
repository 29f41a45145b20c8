//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package actor

import (
	"errors"
	"net"
	"syscall"
)

// tryWriter writes without blocking on sockets that expose their file
// descriptor, so that the loop can make a write itself when the socket has
// room: handing every write to the writer goroutine costs two goroutine
// wake-ups, which on a virtual machine cost more than the write.
//
// It sends with MSG_DONTWAIT, which never blocks whatever the socket's mode:
// a descriptor taken with File().Fd() turns the shared socket blocking, and a
// plain write would then stall the loop.
type tryWriter struct {
	raw syscall.RawConn
	// The write in progress, kept here so that the callback handed to
	// raw.Write is made once and each write allocates nothing.
	buf     []byte
	n       int
	err     error
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

// write makes one write of b that does not wait for the socket, and returns
// how many bytes the socket took. A full socket takes 0 bytes and is not an
// error; any other failure is returned, so that the connection ends with
// the socket's own error (a reset reported once, to the first write).
func (w *tryWriter) write(b []byte) (int, error) {
	w.buf, w.n, w.err = b, 0, nil
	if err := w.raw.Write(w.writeFn); err != nil {
		w.err = err // the socket is closed
	}
	w.buf = nil
	return w.n, w.err
}

func (w *tryWriter) writeFD(fd uintptr) bool {
	for {
		n, err := sendNoWait(int(fd), w.buf)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			err = nil
		}
		w.n, w.err = max(n, 0), err
		return true // done: never wait for the socket
	}
}
