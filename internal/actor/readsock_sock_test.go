//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package actor

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/stretchr/testify/require"
)

// An idle connection's reader waits for the socket without a buffer: the
// attempt that finds nothing to read gives its buffer back.
func TestSockReaderWaitsWithoutABuffer(t *testing.T) {
	client, server := fakebroker.TCPPair(t)
	var recycle recycler
	r := newSockReader(client, &recycle)
	recycle.give(getReadBuf(0)) // as if the loop had just handed one back
	raw, err := client.SyscallConn()
	require.NoError(t, err)
	var done bool
	require.NoError(t, raw.Control(func(fd uintptr) { done = r.readFD(fd) }))
	require.False(t, done, "nothing to read: wait for the socket")
	require.Nil(t, r.rb, "holding no buffer")
	require.Same(t, readerWaiting, recycle.slot.Load(), "nor keeping one to recycle")

	_, err = server.Write([]byte("frame"))
	require.NoError(t, err)
	rb, err := r.read(0)
	require.NoError(t, err)
	require.Equal(t, "frame", string(rb.b[:rb.n]))
	putReadBuf(rb)

	require.NoError(t, server.Close())
	rb, err = r.read(0)
	require.Nil(t, rb)
	require.ErrorIs(t, err, io.EOF)
}

func TestSockReaderReportsTheSocketsErrorAndDeadline(t *testing.T) {
	client, server := fakebroker.TCPPair(t)
	r := newSockReader(client, &recycler{})
	require.NoError(t, client.SetReadDeadline(time.Now().Add(time.Millisecond)))
	rb, err := r.read(0)
	require.Nil(t, rb)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "writeFailed relies on it")

	require.NoError(t, client.SetReadDeadline(time.Time{}))
	require.NoError(t, server.SetLinger(0))
	require.NoError(t, server.Close()) // a reset
	rb, err = r.read(0)
	require.Nil(t, rb)
	require.ErrorIs(t, err, syscall.ECONNRESET)
	var op *net.OpError
	require.True(t, errors.As(err, &op), "%T: the error nc.Read would give", err)
}
