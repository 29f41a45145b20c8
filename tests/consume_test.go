package tests

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

func TestConsumeRangeCancel(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := exclusiveQueue(t, ch)

	cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{Tag: "my-tag", Exclusive: true})
	require.NoError(t, err)
	require.Equal(t, "my-tag", cons.Tag())
	require.NoError(t, cons.Err())

	// The tag is taken on this channel.
	_, err = ch.Consume(ctx, q, amqp.ConsumeOptions{Tag: "my-tag"})
	require.Error(t, err)
	// An exclusive consumer keeps others away: 403 on that channel.
	ch2 := channel(t, c)
	_, err = ch2.Consume(ctx, q, amqp.ConsumeOptions{})
	require.ErrorIs(t, err, amqp.ErrAccessRefused)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)

	for i := range 10 {
		publishConfirmed(t, ch, "", q, fmt.Appendf(nil, "%d", i))
	}
	n := 0
	for d := range cons.Deliveries() {
		require.Equal(t, strconv.Itoa(n), string(d.Body))
		require.Equal(t, "my-tag", d.ConsumerTag)
		require.Equal(t, q, d.RoutingKey)
		require.Equal(t, uint64(n+1), d.DeliveryTag)
		require.NoError(t, d.Ack(ctx, false))
		n++
		if n == 10 {
			require.NoError(t, cons.Cancel(ctx))
		}
	}
	require.Equal(t, 10, n)
	waitClosed(t, cons.Done(), testTimeout, "consumer")
	require.ErrorIs(t, cons.Err(), amqp.ErrConsumerCancelled)
	require.NoError(t, cons.Cancel(ctx), "cancelling twice is harmless")

	// The channel goes on: a new consumer with the same tag is fine.
	publishConfirmed(t, ch, "", q, []byte("later"))
	cons, err = ch.Consume(ctx, q, amqp.ConsumeOptions{Tag: "my-tag", AutoAck: true})
	require.NoError(t, err)
	d := waitFor(t, cons.Deliveries(), testTimeout, "delivery")
	require.Equal(t, "later", string(d.Body))

	// Closing the channel ends the consumer.
	require.NoError(t, ch.Close(ctx))
	waitClosed(t, cons.Done(), testTimeout, "consumer after channel close")
	require.ErrorIs(t, cons.Err(), amqp.ErrChannelClosed)
}

func TestQueueDeletedUnderConsumer(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	name := uniqueName(t, "amqproto.doomed")
	cleanupQueue(t, c, name)
	_, err := ch.QueueDeclare(ctx, name, amqp.QueueOptions{})
	require.NoError(t, err)

	cons, err := ch.Consume(ctx, name, amqp.ConsumeOptions{})
	require.NoError(t, err)
	publishConfirmed(t, ch, "", name, []byte("before"))
	d := waitFor(t, cons.Deliveries(), testTimeout, "delivery")
	require.NoError(t, d.Ack(ctx, false))

	other := channel(t, c)
	_, err = other.QueueDelete(ctx, name, false, false)
	require.NoError(t, err)

	waitClosed(t, cons.Done(), testTimeout, "consumer of a deleted queue")
	_, open := <-cons.Deliveries()
	require.False(t, open)
	require.ErrorIs(t, cons.Err(), amqp.ErrCancelledByBroker)
	// Only the consumer ended: the channel is still open.
	require.NoError(t, ch.Err())
	q := tempQueue(t, ch)
	publishConfirmed(t, ch, "", q, []byte("after"))
}

// A consumer without a prefetch limit whose receiver does not read is
// cancelled once Config.ConsumerBuffer deliveries pile up; every delivery it
// got before the cancel is still handed over.
func TestConsumerOverflow(t *testing.T) {
	t.Parallel()
	const n = 1000
	c := dial(t, amqp.Config{ConnectionName: t.Name(), ConsumerBuffer: 100})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := exclusiveQueue(t, ch)
	for i := range n {
		_, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte(strconv.Itoa(i))})
		require.NoError(t, err)
	}
	publishConfirmed(t, ch, "", q, []byte(strconv.Itoa(n))) // confirms are in order: all are in
	total := n + 1

	cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{AutoAck: true})
	require.NoError(t, err)
	// Do not read; wait until the broker no longer lists the consumer.
	check := channel(t, c)
	deadline := time.Now().Add(testTimeout)
	for {
		p, err := check.QueueDeclarePassive(ctx, q)
		require.NoError(t, err)
		if p.Consumers == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the overflowing consumer was not cancelled")
		time.Sleep(20 * time.Millisecond)
	}

	got := 0
	for d := range cons.Deliveries() {
		require.Equal(t, strconv.Itoa(got), string(d.Body), "in order, none missing")
		got++
	}
	require.ErrorIs(t, cons.Err(), amqp.ErrConsumerOverflow)
	t.Logf("received %d of %d before the cancel", got, total)
	require.Greater(t, got, 100)
	// Auto-ack: what the broker sent left the queue. Nothing in between
	// was lost.
	require.Equal(t, total, got+queueLen(t, check, q))
}

