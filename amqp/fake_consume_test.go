package amqp

import (
	"context"
	"testing"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// startConsumer answers the client's basic.consume, and the basic.qos
// that may come first (Consume's default prefetch), and returns the
// consumer's tag.
func startConsumer(b *fakebroker.Broker, id uint16) string {
	r, err := b.Next()
	require.NoError(b.T(), err)
	if _, ok := r.Method.(*sansio.BasicQos); ok {
		b.Send(id, &sansio.BasicQosOk{})
		r, err = b.Next()
		require.NoError(b.T(), err)
	}
	m, ok := r.Method.(*sansio.BasicConsume)
	require.True(b.T(), ok, "expected basic.consume, got %v", r.Method)
	b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
	return m.ConsumerTag
}

// tagsOf returns the delivery tags of ds.
func tagsOf(ds []Delivery) []uint64 {
	tags := []uint64{}
	for _, d := range ds {
		tags = append(tags, d.DeliveryTag)
	}
	return tags
}

// Cancel ends the consumer: what was delivered until the broker's
// cancel-ok is handed over, then Deliveries closes and Err is
// ErrConsumerCancelled.
func TestConsumerCancelledByCancel(t *testing.T) {
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		tag := startConsumer(b, id)
		b.Deliver(id, tag, 1, []byte("a"))
		b.Deliver(id, tag, 2, []byte("b"))
		m := fakebroker.Expect[*sansio.BasicCancel](b)
		require.Equal(t, tag, m.ConsumerTag)
		b.Deliver(id, tag, 3, []byte("c")) // crossed the cancel on the wire
		b.Send(id, &sansio.BasicCancelOk{ConsumerTag: tag})
		b.AnswerClose()
	})
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{Tag: "mine"})
	require.NoError(t, err)
	require.Equal(t, "mine", cons.Tag())
	require.Nil(t, cons.Err())
	require.NoError(t, cons.Cancel(context.Background()))
	require.ErrorIs(t, cons.Err(), ErrConsumerCancelled, "set once Cancel has returned")
	got := requireClosed(t, cons.Deliveries())
	require.Equal(t, []uint64{1, 2, 3}, tagsOf(got))
	require.Equal(t, []byte("a"), got[0].Body)
	require.Equal(t, "mine", got[0].ConsumerTag)
	<-cons.Done()
	require.ErrorIs(t, cons.Err(), ErrConsumerCancelled)
	require.NoError(t, ch.Err(), "cancelling a consumer leaves its channel open")
}

// A basic.cancel from the broker (its queue was deleted) ends the
// consumer with ErrCancelledByBroker, after what it was delivered.
func TestConsumerCancelledByTheBroker(t *testing.T) {
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		tag := startConsumer(b, id)
		b.Deliver(id, tag, 1, []byte("a"))
		b.Send(id, &sansio.BasicCancel{ConsumerTag: tag, NoWait: true})
		b.AnswerClose()
	})
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{})
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, tagsOf(requireClosed(t, cons.Deliveries())))
	<-cons.Done()
	require.ErrorIs(t, cons.Err(), ErrCancelledByBroker)
	require.NoError(t, ch.Err())
}

// When its channel or connection ends, a consumer ends with the end's
// error.
func TestConsumerEndsWithItsChannelOrConnection(t *testing.T) {
	cases := []struct {
		name   string
		end    func(b *fakebroker.Broker, id uint16)
		client func(t *testing.T, c *Conn, ch *Channel)
		want   []error
	}{
		{"broker closes the channel", func(b *fakebroker.Broker, id uint16) {
			closeChannel(b, id, NotFound)
			b.AnswerClose()
		}, nil, []error{ErrChannelClosed, ErrNotFound}},
		{"broker closes the connection", func(b *fakebroker.Broker, id uint16) {
			closeConnection(b, ConnectionForced)
		}, nil, []error{ErrConnectionClosed, ErrConnectionForced}},
		{"client closes the channel", func(b *fakebroker.Broker, id uint16) {
			fakebroker.Expect[*sansio.ChannelClose](b)
			b.Send(id, &sansio.ChannelCloseOk{})
			b.AnswerClose()
		}, func(t *testing.T, c *Conn, ch *Channel) {
			require.NoError(t, ch.Close(context.Background()))
		}, []error{ErrChannelClosed}},
		{"client closes the connection", func(b *fakebroker.Broker, id uint16) {
			b.AnswerClose()
		}, func(t *testing.T, c *Conn, ch *Channel) {
			require.NoError(t, c.Close(context.Background()))
		}, []error{ErrConnectionClosed}},
		{"connection fails", func(b *fakebroker.Broker, id uint16) {
			b.Conn().Close()
		}, nil, []error{ErrConnectionClosed}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
				startConsumer(b, id)
				tc.end(b, id)
			})
			cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{})
			require.NoError(t, err)
			if tc.client != nil {
				tc.client(t, c, ch)
			}
			require.Empty(t, requireClosed(t, cons.Deliveries()))
			<-cons.Done()
			for _, want := range tc.want {
				require.ErrorIs(t, cons.Err(), want)
			}
		})
	}
}

