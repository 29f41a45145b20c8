package actor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

func TestCloseRunsHandshakeAndStopsGoroutines(t *testing.T) {
	c, scriptDone := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.AnswerClose()
	})
	require.Equal(t, "fake", c.ServerProperties()["product"])
	require.NoError(t, c.Close(context.Background()))
	<-scriptDone
	require.ErrorIs(t, context.Cause(c.Context()), sansio.ErrConnectionClosed)
}

func TestDialHonoursContextWhenBrokerIsSilent(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go func() { // drains what the client sends; exits when the pipe closes
		buf := make([]byte, 64)
		for {
			if _, err := server.Read(buf); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, client, Config{Core: sansio.Config{Auth: []sansio.Auth{sansio.ExternalAuth{}}}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestMalformedFrameClosesConnectionWithFrameError(t *testing.T) {
	sawClose := make(chan *sansio.ConnectionClose, 1)
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		frame, _ := sansio.AppendMethodFrame(nil, 0, &sansio.ConnectionBlocked{Reason: "x"})
		frame[len(frame)-1] = 0 // not 0xCE
		b.Write(frame)
		sawClose <- fakebroker.Expect[*sansio.ConnectionClose](b)
	})
	<-c.Done()
	var ce *sansio.CloseError
	require.ErrorAs(t, c.Err(), &ce)
	require.Equal(t, sansio.FrameError, ce.Code)
	require.Equal(t, uint16(sansio.FrameError), (<-sawClose).ReplyCode)
}

func TestOversizedFrameIsRejectedBeforeBuffering(t *testing.T) {
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		header := []byte{sansio.FrameBody, 0, 1, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(header[3:], 1<<30) // announces 1 GiB, sends 7 bytes
		b.Write(header)
		fakebroker.Expect[*sansio.ConnectionClose](b)
	})
	<-c.Done()
	require.ErrorIs(t, c.Err(), sansio.ErrFrameError)
}

func TestSilentBrokerIsDeclaredDeadAfterTwoHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
			b.Handshake(1)
			for { // read the client's heartbeats, never answer
				if _, err := b.Next(); err != nil {
					return
				}
			}
		})
		<-c.Done()
		require.ErrorIs(t, c.Err(), sansio.ErrHeartbeatTimeout)
		elapsed := time.Since(start)
		require.GreaterOrEqual(t, elapsed, 2*time.Second)
		require.Less(t, elapsed, 3*time.Second)
	})
}

func TestIdleConnectionWithHeartbeatsStaysUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
			b.Handshake(1)
			for { // answer every heartbeat with one, like RabbitMQ
				r, err := b.Next()
				if err != nil {
					return
				}
				if r.Type == sansio.FrameHeartbeat {
					b.Write(sansio.AppendHeartbeat(nil))
				}
				if _, ok := r.Method.(*sansio.ConnectionClose); ok {
					b.Send(0, &sansio.ConnectionCloseOk{})
					return
				}
			}
		})
		time.Sleep(10 * time.Second)
		require.NoError(t, c.Context().Err())
		require.NoError(t, c.Close(context.Background()))
	})
}

func TestCancelledCallIsWithdrawnAndLateReplyDropped(t *testing.T) {
	firstSeen := make(chan struct{})
	release := make(chan struct{})
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		first := fakebroker.Expect[*sansio.QueueDeclare](b)
		close(firstSeen)
		<-release
		b.Send(id, &sansio.QueueDeclareOk{Queue: first.Queue})
		// "b" was withdrawn: the next request on the wire is "c".
		third := fakebroker.Expect[*sansio.QueueDeclare](b)
		require.Equal(t, "c", third.Queue)
		b.Send(id, &sansio.QueueDeclareOk{Queue: third.Queue})
		// A sent request whose caller gives up: its reply is dropped.
		fourth := fakebroker.Expect[*sansio.QueueDeclare](b)
		<-release
		b.Send(id, &sansio.QueueDeclareOk{Queue: fourth.Queue})
		fifth := fakebroker.Expect[*sansio.QueueDeclare](b)
		b.Send(id, &sansio.QueueDeclareOk{Queue: fifth.Queue})
		b.AnswerClose()
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)

	firstDone := make(chan Result, 1)
	go func() { firstDone <- ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "a"}) }()
	<-firstSeen
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	r := ch.Call(ctx, &sansio.QueueDeclare{Queue: "b"})
	cancel()
	require.ErrorIs(t, r.Err, context.DeadlineExceeded)
	release <- struct{}{}
	require.Equal(t, "a", (<-firstDone).Method.(*sansio.QueueDeclareOk).Queue)
	r = ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "c"})
	require.NoError(t, r.Err)
	require.Equal(t, "c", r.Method.(*sansio.QueueDeclareOk).Queue)

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	r = ch.Call(ctx, &sansio.QueueDeclare{Queue: "d"})
	cancel()
	require.ErrorIs(t, r.Err, context.DeadlineExceeded)
	close(release)
	r = ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "e"})
	require.NoError(t, r.Err)
	require.Equal(t, "e", r.Method.(*sansio.QueueDeclareOk).Queue)
}

