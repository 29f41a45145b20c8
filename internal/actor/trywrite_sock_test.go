//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package actor

import (
	"io"
	"testing"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/stretchr/testify/require"
)

// tryWriteSupported says whether newTryWriter can return a tryWriter here.
const tryWriteSupported = true

// A write the socket has no room for takes what fits, then nothing,
// without an error and without waiting; what it took arrives whole.
func TestTryWriterNeverWaitsForAFullSocket(t *testing.T) {
	client, server := fakebroker.TCPPair(t)
	w := newTryWriter(client)
	require.NotNil(t, w)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	var sent []byte
	for {
		n, err := w.write(chunk)
		require.NoError(t, err)
		sent = append(sent, chunk[:n]...)
		if n == 0 {
			break
		}
	}
	require.NotEmpty(t, sent)
	got := make([]byte, len(sent))
	_, err := io.ReadFull(server, got)
	require.NoError(t, err)
	require.Equal(t, sent, got)
}
