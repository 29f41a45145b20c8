//go:build linux && (amd64 || arm64)

package actor

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// pattern returns a body of n bytes that differ from their neighbours and
// from those of other seeds.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8 + seed)
	}
	return b
}

func publishBody(ctx context.Context, ch *Channel, key string, body []byte, pub *Outcome) error {
	return ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: key}, &sansio.Properties{}, body, pub)
}

// A large body is written from the caller's memory, not copied: a change
// made to it before Publish returns (under lendMu, as a write would see
// it) is what the broker gets.
func TestLentBodyIsWrittenFromTheCallersMemory(t *testing.T) {
	c, resume, got := stalledBroker(t)
	require.True(t, c.lends)
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	body := pattern(1<<20, 1)
	want := bytes.Clone(body)
	published := make(chan error, 1)
	go func() { published <- publishBody(context.Background(), ch, "q", body, nil) }()
	waitPublished(t, c, 1)
	c.lendMu.Lock()
	body[len(body)-1] ^= 0xff // the socket has not taken the end yet
	want[len(want)-1] ^= 0xff
	c.lendMu.Unlock()
	select {
	case err := <-published:
		t.Fatalf("Publish returned (%v) before its body was written", err)
	default:
	}
	resume()
	require.NoError(t, <-published)
	require.Equal(t, want, <-got)
}

// stalledBroker connects to a broker that, after the handshake and a
// channel, reads nothing until resume is called (at the latest when the
// test ends), then sends the body of the first publish to got.
func stalledBroker(t *testing.T) (c *Conn, resume func(), got <-chan []byte) {
	t.Helper()
	resumed := make(chan struct{})
	bodies := make(chan []byte, 1)
	c = tcpConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		<-resumed // the client's socket fills
		bodies <- fakebroker.ExpectContent[*sansio.BasicPublish](b).Body
		b.AnswerClose()
	})
	var once sync.Once
	resume = func() { once.Do(func() { close(resumed) }) }
	t.Cleanup(resume) // before the broker's script is waited for
	return c, resume, bodies
}

// waitPublished waits until the loop has numbered n publishes.
func waitPublished(t *testing.T, c *Conn, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Published < n {
		require.True(t, time.Now().Before(deadline), "the loop never took the publishes")
		runtime.Gosched()
	}
}

// A publisher whose context ends while the socket has not taken its body
// returns at once, and may then overwrite its body: what it lent is
// copied, and the broker gets the original bytes, whole. That holds for a
// body being written (the first) and for one queued behind it (the
// second).
func TestCancelledLentPublishReturnsAndSendsTheOriginal(t *testing.T) {
	resume := make(chan struct{})
	got := make(chan []byte, 2)
	c := tcpConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		<-resume
		for range 2 {
			got <- fakebroker.ExpectContent[*sansio.BasicPublish](b).Body
		}
		b.AnswerClose()
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	bodies := [][]byte{pattern(1<<20, 1), pattern(300<<10, 2)}
	var wants [][]byte
	var cancels []context.CancelFunc
	var returned []chan error
	for i, body := range bodies {
		wants = append(wants, bytes.Clone(body))
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		returned = append(returned, make(chan error, 1))
		go func() { returned[i] <- publishBody(ctx, ch, strconv.Itoa(i), body, nil) }()
		waitPublished(t, c, uint64(i+1)) // in order
	}
	for _, i := range []int{1, 0} {
		cancels[i]()
		select {
		case err := <-returned[i]:
			require.NoError(t, err, "handed over: it will be sent")
		case <-time.After(10 * time.Second):
			t.Fatalf("publish %d did not return when its context ended", i)
		}
		for j := range bodies[i] {
			bodies[i][j] = 0xee
		}
	}
	close(resume)
	for i := range bodies {
		require.Equal(t, wants[i], <-got, "body %d", i)
	}
}