func TestConsumerThatNeverReadsStallsOnlyItself(t *testing.T) {
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		ch1 := b.OpenChannel()
		consume := fakebroker.Expect[*sansio.BasicConsume](b)
		b.Send(ch1, &sansio.BasicConsumeOk{ConsumerTag: consume.ConsumerTag})
		ch2 := b.OpenChannel()
		fakebroker.Expect[*sansio.ConfirmSelect](b)
		b.Send(ch2, &sansio.ConfirmSelectOk{})
		for i := range 1000 {
			b.Deliver(ch1, consume.ConsumerTag, uint64(i+1), make([]byte, 1024))
		}
		fakebroker.Expect[*sansio.BasicPublish](b)
		b.Send(ch2, &sansio.BasicAck{DeliveryTag: 1})
		b.AnswerClose()
	})
	ctx := context.Background()
	ch1, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	cons, err := ch1.Consume(ctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: "slow"})
	require.NoError(t, err)
	ch2, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	require.NoError(t, ch2.Call(ctx, &sansio.ConfirmSelect{}).Err)
	var p Outcome
	require.NoError(t, ch2.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("x"), &p))
	<-p.Done()
	require.Equal(t, sansio.ConfirmAck, p.Confirm)
	require.Equal(t, 1000, cons.Deliveries.Len()) // nothing dropped
}

func TestLoopKeepsReceivingWhileTheSocketIsNotRead(t *testing.T) {
	stalled := make(chan struct{})
	resume := make(chan struct{})
	c, _ := pipeConn(t, Config{MaxOutgoing: 64 << 10}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		fakebroker.Expect[*sansio.ConfirmSelect](b)
		b.Send(id, &sansio.ConfirmSelectOk{})
		fakebroker.Expect[*sansio.BasicPublish](b)
		close(stalled) // stop reading: the client's writes now block
		b.Send(id, &sansio.BasicAck{DeliveryTag: 1})
		<-resume
		b.AnswerClose()
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	require.NoError(t, ch.Call(ctx, &sansio.ConfirmSelect{}).Err)
	var first Outcome
	require.NoError(t, ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("1"), &first))
	<-stalled
	body := make([]byte, 16<<10)
	var err2 error
	for i := 0; i < 100 && err2 == nil; i++ {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		var p Outcome
		err2 = ch.Publish(pctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, body, &p)
		cancel()
	}
	require.ErrorIs(t, err2, context.DeadlineExceeded, "the outgoing bound must make publishers wait")
	<-first.Done() // the broker's ack arrived while our writes were stuck
	require.Equal(t, sansio.ConfirmAck, first.Confirm)
	close(resume)
}

func TestBlockedConnectionMakesPublishersWait(t *testing.T) {
	unblock := make(chan struct{})
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		b.Send(0, &sansio.ConnectionBlocked{Reason: "low on memory"})
		<-unblock
		b.Send(0, &sansio.ConnectionUnblocked{})
		fakebroker.Expect[*sansio.BasicPublish](b)
		b.AnswerClose()
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	state, changed, _ := c.Blocking()
	if !state.Blocked {
		<-changed
		state, _, _ = c.Blocking()
	}
	require.Equal(t, Blocking{Blocked: true, Reason: "low on memory"}, state)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	err = ch.Publish(pctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("x"), nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(unblock)
	require.NoError(t, ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("x"), nil))
}

func TestConsumerOverflowEndsConsumerWithoutDropping(t *testing.T) {
	cancelled := make(chan struct{})
	c, _ := pipeConn(t, Config{ConsumerBuffer: 10}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		consume := fakebroker.Expect[*sansio.BasicConsume](b)
		b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: consume.ConsumerTag})
		for i := range 50 {
			b.Deliver(id, consume.ConsumerTag, uint64(i+1), []byte("m"))
		}
		cancel := fakebroker.Expect[*sansio.BasicCancel](b)
		b.Send(id, &sansio.BasicCancelOk{ConsumerTag: cancel.ConsumerTag})
		close(cancelled)
		b.AnswerClose()
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	cons, err := ch.Consume(ctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: "t", NoAck: true})
	require.NoError(t, err)
	<-cancelled // the receiver reads nothing until the consumer has overflowed
	var got []sansio.Message
	for {
		<-cons.Deliveries.Signal()
		items, closed, err := cons.Deliveries.Take(nil)
		got = append(got, items...)
		if closed {
			require.ErrorIs(t, err, ErrConsumerOverflow)
			break
		}
	}
	require.Len(t, got, 50)
}

