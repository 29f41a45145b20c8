//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package actor

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// sockReader reads a socket that exposes its file descriptor without
// holding a buffer while it waits: it takes a buffer from the pool, tries a
// read that does not wait, and when nothing is there gives the buffer back
// before waiting for the socket to become readable. The runtime's poller
// does the waiting, as for nc.Read, so the number of system calls is the
// same. An idle connection then holds no read buffer.
//
// It reads with MSG_DONTWAIT for the reason tryWriter writes with it: the
// socket's own mode may have been made blocking.
type sockReader struct {
	nc  net.Conn
	raw syscall.RawConn
	// The read in progress, kept here so that the callback handed to
	// raw.Read is made once and each read allocates nothing.
	class   uint8
	rb      *readBuf
	err     error
	readFn  func(fd uintptr) bool
	recycle *recycler // buffers the loop handed back
}

// newSockReader returns a sockReader for nc that takes its buffers from
// recycle first, or nil when nc does not expose its descriptor (TLS, pipes,
// wrappers).
func newSockReader(nc net.Conn, recycle *recycler) *sockReader {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	r := &sockReader{nc: nc, raw: raw, recycle: recycle}
	r.readFn = r.readFD
	return r
}

func (r *sockReader) read(class uint8) (*readBuf, error) {
	r.class, r.rb, r.err = class, nil, nil
	if err := r.raw.Read(r.readFn); err != nil {
		return nil, err // closed, or the read deadline passed
	}
	rb := r.rb
	r.rb = nil
	return rb, r.err
}

func (r *sockReader) readFD(fd uintptr) bool {
	rb := r.recycle.get(r.class)
	for {
		n, err := recvNoWait(int(fd), rb.b)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			putReadBuf(rb)
			r.recycle.wait()
			return false // wait until readable, holding no buffer
		case err != nil:
			putReadBuf(rb)
			r.err = &net.OpError{Op: "read", Net: r.nc.LocalAddr().Network(), Source: r.nc.LocalAddr(),
				Addr: r.nc.RemoteAddr(), Err: os.NewSyscallError("read", err)}
		case n == 0:
			putReadBuf(rb)
			r.err = io.EOF
		default:
			rb.n = n
			r.rb = rb
		}
		return true
	}
}
