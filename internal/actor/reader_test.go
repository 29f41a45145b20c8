package actor

import (
	"net"
	"testing"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/stretchr/testify/require"
)

func TestReadSizerGrowsWhileReadsFillAndShrinksWhenSmall(t *testing.T) {
	var s readSizer
	size := func() int { return 1 << (minReadShift + s.class) }
	require.Equal(t, 4<<10, size(), "starts small")
	for range 10 {
		s.next(size(), size()) // full reads: more was waiting
	}
	require.Equal(t, maxReadSize, size(), "grows to the largest size and no further")
	s.next(size()/2, size())
	require.Equal(t, maxReadSize, size(), "a read that half fills it keeps the size")
	for range 10 {
		s.next(8, size()) // a heartbeat
	}
	require.Equal(t, 4<<10, size(), "shrinks to the smallest size and no further")
}

func TestReadBuffersComeInTheirSizeClass(t *testing.T) {
	for class := range uint8(maxReadShift - minReadShift + 1) {
		rb := getReadBuf(class)
		require.Len(t, rb.b, 1<<(minReadShift+class))
		rb.n = 7
		putReadBuf(rb)
		require.Zero(t, rb.n)
	}
}

func TestRecyclerHandsBuffersBackOnlyToABusyReader(t *testing.T) {
	var r recycler
	rb := r.get(0)
	r.give(rb)
	require.Same(t, rb, r.get(0), "a busy reader gets the buffer back")
	r.give(rb)
	larger := r.get(1)
	require.Len(t, larger.b, 8<<10, "a buffer of another size goes to the pool")
	require.Nil(t, r.slot.Load())

	r.wait()
	r.give(larger)
	require.Same(t, readerWaiting, r.slot.Load(), "a waiting reader's buffers go to the pool")
	r.get(1)
	require.Nil(t, r.slot.Load(), "awake again")
}

func TestSockReaderOnlyForSocketsWithADescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	require.Nil(t, newSockReader(a, nil))
	client, _ := fakebroker.TCPPair(t)
	require.Equal(t, tryWriteSupported, newSockReader(client, &recycler{}) != nil)
}

// A connection that once moved a burst lets go of the buffers it grew at
// the next heartbeat tick, and keeps the small ones.
func TestHeartbeatTickLetsGoOfLargeBuffers(t *testing.T) {
	l := &loop{c: &Conn{}}
	small := make([]byte, 0, 4<<10)
	l.coreSpares = [][]byte{make([]byte, 0, 4<<20), small}
	l.inbuf = make([]byte, 0, 1<<20)
	l.trimBuffers()
	require.Len(t, l.coreSpares, 1)
	require.Equal(t, cap(small), cap(l.coreSpares[0]))
	require.Nil(t, l.inbuf)

	l.inbuf = make([]byte, 5, 1<<20)
	l.trimBuffers()
	require.Len(t, l.inbuf, 5, "a partial frame is kept")

	// The core's current buffer goes out with the tick's heartbeat; it is
	// not kept either.
	l.coreSpares = nil
	l.trimming = true
	l.writeDone(&writeBatch{core: [][]byte{make([]byte, 8, 4<<20)}})
	require.Empty(t, l.coreSpares)
	l.trimming = false
	l.writeDone(&writeBatch{core: [][]byte{make([]byte, 8, 4<<20)}})
	require.Len(t, l.coreSpares, 1, "between ticks a large buffer serves the next burst")
}