func TestBrokerChannelErrorEndsOnlyThatChannel(t *testing.T) {
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		ch1 := b.OpenChannel()
		ch2 := b.OpenChannel()
		fakebroker.Expect[*sansio.QueueDeclare](b)
		b.Send(ch1, &sansio.ChannelClose{ReplyCode: 404, ReplyText: "NOT_FOUND - no queue 'x'", ClassID: 50, MethodID: 10})
		fakebroker.Expect[*sansio.ChannelCloseOk](b)
		fakebroker.Expect[*sansio.QueueDeclare](b)
		b.Send(ch2, &sansio.QueueDeclareOk{Queue: "y"})
		b.AnswerClose()
	})
	ctx := context.Background()
	ch1, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	ch2, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	r := ch1.Call(ctx, &sansio.QueueDeclare{Queue: "x", Passive: true})
	require.ErrorIs(t, r.Err, sansio.ErrNotFound)
	require.ErrorIs(t, r.Err, sansio.ErrChannelClosed)
	require.ErrorIs(t, ch1.Err(), sansio.ErrNotFound)
	require.ErrorIs(t, ch1.Call(ctx, &sansio.QueueDeclare{Queue: "z"}).Err, sansio.ErrChannelClosed)
	require.NoError(t, ch2.Call(ctx, &sansio.QueueDeclare{Queue: "y"}).Err)
}

func TestPublishesPendingAtConnectionLossFailOnce(t *testing.T) {
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		fakebroker.Expect[*sansio.ConfirmSelect](b)
		b.Send(id, &sansio.ConfirmSelectOk{})
		fakebroker.Expect[*sansio.BasicPublish](b)
		// The broker vanishes without a word.
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	require.NoError(t, ch.Call(ctx, &sansio.ConfirmSelect{}).Err)
	var p Outcome
	require.NoError(t, ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("x"), &p))
	<-p.Done()
	require.Equal(t, sansio.ConfirmFailed, p.Confirm)
	require.ErrorIs(t, p.Err, sansio.ErrConnectionClosed)
	<-c.Done()
	require.Error(t, c.Err())
	require.False(t, errors.Is(c.Err(), sansio.ErrChannelClosed))
}

// A publish handed over before its channel ended, but taken by the loop
// only after a new channel reused the number, must fail, not go out on the
// new channel.
func TestStalePublishDoesNotGoOutOnReusedChannelNumber(t *testing.T) {
	seen := make(chan string, 1)
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		b.Send(id, &sansio.ChannelClose{ReplyCode: 404, ReplyText: "NOT_FOUND", ClassID: 60, MethodID: 40})
		fakebroker.Expect[*sansio.ChannelCloseOk](b)
		b.OpenChannel()
		r, err := b.Next()
		if err != nil {
			seen <- err.Error()
			return
		}
		seen <- r.Method.ID().String()
		if _, ok := r.Method.(*sansio.QueueDeclare); !ok {
			r, err = b.Next() // skip the stale publish's content
			for err == nil && r.Type != sansio.FrameMethod {
				r, err = b.Next()
			}
		}
		b.Send(r.Channel, &sansio.QueueDeclareOk{Queue: "marker"})
		b.AnswerClose()
	})
	ctx := context.Background()
	old, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	<-old.Context().Done()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, old.ID(), ch.ID(), "the number is reused")

	// As if Publish had handed this over before the loop saw the close.
	m := sansio.BasicPublish{RoutingKey: "stale"}
	frames := c.getFrames(4096)
	*frames, err = sansio.AppendPublish(*frames, old.ID(), &m, &sansio.Properties{}, []byte("x"), c.tuning.FrameMax)
	require.NoError(t, err)
	var p Outcome
	c.pubs.push(publishReq{ch: old, frames: frames, out: &p, m: m})
	<-p.Done()
	require.Equal(t, sansio.ConfirmFailed, p.Confirm)
	require.ErrorIs(t, p.Err, sansio.ErrNotFound)

	require.NoError(t, ch.Call(ctx, &sansio.QueueDeclare{Queue: "marker"}).Err)
	require.Equal(t, (&sansio.QueueDeclare{}).ID().String(), <-seen)
}

