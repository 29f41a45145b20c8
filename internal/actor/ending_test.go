package actor

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// givenBack answers the client's basic.qos and collects the delivery tags
// it rejects or nacks until connection.close, which it answers.
func givenBack(b *fakebroker.Broker) []uint64 {
	var tags []uint64
	for {
		r, err := b.Next()
		if err != nil {
			return tags
		}
		switch m := r.Method.(type) {
		case *sansio.BasicReject:
			tags = append(tags, m.DeliveryTag)
		case *sansio.BasicNack:
			tags = append(tags, m.DeliveryTag)
		case *sansio.BasicCancel:
			b.Send(r.Channel, &sansio.BasicCancelOk{ConsumerTag: m.ConsumerTag})
		case *sansio.BasicQos:
			b.Send(r.Channel, &sansio.BasicQosOk{})
		case *sansio.ConnectionClose:
			b.Send(0, &sansio.ConnectionCloseOk{})
			return tags
		}
	}
}

// abandonOnTheWire runs call with a context cancelled once the broker has
// read the request, and requires it to fail with the cancellation. Then
// release lets the broker answer, and a basic.qos round trip makes sure
// the client has read the answer before the test goes on.
func abandonOnTheWire(t *testing.T, ch *Channel, seen, release chan struct{}, call func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-seen; cancel() }()
	require.ErrorIs(t, call(ctx), context.Canceled)
	close(release)
	require.NoError(t, ch.Call(context.Background(), &sansio.BasicQos{PrefetchCount: 1}).Err)
}

// A manual-ack basic.get whose caller gave up once it was on the wire: the
// message of the get-ok is given back at once, not held unacknowledged
// until the channel closes.
func TestAbandonedGetGivesItsMessageBack(t *testing.T) {
	seen, release := make(chan struct{}), make(chan struct{})
	tags := make(chan []uint64, 1)
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		fakebroker.Expect[*sansio.BasicGet](b)
		close(seen)
		<-release
		b.SendContent(id, &sansio.BasicGetOk{DeliveryTag: 7, RoutingKey: "q"}, nil, []byte("x"))
		tags <- givenBack(b)
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	abandonOnTheWire(t, ch, seen, release, func(ctx context.Context) error {
		return ch.Call(ctx, &sansio.BasicGet{Queue: "q"}).Err
	})
	require.NoError(t, c.Close(context.Background()))
	require.Equal(t, []uint64{7}, <-tags)
}

// A manual-ack consume whose caller gave up once basic.consume was on the
// wire is cancelled when consume-ok comes, and what it is delivered until
// cancel-ok is given back.
func TestAbandonedConsumeGivesItsDeliveriesBack(t *testing.T) {
	seen, release := make(chan struct{}), make(chan struct{})
	tags := make(chan []uint64, 1)
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		m := fakebroker.Expect[*sansio.BasicConsume](b)
		close(seen)
		<-release
		b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
		b.Deliver(id, m.ConsumerTag, 1, []byte("x"))
		b.Deliver(id, m.ConsumerTag, 2, []byte("y"))
		tags <- givenBack(b)
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	abandonOnTheWire(t, ch, seen, release, func(ctx context.Context) error {
		_, err := ch.Consume(ctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: "gone"})
		return err
	})
	require.NoError(t, c.Close(context.Background()))
	require.ElementsMatch(t, []uint64{1, 2}, <-tags)
}

// Cancel on a consumer that has ended already does nothing: the broker
// cancelled it, and a new consumer took its tag, which a basic.cancel now
// would end without the client knowing.
func TestCancelOfAnEndedConsumerLeavesItsTagAlone(t *testing.T) {
	cancels := make(chan int, 1)
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		m := fakebroker.Expect[*sansio.BasicConsume](b)
		b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
		b.Send(id, &sansio.BasicCancel{ConsumerTag: m.ConsumerTag, NoWait: true}) // its queue was deleted
		m = fakebroker.Expect[*sansio.BasicConsume](b)
		b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
		n := 0
		for {
			r, err := b.Next()
			require.NoError(t, err)
			switch m := r.Method.(type) {
			case *sansio.BasicCancel:
				n++
				b.Send(id, &sansio.BasicCancelOk{ConsumerTag: m.ConsumerTag})
				continue
			case *sansio.BasicQos:
				b.Send(id, &sansio.BasicQosOk{})
			default:
				continue
			}
			break
		}
		cancels <- n
		b.AnswerClose()
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	first, err := ch.Consume(ctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: "t"})
	require.NoError(t, err)
	<-first.Deliveries.Signal()
	_, closed, err := first.Deliveries.Take(nil)
	require.True(t, closed)
	require.ErrorIs(t, err, ErrCancelledByBroker)

	second, err := ch.Consume(ctx, &sansio.BasicConsume{Queue: "q2", ConsumerTag: "t"})
	require.NoError(t, err)
	require.NoError(t, first.Cancel(ctx))
	require.NoError(t, ch.Call(ctx, &sansio.BasicQos{PrefetchCount: 1}).Err)
	require.Zero(t, <-cancels, "the stale Cancel sent basic.cancel")
	_, closed, _ = second.Deliveries.Take(nil)
	require.False(t, closed)
}

