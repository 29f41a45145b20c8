package actor

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// A request made with a context already done is never handed to the loop:
// the outcome does not depend on select's random choice.
func TestDoneContextSendsNothing(t *testing.T) {
	first := make(chan sansio.Method, 1)
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		first <- fakebroker.Expect[*sansio.QueueDeclare](b)
		b.AnswerClose()
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		require.ErrorIs(t, ch.Call(done, &sansio.QueueDeclare{Queue: "cancelled"}).Err, context.Canceled)
		require.ErrorIs(t, ch.Send(done, &sansio.BasicAck{DeliveryTag: 1}), context.Canceled)
		require.ErrorIs(t, ch.Publish(done, &sansio.BasicPublish{}, &sansio.Properties{}, nil, nil), context.Canceled)
		_, err := ch.Consume(done, &sansio.BasicConsume{ConsumerTag: "t"})
		require.ErrorIs(t, err, context.Canceled)
		_, err = c.OpenChannel(done)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, ch.Close(done), context.Canceled)
	}
	require.NoError(t, ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "marker", NoWait: true}).Err)
	require.Equal(t, "marker", (<-first).(*sansio.QueueDeclare).Queue, "nothing went out before it")
}

// Close returns within its context, also with unsent bytes that the
// broker does not read: the socket is closed without draining them.
func TestCloseHonoursItsContextWithUnsentBytes(t *testing.T) {
	for _, limit := range []time.Duration{10 * time.Millisecond, 500 * time.Millisecond} {
		synctest.Test(t, func(t *testing.T) {
			c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
				b.Handshake(0)
				b.OpenChannel()
				<-b.T().Context().Done() // reads nothing more
			})
			ch, err := c.OpenChannel(context.Background())
			require.NoError(t, err)
			body := make([]byte, 3<<20)
			require.NoError(t, ch.Publish(context.Background(), &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, body, nil))
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			start := time.Now()
			require.ErrorIs(t, c.Close(ctx), context.DeadlineExceeded)
			require.LessOrEqual(t, time.Since(start), limit, "Close overran its context")
		})
	}
}

// Close returns the error that ended the connection while it waited for
// the broker's close-ok, such as a missed heartbeat: it was not clean.
func TestCloseCutByAMissedHeartbeatIsNotClean(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
			b.Handshake(1)
			for { // silent, and never answers the close
				if _, err := b.Next(); err != nil {
					return
				}
			}
		})
		require.ErrorIs(t, c.Close(context.Background()), sansio.ErrHeartbeatTimeout)
	})
}

// Blocking holds only the latest notification, however many came.
func TestBlockingKeepsTheLatestState(t *testing.T) {
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		// The burst comes once the client asked for a channel, so that
		// the state before it is known.
		open, err := b.Next()
		require.NoError(t, err)
		require.IsType(t, &sansio.ChannelOpen{}, open.Method)
		for range 1000 {
			b.Send(0, &sansio.ConnectionBlocked{Reason: "a"})
			b.Send(0, &sansio.ConnectionUnblocked{})
		}
		b.Send(0, &sansio.ConnectionBlocked{Reason: "b"})
		b.Send(open.Channel, &sansio.ChannelOpenOk{})
		b.AnswerClose()
	})
	state, _, ended := c.Blocking()
	require.Equal(t, Blocking{}, state, "a new connection starts unblocked")
	require.False(t, ended)
	_, err := c.OpenChannel(context.Background()) // answered after the burst
	require.NoError(t, err)
	state, changed, _ := c.Blocking()
	require.Equal(t, Blocking{Blocked: true, Reason: "b"}, state)
	require.NoError(t, c.Close(context.Background()))
	<-changed
	_, _, ended = c.Blocking()
	require.True(t, ended)
}