// When the connection ends while publishers wait for their bodies to be
// written, they return, and each publish's outcome is settled once.
func TestConnectionEndReturnsPublishersWaitingForTheirBodies(t *testing.T) {
	const publishers = 4
	ready, cut := make(chan struct{}), make(chan struct{})
	obs := &countingObserver{settled: make(map[*Outcome]int)}
	c := tcpConn(t, Config{Observer: obs}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		ch := b.OpenChannel()
		fakebroker.Expect[*sansio.ConfirmSelect](b)
		b.Send(ch, &sansio.ConfirmSelectOk{})
		close(ready)
		<-cut // read nothing more, then drop the socket
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	require.NoError(t, ch.Call(context.Background(), &sansio.ConfirmSelect{}).Err)
	<-ready
	outs := make([]*Outcome, publishers)
	returned := make(chan error, publishers)
	for i := range outs {
		outs[i] = &Outcome{}
		go func() { returned <- publishBody(context.Background(), ch, "q", pattern(1<<20, i), outs[i]) }()
	}
	waitPublished(t, c, publishers)
	close(cut)
	for range publishers {
		select {
		case err := <-returned:
			require.NoError(t, err, "each was handed over")
		case <-time.After(10 * time.Second):
			t.Fatal("a publisher still waits after the connection ended")
		}
	}
	<-c.Done()
	for i, p := range outs {
		require.True(t, p.Settled(), "publish %d", i)
		require.Equal(t, sansio.ConfirmFailed, p.Confirm, "publish %d", i)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Len(t, obs.settled, publishers)
	for p, n := range obs.settled {
		require.Equal(t, 1, n, "publish %d settled %d times", p.Seq(), n)
	}
}

type countingObserver struct {
	mu      sync.Mutex
	settled map[*Outcome]int
}

func (o *countingObserver) Settled(p *Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.settled[p]++
}

func (o *countingObserver) Blocked(Blocking) {}

// Lent and copied publishes from several goroutines on one channel arrive
// whole, each publisher's in order, with small publishes and a method
// between them.
func TestLentPublishesKeepOrderAmongOthers(t *testing.T) {
	const publishers, each = 3, 6
	sizes := []int{10, 300 << 10, 20 << 10, 1 << 20, 1 << 10, lendMin}
	got := make(chan fakebroker.Content[*sansio.BasicPublish], publishers*each)
	c := tcpConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		for range publishers * each {
			got <- fakebroker.ExpectContent[*sansio.BasicPublish](b)
		}
		fakebroker.Expect[*sansio.QueueDeclare](b)
		b.AnswerClose()
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, publishers*each)
	for p := range publishers {
		wg.Go(func() {
			for i, size := range sizes {
				body := pattern(size, p*each+i)
				errs <- publishBody(context.Background(), ch, strconv.Itoa(p*each+i), body, nil)
				clear(body) // the caller's again
			}
		})
	}
	wg.Wait()
	for range publishers * each {
		require.NoError(t, <-errs)
	}
	require.NoError(t, ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "after", NoWait: true}).Err)
	next := make([]int, publishers)
	for range publishers * each {
		m := <-got
		k, err := strconv.Atoi(m.Method.RoutingKey)
		require.NoError(t, err)
		p, i := k/each, k%each
		require.Equal(t, next[p], i, "publisher %d out of order", p)
		next[p]++
		require.Equal(t, pattern(sizes[i], k), m.Body, "publish %d", k)
	}
}

// A large publish the core holds behind a no-wait method (itself waiting
// for an earlier reply) is copied, not lent: Publish returns before
// anything is written, and the caller may overwrite its body.
func TestLargePublishHeldBehindNoWaitMethodsIsCopied(t *testing.T) {
	declared, answer := make(chan struct{}), make(chan struct{})
	got := make(chan []byte, 1)
	c := tcpConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		ch := b.OpenChannel()
		fakebroker.Expect[*sansio.QueueDeclare](b)
		close(declared)
		<-answer
		b.Send(ch, &sansio.QueueDeclareOk{Queue: "slow"})
		fakebroker.Expect[*sansio.ExchangeDeclare](b)
		got <- fakebroker.ExpectContent[*sansio.BasicPublish](b).Body
		b.AnswerClose()
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	go ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "slow"})
	<-declared
	require.NoError(t, ch.Call(context.Background(), &sansio.ExchangeDeclare{Exchange: "x", Type: "direct", NoWait: true}).Err)
	body := pattern(1<<20, 3)
	want := bytes.Clone(body)
	require.NoError(t, publishBody(context.Background(), ch, "q", body, nil))
	clear(body)
	close(answer)
	require.Equal(t, want, <-got)
}

// Publishing a lent body allocates next to nothing: no copy, no frame
// buffer of the body's size.
func TestLentPublishAllocatesLittle(t *testing.T) {
	c, ch := drainedChannel(t)
	body := pattern(1<<20, 4)
	allocs := testing.AllocsPerRun(50, func() {
		require.NoError(t, publishBody(context.Background(), ch, "q", body, nil))
	})
	require.LessOrEqual(t, allocs, 2.0)
	closeDrained(c)
}