// A caller that gives up while its request still waits in the loop's queue
// must not leave the request's effect behind. A consume whose
// caller gave up is cancelled at the broker once it is confirmed.
func TestCallAbandonedBeforeTheLoopTookItIsUndone(t *testing.T) {
	const rounds = 12
	seen := make(chan string, rounds)
	deliver := make(chan struct{})
	// The broker answers each later basic.consume only once its caller has
	// given up: an answer that came first would be the caller's.
	answer := make(chan struct{})
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		a := fakebroker.Expect[*sansio.BasicConsume](b)
		b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: a.ConsumerTag})
		for i := range rounds {
			<-deliver
			b.Deliver(id, a.ConsumerTag, uint64(i+1), []byte("x"))
			m := fakebroker.Expect[*sansio.BasicConsume](b)
			<-answer
			b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
			r, err := b.Next()
			if err != nil {
				return
			}
			seen <- r.Method.ID().String()
			switch m := r.Method.(type) {
			case *sansio.BasicCancel:
				b.Send(id, &sansio.BasicCancelOk{ConsumerTag: m.ConsumerTag})
			case *sansio.ConnectionClose:
				b.Send(0, &sansio.ConnectionCloseOk{})
				return
			}
		}
		b.AnswerClose()
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	a, err := ch.Consume(ctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: "a"})
	require.NoError(t, err)
	entered := make(chan struct{})
	release := make(chan struct{})
	// Holds the loop inside the delivery to a, so that the test can queue
	// a request and the note that its caller gave up behind it.
	a.Deliveries.SetDirect(func(sansio.Message) bool {
		entered <- struct{}{}
		<-release
		return false
	})
	for i := range rounds {
		a.Deliveries.Take(nil)
		a.Deliveries.Take(nil) // empty and not busy: the next delivery takes the direct path
		deliver <- struct{}{}
		<-entered
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := ch.Consume(cctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: fmt.Sprint("b", i)})
			done <- err
		}()
		for c.reqs.len() == 0 {
			runtime.Gosched()
		}
		cancel()
		for c.reqs.len() < 2 { // the request, then the note that its caller gave up
			runtime.Gosched()
		}
		release <- struct{}{}
		require.ErrorIs(t, <-done, context.Canceled)
		answer <- struct{}{}
		select {
		case got := <-seen:
			require.Equal(t, (&sansio.BasicCancel{}).ID().String(), got, "round %d", i)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the abandoned consumer was never cancelled", i)
		}
	}
}

func TestTryWriterOnlyForSocketsWithADescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	require.Nil(t, newTryWriter(a))
	client, _ := fakebroker.TCPPair(t)
	require.Equal(t, tryWriteSupported, newTryWriter(client) != nil)
}

func TestTryWriterNeverWaitsAndReportsTheSocketsError(t *testing.T) {
	if !tryWriteSupported {
		t.Skip("no non-blocking writes on " + runtime.GOOS)
	}
	client, server := fakebroker.TCPPair(t)
	require.NoError(t, client.SetWriteBuffer(64<<10))
	require.NoError(t, server.SetReadBuffer(64<<10))
	w := newTryWriter(client)
	big := make([]byte, 1<<20)
	total := 0
	for { // the peer reads nothing: the socket fills, then takes nothing
		n, err := w.write(big)
		require.NoError(t, err, "a full socket is not an error")
		if n == 0 {
			break
		}
		total += n
		require.Less(t, total, 64<<20, "the socket never filled")
	}
	require.NoError(t, server.SetLinger(0))
	require.NoError(t, server.Close()) // a reset
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := w.write([]byte("x"))
		if err != nil {
			require.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE), "%v", err)
			return
		}
		require.True(t, time.Now().Before(deadline), "the reset never showed")
		time.Sleep(time.Millisecond)
	}
}

// The loop writes small publishes itself while the socket has room; once
// the socket is full the rest of a write goes to the writer goroutine.
// Nothing may be lost, reordered or written twice across that hand-over.
func TestDirectWritesKeepOrderWhenTheSocketFills(t *testing.T) {
	const n = 3000
	resume := make(chan struct{})
	c := tcpConn(t, Config{MaxOutgoing: 64 << 10}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		<-resume // read nothing meanwhile: the client's socket fills
		for i := 0; i < n; {
			r, err := b.Next()
			require.NoError(t, err)
			if p, ok := r.Method.(*sansio.BasicPublish); ok {
				require.Equal(t, strconv.Itoa(i), p.RoutingKey)
				i++
			}
		}
		b.AnswerClose()
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	body := make([]byte, 1<<10)
	published := make(chan error, 1)
	go func() {
		for i := range n {
			if err := ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: strconv.Itoa(i)}, &sansio.Properties{}, body, nil); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	// The publisher ends up waiting for outgoing room: the socket is full,
	// so a write went to the writer goroutine (the loop's own writes never
	// leave bytes pending).
	for !c.queued.hasWaiters() {
		select {
		case err := <-published:
			t.Fatalf("all %d publishes went through a socket nobody reads: %v", n, err)
		default:
			runtime.Gosched()
		}
	}
	close(resume)
	require.NoError(t, <-published)
}