// Consumers that never read, one bounded by a prefetch and one auto-ack,
// stall only themselves: another channel's publishes and confirms go on.
func TestStalledConsumersDoNotBlockOthers(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ctx := ctxT(t)

	prefetched := channel(t, c)
	q1 := tempQueue(t, prefetched)
	require.NoError(t, prefetched.Qos(ctx, 10, false))
	_, err := prefetched.Consume(ctx, q1, amqp.ConsumeOptions{})
	require.NoError(t, err)

	autoAck := channel(t, c)
	q2 := tempQueue(t, autoAck)
	_, err = autoAck.Consume(ctx, q2, amqp.ConsumeOptions{AutoAck: true})
	require.NoError(t, err)

	pub := confirmChannel(t, c)
	q3 := tempQueue(t, pub)
	body := make([]byte, 1024)
	for round := range 5 {
		var confs []*amqp.Confirmation
		for i := range 500 {
			q := []string{q1, q2, q3}[i%3]
			conf, err := pub.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: body})
			require.NoError(t, err, "round %d", round)
			confs = append(confs, conf)
		}
		for _, conf := range confs {
			require.NoError(t, conf.Wait(ctx))
		}
	}
	// Synchronous calls on the publishing channel still get answered.
	p, err := pub.QueueDeclarePassive(ctx, q1)
	require.NoError(t, err)
	require.Equal(t, uint32(1), p.Consumers)
	require.Equal(t, uint32(5*167-10), p.Messages, "prefetch 10 held back the rest of q1")
}

// A consumer ended by the connection's Close reports why, as soon as it is
// done, not only once Close has returned.
func TestConsumerEndedByCloseHasError(t *testing.T) {
	t.Parallel()
	for range 20 {
		c := dial(t, amqp.Config{ConnectionName: t.Name()})
		ch := channel(t, c)
		ctx := ctxT(t)
		q := tempQueue(t, ch)
		cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{AutoAck: true})
		require.NoError(t, err)
		closed := make(chan error, 1)
		go func() { closed <- c.Close(ctx) }()
		waitClosed(t, cons.Done(), testTimeout, "consumer")
		require.ErrorIs(t, cons.Err(), amqp.ErrConnectionClosed)
		require.NoError(t, <-closed)
	}
}

// A message over Config.MaxBodySize closes the channel that receives it,
// consumed or fetched, with 311 CONTENT_TOO_LARGE; the connection and its
// other channels go on, and the message stays in its queue.
func TestMaxBodySizeClosesTheReceivingChannel(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name(), MaxBodySize: 1000})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := exclusiveQueue(t, ch)
	publishConfirmed(t, ch, "", q, make([]byte, 2000))

	consuming := channel(t, c)
	cons, err := consuming.Consume(ctx, q, amqp.ConsumeOptions{})
	require.NoError(t, err)
	waitClosed(t, cons.Done(), testTimeout, "the consumer")
	require.ErrorIs(t, cons.Err(), amqp.ErrContentTooLarge)
	require.ErrorIs(t, consuming.Err(), amqp.ErrContentTooLarge)
	require.ErrorIs(t, consuming.Err(), amqp.ErrChannelClosed)

	getting := channel(t, c)
	_, _, err = getting.Get(ctx, q, false)
	require.ErrorIs(t, err, amqp.ErrContentTooLarge)
	require.ErrorIs(t, getting.Err(), amqp.ErrChannelClosed)

	require.NoError(t, c.Err())
	publishConfirmed(t, ch, "", q, make([]byte, 10))
	awaitQueueLen(t, ch, q, 2)
}
