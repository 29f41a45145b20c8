//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package actor

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// A write the loop makes itself that fails (the peer shut its reading
// side) ends the connection at once, with that cause: the callers waiting
// fail, the context is cancelled, without waiting for a read that never
// fails.
func TestFailedDirectWriteEndsTheConnectionAtOnce(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	client, server := fileConn(t, fds[0]), fileConn(t, fds[1])
	shut := make(chan struct{})
	c, _ := scriptedConn(t, Config{}, client, server, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		require.NoError(t, b.Conn().(*net.UnixConn).CloseRead())
		close(shut)
		<-b.T().Context().Done() // keeps the socket open: the client's reads never fail
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	<-shut
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := ch.Call(ctx, &sansio.QueueDeclare{Queue: "q"})
	require.ErrorIs(t, r.Err, syscall.EPIPE, "the write's error, at once")
	require.ErrorIs(t, r.Err, sansio.ErrConnectionClosed)
	require.ErrorIs(t, context.Cause(c.Context()), syscall.EPIPE)
	<-c.Done()
}

// fileConn makes a net.Conn of the socket fd.
func fileConn(t *testing.T, fd int) net.Conn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "socket")
	defer f.Close()
	nc, err := net.FileConn(f)
	require.NoError(t, err)
	return nc
}
