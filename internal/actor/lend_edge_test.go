//go:build linux && (amd64 || arm64)

package actor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// fillBody fills buf[:size] with the body of the message keyed key.
func fillBody(buf []byte, key string, size int) []byte {
	seed := 0
	for _, c := range key {
		seed = seed*31 + int(c)
	}
	b := buf[:size]
	for i := range b {
		b[i] = byte(i*7 + i>>8 + seed)
	}
	return b
}

// pacedConn makes the broker's reads slow now and then, so that the
// client's socket fills and its writes are taken in parts.
type pacedConn struct {
	net.Conn
	reads int
}

func (p *pacedConn) Read(b []byte) (int, error) {
	p.reads++
	if p.reads%3 == 0 {
		time.Sleep(100 * time.Microsecond) // pacing, not synchronisation
	}
	return p.Conn.Read(b[:min(len(b), 16<<10)])
}

// strictPublishes reads the client's frames as a strict broker would and
// returns the publishes' bodies by routing key (see strictContent). It
// answers queue.declare, and connection.close, with which it returns.
func strictPublishes(b *fakebroker.Broker, frameMax int) map[string][]byte {
	got := map[string][]byte{}
	for {
		r, err := b.Next()
		if err != nil {
			return got
		}
		switch m := r.Method.(type) {
		case *sansio.BasicPublish:
			_, dup := got[m.RoutingKey]
			require.False(b.T(), dup, "%s came twice", m.RoutingKey)
			got[m.RoutingKey] = strictContent(b, r, frameMax)
		case *sansio.QueueDeclare:
			b.Send(r.Channel, &sansio.QueueDeclareOk{Queue: m.Queue})
		case *sansio.ConnectionClose:
			b.Send(0, &sansio.ConnectionCloseOk{})
			return got
		}
	}
}

// strictContent reads the content of the publish method r and returns its
// body, checking its frames as a strict broker would: each within
// frameMax, the header and the body frames right after the method, on its
// channel, nothing else between them, adding up to the announced size.
func strictContent(b *fakebroker.Broker, r fakebroker.Frame, frameMax int) []byte {
	t := b.T()
	key := r.Method.(*sansio.BasicPublish).RoutingKey
	next := func() fakebroker.Frame {
		f, err := b.Next()
		require.NoError(t, err)
		require.LessOrEqual(t, len(f.Payload)+8, frameMax)
		require.Equal(t, r.Channel, f.Channel, "%s: a frame of another channel in its content", key)
		return f
	}
	h := next()
	require.Equal(t, sansio.FrameHeader, int(h.Type), "%s: a content header right after the method", key)
	var dec sansio.Decoder
	var ch sansio.ContentHeader
	require.NoError(t, dec.DecodeContentHeader(h.Payload, &ch))
	body := []byte{}
	for uint64(len(body)) < ch.BodySize {
		f := next()
		require.Equal(t, sansio.FrameBody, int(f.Type), "%s: a body frame at %d of %d", key, len(body), ch.BodySize)
		body = append(body, f.Payload...)
	}
	require.Equal(t, ch.BodySize, uint64(len(body)), key)
	return body
}