// After its channel ends, a manual-ack consumer hands over nothing, not
// even what already sat in the Deliveries buffer: none of it can be
// acknowledged any more, and the broker requeues it. An auto-ack consumer
// hands over everything it received.
func TestDeliveriesAfterTheChannelsEnd(t *testing.T) {
	const sent = 200 // more than Deliveries holds
	for _, autoAck := range []bool{false, true} {
		t.Run(map[bool]string{false: "manual ack", true: "auto ack"}[autoAck], func(t *testing.T) {
			_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
				tag := startConsumer(b, id)
				for i := range uint64(sent) {
					b.Deliver(id, tag, i+1, []byte("x"))
				}
				closeChannel(b, id, InternalError)
				b.AnswerClose()
			})
			cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{AutoAck: autoAck})
			require.NoError(t, err)
			<-ch.Context().Done()
			if !autoAck {
				<-cons.Done() // it gave up without a reader
			}
			got := tagsOf(requireClosed(t, cons.Deliveries()))
			<-cons.Done()
			require.ErrorIs(t, cons.Err(), ErrInternalError)
			if autoAck {
				require.Len(t, got, sent)
			} else {
				// Neither those still queued nor those already in the
				// Deliveries buffer: none could be acknowledged.
				require.Empty(t, got)
			}
			for i, tag := range got {
				require.Equal(t, uint64(i+1), tag, "in order, none skipped")
			}
		})
	}
}

// A delivery's Ack goes to the broker on the delivery's channel; after
// the channel ends it fails with ErrChannelClosed.
func TestDeliveryAckGoesOutOnItsChannel(t *testing.T) {
	acked := make(chan uint64, 1)
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		tag := startConsumer(b, id)
		b.Deliver(id, tag, 7, []byte("a"))
		acked <- fakebroker.Expect[*sansio.BasicAck](b).DeliveryTag
		closeChannel(b, id, NotFound)
		b.AnswerClose()
	})
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{})
	require.NoError(t, err)
	d := receive(t, cons.Deliveries())
	require.Same(t, ch, d.Channel())
	require.NoError(t, d.Ack(context.Background(), false))
	require.Equal(t, uint64(7), <-acked)
	<-ch.Context().Done()
	require.ErrorIs(t, d.Ack(context.Background(), false), ErrChannelClosed)
	var zero Delivery
	require.ErrorIs(t, zero.Ack(context.Background(), false), ErrNoDelivery)
}

// An auto-ack consumer whose receiver falls Config.ConsumerBuffer
// deliveries behind is cancelled and ends with ErrConsumerOverflow, after
// handing over every delivery it received.
func TestConsumerOverflowCancelsItAndKeepsWhatItReceived(t *testing.T) {
	const sent = 100 // more than Deliveries holds plus the buffer
	cancelled := make(chan struct{})
	c, _ := fakeConnConfig(t, Config{ConsumerBuffer: 10}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		tag := startConsumer(b, id)
		for i := range uint64(sent) {
			b.Deliver(id, tag, i+1, []byte("x"))
		}
		m := fakebroker.Expect[*sansio.BasicCancel](b)
		require.Equal(t, tag, m.ConsumerTag)
		b.Send(id, &sansio.BasicCancelOk{ConsumerTag: tag})
		close(cancelled)
		b.AnswerClose()
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{AutoAck: true})
	require.NoError(t, err)
	<-cancelled // no reader until then
	got := tagsOf(requireClosed(t, cons.Deliveries()))
	require.ErrorIs(t, cons.Err(), ErrConsumerOverflow)
	require.Len(t, got, sent)
	for i, tag := range got {
		require.Equal(t, uint64(i+1), tag, "in order, none skipped")
	}
}

// A manual-ack consumer on a channel without Qos gets a prefetch of
// Config.ConsumerBuffer, sent once per channel; an auto-ack one gets none.
func TestConsumeSetsADefaultPrefetchOncePerChannel(t *testing.T) {
	prefetch := make(chan uint16, 1)
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		q := fakebroker.Expect[*sansio.BasicQos](b)
		require.False(t, q.Global)
		prefetch <- q.PrefetchCount
		b.Send(id, &sansio.BasicQosOk{})
		for range 3 { // the basic.consume of each consumer, and no qos
			m := fakebroker.Expect[*sansio.BasicConsume](b)
			b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
		}
		b.AnswerClose()
	})
	for _, autoAck := range []bool{false, false, true} {
		_, err := ch.Consume(context.Background(), "q", ConsumeOptions{AutoAck: autoAck})
		require.NoError(t, err)
	}
	require.Equal(t, uint16(16384), <-prefetch)
}

// With CancelWithContext, the end of Consume's ctx cancels the consumer,
// which ends with ErrConsumerCancelled.
func TestConsumerCancelledWithItsContext(t *testing.T) {
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		tag := startConsumer(b, id)
		b.Deliver(id, tag, 1, []byte("a"))
		fakebroker.Expect[*sansio.BasicCancel](b)
		b.Send(id, &sansio.BasicCancelOk{ConsumerTag: tag})
		b.AnswerClose()
	})
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := ch.Consume(ctx, "q", ConsumeOptions{CancelWithContext: true})
	require.NoError(t, err)
	require.Equal(t, uint64(1), receive(t, cons.Deliveries()).DeliveryTag)
	cancel()
	require.Empty(t, requireClosed(t, cons.Deliveries()))
	require.ErrorIs(t, cons.Err(), ErrConsumerCancelled)
}
