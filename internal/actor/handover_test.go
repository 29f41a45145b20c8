package actor

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// fillWhileStalled publishes on ch, whose broker reads nothing, until
// Publish finds no room: the outgoing bytes are over MaxOutgoing and the
// queued budget is spent, so the loop holds the last publishes back (in
// l.taken or c.pubs). It returns how many Publish accepted.
func fillWhileStalled(t *testing.T, ch *Channel) int {
	t.Helper()
	body := make([]byte, 3000)
	accepted := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, body, nil)
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			return accepted
		}
		accepted++
		require.Less(t, accepted, 1000, "publishes accepted without bound while nothing is read")
	}
}

// A request asked for after Publish returned goes out after the publish,
// also when the loop holds the publish back because the socket is full
// (MaxOutgoing): a close does not discard it, tx.commit covers it, a
// declaration or a cancel on the channel follows it.
func TestPublishesHeldBackGoOutBeforeALaterRequest(t *testing.T) {
	cases := []struct {
		name    string
		consume bool // the request needs a consumer
		ask     func(c *Conn, ch *Channel, cons *Consumer) error
		reply   func(b *fakebroker.Broker, r fakebroker.Frame) bool // answers the request; false for other frames
	}{
		{
			name: "tx.commit",
			ask: func(_ *Conn, ch *Channel, _ *Consumer) error {
				return ch.Call(context.Background(), &sansio.TxCommit{}).Err
			},
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.TxCommit)
				if ok {
					b.Send(r.Channel, &sansio.TxCommitOk{})
				}
				return ok
			},
		},
		{
			name: "queue.declare",
			ask: func(_ *Conn, ch *Channel, _ *Consumer) error {
				return ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "q"}).Err
			},
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.QueueDeclare)
				if ok {
					b.Send(r.Channel, &sansio.QueueDeclareOk{Queue: "q"})
				}
				return ok
			},
		},
		{
			name: "queue.delete no-wait",
			ask: func(_ *Conn, ch *Channel, _ *Consumer) error {
				return ch.Call(context.Background(), &sansio.QueueDelete{Queue: "q", NoWait: true}).Err
			},
			reply: func(_ *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.QueueDelete)
				return ok
			},
		},
		{
			name: "channel.close",
			ask:  func(_ *Conn, ch *Channel, _ *Consumer) error { return ch.Close(context.Background()) },
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.ChannelClose)
				if ok {
					b.Send(r.Channel, &sansio.ChannelCloseOk{})
				}
				return ok
			},
		},
		{
			name:    "basic.cancel",
			consume: true,
			ask:     func(_ *Conn, _ *Channel, cons *Consumer) error { return cons.Cancel(context.Background()) },
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				m, ok := r.Method.(*sansio.BasicCancel)
				if ok {
					b.Send(r.Channel, &sansio.BasicCancelOk{ConsumerTag: m.ConsumerTag})
				}
				return ok
			},
		},
		{
			name: "connection.close",
			ask:  func(c *Conn, _ *Channel, _ *Consumer) error { return c.Close(context.Background()) },
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.ConnectionClose)
				if ok {
					b.Send(0, &sansio.ConnectionCloseOk{})
				}
				return ok
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			before := make(chan int, 1) // publishes read before the request
			c, _ := pipeConn(t, Config{MaxOutgoing: 16 << 10}, func(b *fakebroker.Broker) {
				b.Handshake(0)
				id := b.OpenChannel()
				if tc.consume {
					m := fakebroker.Expect[*sansio.BasicConsume](b)
					b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
				}
				<-release // read nothing until the request was handled
				n := 0
				for {
					r, err := b.Next()
					if err != nil {
						before <- -1
						return
					}
					if _, ok := r.Method.(*sansio.BasicPublish); ok {
						n++
						continue
					}
					if tc.reply(b, r) {
						before <- n
						break
					}
				}
				b.AnswerClose()
			})
			ctx := context.Background()
			ch, err := c.OpenChannel(ctx)
			require.NoError(t, err)
			var cons *Consumer
			if tc.consume {
				cons, err = ch.Consume(ctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: "c"})
				require.NoError(t, err)
			}
			accepted := fillWhileStalled(t, ch)

			// The request's method frame is counted once the loop handled it.
			framesOut := c.Stats().FramesOut
			asked := make(chan error, 1)
			go func() { asked <- tc.ask(c, ch, cons) }()
			for c.Stats().FramesOut == framesOut {
				runtime.Gosched()
			}
			close(release)
			require.NoError(t, <-asked)
			require.Equal(t, accepted, <-before, "publishes the broker read before the %s", tc.name)
		})
	}
}