// Lent publishes whose contexts end at every stage of their write (queued,
// being written, written), among copied ones on two channels, arrive
// byte for byte and framed right, for frame sizes whose body frames end
// full, with one byte, or anywhere, although every publisher overwrites
// its one body buffer as soon as Publish returns; those Publish refused
// do not arrive; the budget is whole again at the end.
func TestLentPublishesGivenUpAnywhereArriveWhole(t *testing.T) {
	for _, frameMax := range []int{8192, 131072} {
		t.Run(strconv.Itoa(frameMax), func(t *testing.T) {
			chunk := frameMax - 8
			full := (lendMin/chunk + 1) * chunk // the first multiple of chunk from lendMin
			sizes := []int{lendMin, full, 1 << 10, full + 1, lendMin + 1, 20 << 10, lendMin - 1, 1 << 20, full + chunk - 1, 3 * full}
			timeouts := []time.Duration{0, 10 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond}
			got := make(chan map[string][]byte, 1)
			client, server := fakebroker.TCPPair(t)
			require.NoError(t, client.SetWriteBuffer(64<<10))
			require.NoError(t, server.SetReadBuffer(64<<10))
			c, _ := scriptedConn(t, Config{Core: sansio.Config{FrameMax: uint32(frameMax)}, MaxOutgoing: 2 << 20},
				client, &pacedConn{Conn: server}, func(b *fakebroker.Broker) {
					b.Handshake(0)
					b.OpenChannel()
					b.OpenChannel()
					got <- strictPublishes(b, frameMax)
				})
			require.Equal(t, uint32(frameMax), c.tuning.FrameMax)
			chans := make([]*Channel, 2)
			for i := range chans {
				var err error
				chans[i], err = c.OpenChannel(context.Background())
				require.NoError(t, err)
			}

			const publishers, each = 3, 30
			var mu sync.Mutex
			sent := map[string]int{}
			var failed []error
			var wg sync.WaitGroup
			for p := range publishers {
				wg.Go(func() {
					buf := make([]byte, slices.Max(sizes))
					ch := chans[p%2]
					for i := range each {
						key := fmt.Sprintf("%d-%d", p, i)
						size := sizes[(p+i)%len(sizes)]
						ctx, cancel := context.Background(), context.CancelFunc(func() {})
						if d := timeouts[(p*7+i)%len(timeouts)]; d > 0 {
							ctx, cancel = context.WithTimeout(ctx, d)
						}
						err := publishBody(ctx, ch, key, fillBody(buf, key, size), nil)
						cancel()
						for j := range buf {
							buf[j] = 0xee // the caller's again
						}
						mu.Lock()
						switch {
						case err == nil:
							sent[key] = size
						case !errors.Is(err, context.DeadlineExceeded):
							failed = append(failed, fmt.Errorf("%s: %w", key, err))
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			require.Empty(t, failed)
			for _, ch := range chans { // after every publish
				require.NoError(t, ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "after"}).Err)
			}
			require.Eventually(t, func() bool {
				c.queued.mu.Lock()
				defer c.queued.mu.Unlock()
				return c.queued.used == 0
			}, 10*time.Second, time.Millisecond, "budget held after every publish was written")
			require.NoError(t, c.Close(context.Background()))
			arrived := <-got
			buf := make([]byte, slices.Max(sizes))
			for key, size := range sent {
				body, ok := arrived[key]
				require.True(t, ok, "%s was accepted and never arrived", key)
				require.True(t, string(fillBody(buf, key, size)) == string(body), "%s (%d bytes) arrived changed", key, size)
				delete(arrived, key)
			}
			require.Empty(t, keys(arrived), "refused publishes arrived")
		})
	}
}

func keys(m map[string][]byte) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return strings.Join(ks, " ")
}

// A channel the broker closes while lent publishes on it wait for a full
// socket (one being written, one queued behind it, one the loop holds over
// MaxOutgoing, one waiting for budget): every publisher returns once the
// broker reads again, each handed over is settled once, as failed; the
// publishes already on their way go out whole, before close-ok.
func TestBrokerClosingTheChannelOfLentPublishes(t *testing.T) {
	const publishers = 4
	ready, full := make(chan struct{}), make(chan struct{})
	type seen struct {
		keys    []string
		closeOk bool
	}
	got := make(chan seen, 1)
	obs := &countingObserver{settled: make(map[*Outcome]int)}
	// A little over one body: the loop takes the second publish once the
	// socket has taken part of the first, and no third while the second
	// waits; each publisher's budget is all of it.
	c := tcpConn(t, Config{Observer: obs, MaxOutgoing: 1<<20 + 1}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		ch := b.OpenChannel()
		fakebroker.Expect[*sansio.ConfirmSelect](b)
		b.Send(ch, &sansio.ConfirmSelectOk{})
		close(ready)
		<-full
		b.Send(ch, &sansio.ChannelClose{ReplyCode: 406, ReplyText: "PRECONDITION_FAILED"})
		var s seen
		for !s.closeOk {
			r, err := b.Next()
			require.NoError(t, err)
			switch m := r.Method.(type) {
			case *sansio.BasicPublish:
				require.Equal(t, pattern(1<<20, int(m.RoutingKey[0]-'0')), strictContent(b, r, fakebroker.FrameMax), m.RoutingKey)
				s.keys = append(s.keys, m.RoutingKey)
			case *sansio.ChannelCloseOk:
				s.closeOk = true
			}
		}
		got <- s
		b.AnswerClose()
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	require.NoError(t, ch.Call(context.Background(), &sansio.ConfirmSelect{}).Err)
	<-ready
	outs := make([]*Outcome, publishers)
	returned := make([]chan error, publishers)
	for i := range outs {
		outs[i], returned[i] = &Outcome{}, make(chan error, 1)
		body := pattern(1<<20, i)
		go func() {
			err := publishBody(context.Background(), ch, strconv.Itoa(i), body, outs[i])
			clear(body)
			returned[i] <- err
		}()
	}
	waitPublished(t, c, 2)
	close(full)
	handedOver := 0
	for i := range publishers {
		select {
		case err := <-returned[i]:
			if err != nil {
				require.ErrorIs(t, err, sansio.ErrChannelClosed, "publish %d", i)
				require.False(t, outs[i].Settled(), "publish %d was refused", i)
				continue
			}
			handedOver++
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			require.True(t, outs[i].Wait(ctx), "publish %d never settled", i)
			cancel()
			require.Equal(t, sansio.ConfirmFailed, outs[i].Confirm, "publish %d", i)
			require.ErrorIs(t, outs[i].Err, sansio.ErrChannelClosed, "publish %d", i)
		case <-time.After(10 * time.Second):
			t.Fatalf("publisher %d still waits after its channel ended", i)
		}
	}
	s := <-got
	require.Len(t, s.keys, 2, "the publishes taken before the close, and only those")
	require.GreaterOrEqual(t, handedOver, 2)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Len(t, obs.settled, handedOver)
	for p, n := range obs.settled {
		require.Equal(t, 1, n, "publish %d settled %d times", p.Seq(), n)
	}
}

// Publishers waiting for their bodies to be written to a broker that went
// silent (it neither reads nor sends) return when the missed heartbeats
// end the connection.
func TestMissedHeartbeatsReturnPublishersOfLentBodies(t *testing.T) {
	c, returned := lentPublishesToASilentBroker(t, 1)
	requireReturned(t, returned, "after the heartbeats stopped")
	<-c.Done()
	require.ErrorIs(t, c.Err(), sansio.ErrHeartbeatTimeout)
}

// lentPublishesToASilentBroker starts two publishers of 1 MiB bodies on a
// connection whose broker, after the handshake (with the heartbeat in
// seconds) and a channel, neither reads nor sends. It returns what each
// Publish returns.
func lentPublishesToASilentBroker(t *testing.T, heartbeat uint16) (*Conn, <-chan error) {
	t.Helper()
	stop := make(chan struct{})
	c := tcpConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(heartbeat)
		b.OpenChannel()
		<-stop
	})
	t.Cleanup(func() { close(stop) })
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	returned := make(chan error, 2)
	for i := range 2 {
		go func() { returned <- publishBody(context.Background(), ch, "q", pattern(1<<20, i), nil) }()
	}
	return c, returned
}

// requireReturned waits for both publishers of lentPublishesToASilentBroker,
// which must have handed their publishes over.
func requireReturned(t *testing.T, returned <-chan error, when string) {
	t.Helper()
	for range 2 {
		select {
		case err := <-returned:
			require.NoError(t, err, "handed over")
		case <-time.After(10 * time.Second):
			t.Fatal("a publisher still waits " + when)
		}
	}
}

// Over a transport without a descriptor (net.Pipe here, TLS alike) nothing
// is lent: Publish copies a large body and returns before the broker has
// read any of it.
func TestLargeBodyOverAPipeIsCopied(t *testing.T) {
	release := make(chan struct{})
	got := make(chan []byte, 1)
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		<-release
		got <- fakebroker.ExpectContent[*sansio.BasicPublish](b).Body
		b.AnswerClose()
	})
	require.False(t, c.lends)
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	body := pattern(1<<20, 9)
	want := slices.Clone(body)
	require.NoError(t, publishBody(context.Background(), ch, "q", body, nil))
	clear(body)
	close(release)
	require.Equal(t, want, <-got)
}

