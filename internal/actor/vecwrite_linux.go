//go:build linux && (amd64 || arm64)

package actor

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// vecWriter makes vectored writes that never block (sendmsg with
// MSG_DONTWAIT, as tryWriter) on sockets that expose their descriptor; it
// takes tryWriter's place where it is available. It holds mu, Conn.lendMu,
// around each system call only: between them, waiting for the socket,
// nothing holds the memory of a lent body, so a publisher whose context
// ends can copy what is left of it and point the write at its copy (see
// loan.takeBack).
type vecWriter struct {
	raw syscall.RawConn
	mu  *sync.Mutex
	// The write in progress, kept here so that the callbacks handed to
	// raw.Write are made once and each write allocates nothing.
	batch   *writeBatch
	n       int
	err     error
	iov     []syscall.Iovec
	tryFn   func(fd uintptr) bool
	untilFn func(fd uintptr) bool
}

// maxIovecs is IOV_MAX on Linux: a longer batch takes more calls.
const maxIovecs = 1024

// sendMax bounds the bytes of one send. Sends are raw system calls, as
// sendNoWait's, which the scheduler is not told of: it would wake sysmon,
// which may hand the P to another thread, a context switch or two per
// send. A raw call holds its P, and any stop of the world, until it
// returns: on loopback, where the send also delivers to the peer, 256 KiB
// take some tens of microseconds; a 1 MiB body takes four sends.
const sendMax = 256 << 10

func newVecWriter(nc net.Conn, mu *sync.Mutex) *vecWriter {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil // TLS, pipes, wrappers: the copying path
	}
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	w := &vecWriter{raw: raw, mu: mu}
	w.tryFn = func(fd uintptr) bool {
		w.writeFD(fd)
		return true // never wait for the socket
	}
	w.untilFn = func(fd uintptr) bool {
		w.writeFD(fd)
		return w.err != nil || w.batch.written()
	}
	return w
}

// try writes what the socket takes of what is left of b, without waiting,
// and returns how many bytes it took. A full socket is not an error.
func (w *vecWriter) try(b *writeBatch) (int, error) {
	return w.run(b, w.tryFn)
}

// writeAll writes what is left of b, waiting for the socket as long as it
// takes (the runtime's poller waits, until a deadline or the socket's
// close).
func (w *vecWriter) writeAll(b *writeBatch) error {
	_, err := w.run(b, w.untilFn)
	return err
}

func (w *vecWriter) run(b *writeBatch, fn func(fd uintptr) bool) (int, error) {
	w.batch, w.n, w.err = b, 0, nil
	if err := w.raw.Write(fn); err != nil && w.err == nil {
		w.err = err // closed, or the write deadline passed
	}
	w.batch = nil
	return w.n, w.err
}

// writeFD writes until the batch is written, the socket is full (which
// arms the poller's wake-up for when it drains) or fails.
func (w *vecWriter) writeFD(fd uintptr) {
	for w.err == nil && !w.batch.written() {
		n, err := w.send(fd)
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN):
			return
		case err != nil:
			w.err = err
		default:
			w.n += n
		}
	}
}

// send makes one sendmsg of what is left of the batch, under mu, and
// advances the batch past what it wrote.
func (w *vecWriter) send(fd uintptr) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.batch
	w.iov = w.iov[:0]
	size := 0
	for _, v := range b.bufs[b.cur:] {
		if len(w.iov) == maxIovecs || size == sendMax {
			break
		}
		if len(v) > 0 {
			n := min(len(v), sendMax-size)
			iov := syscall.Iovec{Base: &v[0]}
			iov.SetLen(n)
			w.iov = append(w.iov, iov)
			size += n
		}
	}
	if len(w.iov) == 0 { // only empty buffers were left
		b.advance(0)
		return 0, nil
	}
	msg := syscall.Msghdr{Iov: &w.iov[0], Iovlen: uint64(len(w.iov))}
	r, _, errno := syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&msg)),
		syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
	clear(w.iov) // keep no caller's memory alive
	if errno != 0 {
		return 0, errno
	}
	b.advance(int(r))
	return int(r), nil
}