// Publishers held by channel.flow when the broker closes the channel fail:
// none of them may report its message handed over.
func TestPublishersHeldByFlowFailWhenTheChannelCloses(t *testing.T) {
	const n = 50
	paused, closeIt := make(chan struct{}), make(chan struct{})
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		b.Send(id, &sansio.ChannelFlow{Active: false})
		fakebroker.Expect[*sansio.ChannelFlowOk](b)
		close(paused)
		<-closeIt
		b.Send(id, &sansio.ChannelClose{ReplyCode: 320, ReplyText: "CONNECTION_FORCED"})
		b.AnswerClose()
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	<-paused
	errs := make(chan error, n)
	for range n {
		go func() {
			errs <- ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("x"), nil)
		}()
	}
	waitParkedOnGate(t, n)
	close(closeIt)
	for range n {
		require.ErrorIs(t, <-errs, sansio.ErrChannelClosed)
	}
}

// waitParkedOnGate waits until n goroutines wait in gate.wait.
func waitParkedOnGate(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<22)
	for {
		k := runtime.Stack(buf, true)
		if strings.Count(string(buf[:k]), "actor.(*gate).wait") >= n {
			return
		}
		require.True(t, time.Now().Before(deadline), "publishers never waited at the gate")
		runtime.Gosched()
	}
}

// deafConn is a net.Conn that ignores deadlines, as a careless wrapper might.
type deafConn struct{ net.Conn }

func (deafConn) SetDeadline(time.Time) error      { return nil }
func (deafConn) SetWriteDeadline(time.Time) error { return nil }

// Close ends the connection even when its socket is stuck and ignores the
// write deadline that would normally end the stuck write.
func TestCloseEndsAStuckSocketThatIgnoresDeadlines(t *testing.T) {
	stalled, stop := make(chan struct{}), make(chan struct{})
	client, server := net.Pipe()
	c, _ := scriptedConn(t, Config{}, deafConn{client}, server, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		close(stalled) // read nothing more: the client's writes block
		<-stop
	})
	defer close(stop)
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	<-stalled
	for range 3 {
		require.NoError(t, ch.Publish(context.Background(), &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, make([]byte, 100), nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.Error(t, c.Close(ctx))
	require.Less(t, time.Since(start), 5*time.Second)
	<-c.Done()
}

// A publisher waiting for outgoing room on a stuck socket fails when its
// channel ends, rather than wait for the socket.
func TestPublisherWaitingForRoomFailsWhenTheChannelCloses(t *testing.T) {
	stalled, closeIt, stop := make(chan struct{}), make(chan struct{}), make(chan struct{})
	c, _ := pipeConn(t, Config{MaxOutgoing: 64 << 10}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		close(stalled) // read nothing more: the client's writes block
		<-closeIt
		b.Send(id, &sansio.ChannelClose{ReplyCode: 406, ReplyText: "PRECONDITION_FAILED"})
		<-stop
	})
	defer close(stop)
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	<-stalled
	published := make(chan error, 1)
	go func() {
		for {
			err := ch.Publish(context.Background(), &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, make([]byte, 16<<10), nil)
			if err != nil {
				published <- err
				return
			}
		}
	}()
	for !c.queued.hasWaiters() {
		runtime.Gosched()
	}
	close(closeIt)
	require.ErrorIs(t, <-published, sansio.ErrChannelClosed)
}

// A basic.qos after Consume does not change that consumer's prefetch at the
// broker, so it does not lower the bound past which the consumer counts as
// overflowed either.
func TestLaterQosDoesNotLowerAStartedConsumersBound(t *testing.T) {
	delivered := make(chan bool, 1) // whether the client cancelled meanwhile
	c, _ := pipeConn(t, Config{ConsumerBuffer: 10}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		fakebroker.Expect[*sansio.BasicQos](b)
		b.Send(id, &sansio.BasicQosOk{})
		consume := fakebroker.Expect[*sansio.BasicConsume](b)
		b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: consume.ConsumerTag})
		fakebroker.Expect[*sansio.BasicQos](b)
		b.Send(id, &sansio.BasicQosOk{})
		for i := range 50 { // within the prefetch of 100 the consumer started with
			b.Deliver(id, consume.ConsumerTag, uint64(i+1), []byte("m"))
		}
		b.Send(id, &sansio.ChannelFlow{Active: true}) // a marker: all delivered
		cancelled := false
		for {
			r, err := b.Next()
			require.NoError(t, err)
			if m, ok := r.Method.(*sansio.BasicCancel); ok {
				cancelled = true
				b.Send(id, &sansio.BasicCancelOk{ConsumerTag: m.ConsumerTag})
			}
			if _, ok := r.Method.(*sansio.ChannelFlowOk); ok {
				break
			}
		}
		delivered <- cancelled
		b.AnswerClose()
	})
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	require.NoError(t, ch.Call(ctx, &sansio.BasicQos{PrefetchCount: 100}).Err)
	cons, err := ch.Consume(ctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: "t"})
	require.NoError(t, err)
	require.NoError(t, ch.Call(ctx, &sansio.BasicQos{PrefetchCount: 5}).Err)
	require.False(t, <-delivered, "the consumer was cancelled as overflowed") // nothing read meanwhile
	items, closed, _ := cons.Deliveries.Take(nil)
	require.False(t, closed)
	require.Len(t, items, 50)
}