// drainedChannel dials a Conn over loopback TCP whose broker, after the
// handshake and a channel, reads and discards everything without
// allocating: for measuring what publishing allocates.
func drainedChannel(tb testing.TB) (*Conn, *Channel) {
	tb.Helper()
	client, server := fakebroker.TCPPair(tb)
	c, _ := scriptedConn(tb, Config{}, client, server, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		_, _ = io.CopyBuffer(io.Discard, b.Conn(), make([]byte, 256<<10))
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(tb, err)
	return c, ch
}

// closeDrained closes c without its close handshake, which the draining
// broker never answers.
func closeDrained(c *Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_ = c.Close(ctx)
}

// BenchmarkPublish1MiB publishes 1 MiB bodies, lent (written from the
// caller's memory) and copied (the path of transports without a
// descriptor), to a broker that discards them.
func BenchmarkPublish1MiB(b *testing.B) {
	for _, lend := range []bool{true, false} {
		name := map[bool]string{true: "lent", false: "copied"}[lend]
		b.Run(name, func(b *testing.B) {
			c, ch := drainedChannel(b)
			c.lends = lend
			body := pattern(1<<20, 5)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := publishBody(context.Background(), ch, "q", body, nil); err != nil {
					b.Fatal(err)
				}
			}
			closeDrained(c)
		})
	}
}

// vecWriter writes a batch of more vectors than one sendmsg takes, one of
// more bytes than one send, and empty ones, whole and in order, across a
// socket that fills while the peer is slow to read.
func TestVecWriterWritesLongBatchesWhole(t *testing.T) {
	client, server := fakebroker.TCPPair(t)
	require.NoError(t, client.SetWriteBuffer(64<<10))
	var mu sync.Mutex
	w := newVecWriter(client, &mu)
	require.NotNil(t, w)
	b := &writeBatch{}
	var want []byte
	for i := range 3 * maxIovecs {
		v := pattern(i%700, i) // every 700th is empty
		if i == maxIovecs/2 {
			v = pattern(sendMax+12345, i)
		}
		b.bufs = append(b.bufs, v)
		want = append(want, v...)
	}
	got := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(io.LimitReader(server, int64(len(want))))
		got <- data
	}()
	require.NoError(t, w.writeAll(b))
	require.True(t, b.written())
	require.Equal(t, want, <-got)
}

// copyRest copies only what is left to write of a loan's vectors, and
// nothing once the write has gone past them (which panicked).
func TestCopyRestCopiesWhatIsLeftOnly(t *testing.T) {
	body := []byte("0123456789")
	for _, written := range []int{0, 3, 9, 15, 17, 18, 20} { // the loan's 5 vectors hold 15 bytes
		b := &writeBatch{bufs: [][]byte{[]byte("ab"), body[:4], []byte("cd"), body[4:], []byte("e"), []byte("xyz"), []byte("tail")}}
		b.advance(written)
		left := slices.Clone(b.bufs)
		b.copyRest(0, 5)
		for i := range b.bufs {
			require.Equal(t, string(left[i]), string(b.bufs[i]), "written %d, vector %d", written, i)
			moved := len(left[i]) > 0 && &left[i][0] != &b.bufs[i][0]
			require.Equal(t, i >= b.cur && i < 5, moved, "written %d: vector %d", written, i)
		}
	}
}

// A kept body (the copy RepublishUnconfirmed keeps) is lent without its
// publisher waiting: PublishKept returns while the socket has not taken
// the body, and the write goes on from that memory (a change made to its
// end after PublishKept returned, under lendMu as a write would see it, is
// what the broker gets).
func TestKeptBodyIsLentWithoutWaiting(t *testing.T) {
	c, resume, got := stalledBroker(t)
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	body := pattern(16<<20, 3) // more than the sockets' buffers hold
	returned := make(chan error, 1)
	go func() {
		returned <- ch.PublishKept(context.Background(), &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, body, nil)
	}()
	select {
	case err := <-returned:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("PublishKept waited for the socket")
	}
	waitPublished(t, c, 1)
	want := bytes.Clone(body)
	c.lendMu.Lock()
	body[len(body)-1] ^= 0xff
	want[len(want)-1] ^= 0xff
	c.lendMu.Unlock()
	resume()
	require.Equal(t, want, <-got)
}