// A Close that gives up on a broker that reads nothing returns the
// publishers waiting for their bodies to be written.
func TestCloseGivingUpReturnsPublishersOfLentBodies(t *testing.T) {
	c, returned := lentPublishesToASilentBroker(t, 0)
	waitPublished(t, c, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Close(ctx), context.DeadlineExceeded)
	requireReturned(t, returned, "after Close gave up")
}

// Once Publish returns, the connection keeps nothing of a lent body alive:
// the loan, pooled for a later publish, lets go of the caller's memory.
func TestPublishKeepsNoLentBodyAlive(t *testing.T) {
	c, ch := drainedChannel(t)
	defer closeDrained(c)
	body := new([1 << 20]byte)
	gone := weak.Make(body)
	require.NoError(t, publishBody(context.Background(), ch, "q", body[:], nil))
	body = nil
	runtime.GC()
	require.Nil(t, gone.Value(), "the body outlived its Publish")
}

// Over a Unix socket bodies are lent as over TCP, and arrive whole,
// although the caller overwrites its body as soon as Publish returns.
func TestLentPublishOverAUnixSocket(t *testing.T) {
	ln, err := net.Listen("unix", t.TempDir()+"/broker.sock")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("unix", ln.Addr().String())
	require.NoError(t, err)
	server, err := ln.Accept()
	require.NoError(t, err)
	got := make(chan map[string][]byte, 1)
	c, _ := scriptedConn(t, Config{}, client, server, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		got <- strictPublishes(b, fakebroker.FrameMax)
	})
	require.True(t, c.lends)
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	buf := make([]byte, 1<<20)
	for _, key := range []string{"a", "b", "c"} {
		require.NoError(t, publishBody(context.Background(), ch, key, fillBody(buf, key, len(buf)), nil))
		clear(buf)
	}
	require.NoError(t, c.Close(context.Background()))
	arrived := <-got
	require.Len(t, arrived, 3)
	for key, body := range arrived {
		require.True(t, string(fillBody(buf, key, len(buf))) == string(body), "%s arrived changed", key)
	}
}

// A heartbeat tick lets go of the vectors a write of large bodies grew
// (two per body frame: a 100 MiB body at frame_max 8192 takes 25,600),
// unless they are queued, as it lets go of large buffers.
func TestHeartbeatTickLetsGoOfLongBatches(t *testing.T) {
	l := &loop{c: &Conn{}}
	l.next, l.spare = &l.batches[0], &l.batches[1]
	l.spare.bufs = make(net.Buffers, 0, 25600)
	l.next.bufs = make(net.Buffers, 1, 25600)
	l.trimBuffers()
	require.Nil(t, l.spare.bufs)
	require.Len(t, l.next.bufs, 1, "queued: kept")

	l.next.bufs = l.next.bufs[:0]
	l.spare = nil // a write in progress, which the writer owns
	l.trimBuffers()
	require.Nil(t, l.next.bufs)
}
