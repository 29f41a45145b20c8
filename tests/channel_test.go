package tests

import (
	"context"
	"fmt"
	"testing"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

func TestExchangeOperations(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)

	src := uniqueName(t, "amqproto.src")
	dst := uniqueName(t, "amqproto.dst")
	cleanupExchange(t, c, src)
	cleanupExchange(t, c, dst)
	require.NoError(t, ch.ExchangeDeclare(ctx, src, "direct", amqp.ExchangeOptions{}))
	require.NoError(t, ch.ExchangeDeclare(ctx, dst, "fanout", amqp.ExchangeOptions{}))
	// Redeclaring with the same flags is a no-op.
	require.NoError(t, ch.ExchangeDeclare(ctx, src, "direct", amqp.ExchangeOptions{}))
	require.NoError(t, ch.ExchangeDeclarePassive(ctx, src))
	require.NoError(t, ch.ExchangeDeclarePassive(ctx, dst))

	// no-wait: no reply, yet the exchange exists once a later call returns.
	nowait := uniqueName(t, "amqproto.nowait")
	cleanupExchange(t, c, nowait)
	require.NoError(t, ch.ExchangeDeclare(ctx, nowait, "topic", amqp.ExchangeOptions{NoWait: true, AutoDelete: true}))
	require.NoError(t, ch.ExchangeDeclarePassive(ctx, nowait))

	q := tempQueue(t, ch)
	require.NoError(t, ch.QueueBind(ctx, q, dst, "", nil))
	require.NoError(t, ch.ExchangeBind(ctx, dst, src, "k", nil))

	// src --k--> dst --> q
	publishConfirmed(t, ch, src, "k", []byte("via binding"))
	d, ok, err := ch.Get(ctx, q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "via binding", string(d.Body))
	require.Equal(t, src, d.Exchange)
	require.Equal(t, "k", d.RoutingKey)

	// Another routing key does not cross the binding: returned as unroutable.
	conf, err := ch.Publish(ctx, amqp.Publishing{Exchange: src, RoutingKey: "other", Mandatory: true, Body: []byte("x")})
	require.NoError(t, err)
	require.ErrorIs(t, conf.Wait(ctx), amqp.ErrReturned)

	require.NoError(t, ch.ExchangeUnbind(ctx, dst, src, "k", nil))
	conf, err = ch.Publish(ctx, amqp.Publishing{Exchange: src, RoutingKey: "k", Mandatory: true, Body: []byte("y")})
	require.NoError(t, err)
	require.ErrorIs(t, conf.Wait(ctx), amqp.ErrReturned)
	_, ok, err = ch.Get(ctx, q, true)
	require.NoError(t, err)
	require.False(t, ok)

	// if-unused refuses to delete an exchange that still has bindings:
	// 406 on that channel only.
	ch2 := channel(t, c)
	err = ch2.ExchangeDelete(ctx, dst, true)
	require.ErrorIs(t, err, amqp.ErrPreconditionFailed)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)

	require.NoError(t, ch.QueueUnbind(ctx, q, dst, "", nil))
	require.NoError(t, ch.ExchangeDelete(ctx, dst, true))
	require.NoError(t, ch.ExchangeDelete(ctx, src, false))

	ch3 := channel(t, c)
	err = ch3.ExchangeDeclarePassive(ctx, src)
	require.ErrorIs(t, err, amqp.ErrNotFound)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
}

func TestQueueOperations(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)

	// Server-named.
	anon, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true})
	require.NoError(t, err)
	require.NotEmpty(t, anon.Name)
	require.Zero(t, anon.Messages)

	// Named, with arguments; redeclaring the same is fine.
	name := uniqueName(t, "amqproto.q")
	opts := amqp.QueueOptions{AutoDelete: true, Args: amqp.Table{"x-max-length": int32(100)}}
	q, err := ch.QueueDeclare(ctx, name, opts)
	require.NoError(t, err)
	require.Equal(t, name, q.Name)
	cleanupQueue(t, c, name)
	_, err = ch.QueueDeclare(ctx, name, opts)
	require.NoError(t, err)

	// no-wait.
	nowait := uniqueName(t, "amqproto.nowait")
	cleanupQueue(t, c, nowait)
	q, err = ch.QueueDeclare(ctx, nowait, amqp.QueueOptions{Exclusive: true, NoWait: true})
	require.NoError(t, err)
	require.Equal(t, nowait, q.Name)
	_, err = ch.QueueDeclarePassive(ctx, nowait)
	require.NoError(t, err)

	// Bind to an exchange of our own, publish, count with passive declare.
	ex := uniqueName(t, "amqproto.ex")
	cleanupExchange(t, c, ex)
	require.NoError(t, ch.ExchangeDeclare(ctx, ex, "direct", amqp.ExchangeOptions{AutoDelete: true}))
	require.NoError(t, ch.QueueBind(ctx, name, ex, "a", nil))
	require.NoError(t, ch.QueueBind(ctx, name, ex, "b", nil))
	for i := range 3 {
		publishConfirmed(t, ch, ex, "a", fmt.Appendf(nil, "a%d", i))
	}
	publishConfirmed(t, ch, ex, "b", []byte("b"))
	require.Equal(t, 4, queueLen(t, ch, name))
	// A consumer shows in the passive declare's count.
	cons, err := ch.Consume(ctx, anon.Name, amqp.ConsumeOptions{})
	require.NoError(t, err)
	p, err := ch.QueueDeclarePassive(ctx, anon.Name)
	require.NoError(t, err)
	require.Equal(t, uint32(1), p.Consumers)
	require.NoError(t, cons.Cancel(ctx))

	require.NoError(t, ch.QueueUnbind(ctx, name, ex, "b", nil))
	conf, err := ch.Publish(ctx, amqp.Publishing{Exchange: ex, RoutingKey: "b", Mandatory: true, Body: []byte("b")})
	require.NoError(t, err)
	require.ErrorIs(t, conf.Wait(ctx), amqp.ErrReturned)

	n, err := ch.QueuePurge(ctx, name)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Zero(t, queueLen(t, ch, name))

	publishConfirmed(t, ch, ex, "a", []byte("left"))
	publishConfirmed(t, ch, ex, "a", []byte("behind"))
	// if-empty refuses to delete a queue with messages: 406, channel closed.
	ch2 := channel(t, c)
	_, err = ch2.QueueDelete(ctx, name, false, true)
	require.ErrorIs(t, err, amqp.ErrPreconditionFailed)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)

	n, err = ch.QueueDelete(ctx, name, true, false)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = ch.QueueDelete(ctx, anon.Name, false, false)
	require.NoError(t, err)
	require.Zero(t, n)

	_, err = ch.QueueDeclarePassive(ctx, name)
	require.ErrorIs(t, err, amqp.ErrNotFound)
}

func TestQuorumQueue(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)

	name := uniqueName(t, "amqproto.quorum")
	cleanupQueue(t, c, name)
	_, err := ch.QueueDeclare(ctx, name, amqp.QueueOptions{Durable: true, Args: amqp.Table{"x-queue-type": "quorum"}})
	require.NoError(t, err)
	for i := range 5 {
		publishConfirmed(t, ch, "", name, fmt.Appendf(nil, "%d", i))
	}
	require.Equal(t, 5, queueLen(t, ch, name))

	require.NoError(t, ch.Qos(ctx, 2, false)) // quorum queues need a prefetch
	cons, err := ch.Consume(ctx, name, amqp.ConsumeOptions{})
	require.NoError(t, err)
	for i := range 5 {
		d := waitFor(t, cons.Deliveries(), testTimeout, "delivery")
		require.Equal(t, fmt.Sprint(i), string(d.Body))
		require.NoError(t, d.Ack(ctx, false))
	}
	require.NoError(t, cons.Cancel(ctx))
	_, err = ch.QueueDelete(ctx, name, false, false)
	require.NoError(t, err)

	// A quorum queue cannot be exclusive: 406 on that channel.
	ch2 := channel(t, c)
	_, err = ch2.QueueDeclare(ctx, uniqueName(t, "amqproto.quorum"), amqp.QueueOptions{Durable: true, Exclusive: true,
		Args: amqp.Table{"x-queue-type": "quorum"}})
	require.ErrorIs(t, err, amqp.ErrPreconditionFailed)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
}

func TestGetAckNackReject(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)

	_, ok, err := ch.Get(ctx, q, false)
	require.NoError(t, err)
	require.False(t, ok, "get-empty")

	for i := range 5 {
		publishConfirmed(t, ch, "", q, fmt.Appendf(nil, "m%d", i))
	}
	get := func(autoAck bool) amqp.Delivery {
		t.Helper()
		d, ok, err := ch.Get(ctx, q, autoAck)
		require.NoError(t, err)
		require.True(t, ok)
		return d
	}

	d := get(false)
	require.Equal(t, "m0", string(d.Body))
	require.Equal(t, uint32(4), d.MessageCount)
	require.False(t, d.Redelivered)
	require.Equal(t, q, d.RoutingKey)
	require.Same(t, ch, d.Channel())
	require.NoError(t, d.Ack(ctx, false))

	// Nack with requeue: it comes back, redelivered, at the head.
	d = get(false)
	require.Equal(t, "m1", string(d.Body))
	require.NoError(t, d.Nack(ctx, false, true))
	d = get(false)
	require.Equal(t, "m1", string(d.Body))
	require.True(t, d.Redelivered)
	// Reject without requeue: gone.
	require.NoError(t, d.Reject(ctx, false))

	// Reject with requeue, through the channel.
	d = get(false)
	require.Equal(t, "m2", string(d.Body))
	require.NoError(t, ch.Reject(ctx, d.DeliveryTag, true))
	d = get(false)
	require.Equal(t, "m2", string(d.Body))
	require.True(t, d.Redelivered)

	// Multiple ack through the channel covers m2, m3 and m4.
	get(false)
	last := get(false)
	require.Equal(t, "m4", string(last.Body))
	require.NoError(t, ch.Ack(ctx, last.DeliveryTag, true))

	// Nack of several at once without requeue drops them.
	for i := range 3 {
		publishConfirmed(t, ch, "", q, fmt.Appendf(nil, "n%d", i))
	}
	get(false)
	get(false)
	last = get(false)
	require.NoError(t, ch.Nack(ctx, last.DeliveryTag, true, false))

	// Auto-ack get.
	publishConfirmed(t, ch, "", q, []byte("auto"))
	d = get(true)
	require.Equal(t, "auto", string(d.Body))

	// Everything was settled: closing the channel requeues nothing.
	require.NoError(t, ch.Close(ctx))
	ch2 := channel(t, c)
	require.Zero(t, queueLen(t, ch2, q))
}

func TestRecover(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)
	publishConfirmed(t, ch, "", q, []byte("again"))

	d, ok, err := ch.Get(ctx, q, false)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, d.Redelivered)
	_, ok, err = ch.Get(ctx, q, false)
	require.NoError(t, err)
	require.False(t, ok, "the message is unacknowledged, not ready")

	require.NoError(t, ch.Recover(ctx))
	d, ok, err = ch.Get(ctx, q, false)
	require.NoError(t, err)
	require.True(t, ok, "recover requeued the message")
	require.True(t, d.Redelivered)
	require.Equal(t, "again", string(d.Body))
	require.NoError(t, d.Ack(ctx, false))
}

func TestQos(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)
	for i := range 10 {
		publishConfirmed(t, ch, "", q, fmt.Appendf(nil, "%d", i))
	}
	require.Error(t, ch.Qos(ctx, -1, false))
	require.Error(t, ch.Qos(ctx, 70000, false))
	require.NoError(t, ch.Qos(ctx, 3, false))
	cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{})
	require.NoError(t, err)

	var got []amqp.Delivery
	for range 3 {
		got = append(got, waitFor(t, cons.Deliveries(), testTimeout, "delivery"))
	}
	// The prefetch holds the rest back until we ack: 7 stay ready.
	p, err := ch.QueueDeclarePassive(ctx, q)
	require.NoError(t, err)
	require.Equal(t, uint32(7), p.Messages)
	require.NoError(t, got[2].Ack(ctx, true))
	for i := 3; i < 10; i++ {
		d := waitFor(t, cons.Deliveries(), testTimeout, "delivery")
		require.Equal(t, fmt.Sprint(i), string(d.Body))
		require.NoError(t, d.Ack(ctx, false))
	}
	require.NoError(t, cons.Cancel(ctx))
	// The global flag is accepted too.
	require.NoError(t, ch.Qos(ctx, 10, true))
}

func TestTransactions(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	setup := channel(t, c)
	q := tempQueue(t, setup)
	ch := channel(t, c)
	ctx := ctxT(t)

	require.NoError(t, ch.Tx(ctx))
	_, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte("rolled back")})
	require.NoError(t, err)
	require.NoError(t, ch.TxRollback(ctx))
	require.Zero(t, queueLen(t, setup, q))

	for _, b := range []string{"one", "two"} {
		_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte(b)})
		require.NoError(t, err)
	}
	require.Zero(t, queueLen(t, setup, q), "not visible before commit")
	require.NoError(t, ch.TxCommit(ctx))
	awaitQueueLen(t, setup, q, 2)

	// Acks are transactional too: a rolled-back ack leaves the message
	// unacknowledged, a committed one removes it.
	d, ok, err := ch.Get(ctx, q, false)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, d.Ack(ctx, false))
	require.NoError(t, ch.TxRollback(ctx))
	require.NoError(t, d.Ack(ctx, false))
	require.NoError(t, ch.TxCommit(ctx))
	d, ok, err = ch.Get(ctx, q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "two", string(d.Body))
	require.NoError(t, ch.TxCommit(ctx))
	require.NoError(t, ch.Close(ctx))
	require.Zero(t, queueLen(t, setup, q))
}

func TestCloseAndContext(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ctx := ctxT(t)
	require.NoError(t, c.Context().Err())
	require.False(t, c.IsClosed())
	require.Equal(t, "RabbitMQ", c.ServerProperties()["product"])

	ch := channel(t, c)
	other := channel(t, c)
	require.NotEqual(t, ch.ID(), other.ID())
	q := tempQueue(t, ch)
	require.NoError(t, ch.Context().Err())
	require.NoError(t, ch.Err())

	require.NoError(t, ch.Close(ctx))
	waitClosed(t, ch.Context().Done(), testTimeout, "channel context")
	require.ErrorIs(t, context.Cause(ch.Context()), amqp.ErrChannelClosed)
	require.ErrorIs(t, ch.Err(), amqp.ErrChannelClosed)
	require.NoError(t, ch.Close(ctx), "closing twice is fine")
	_, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true})
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
	_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: q})
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
	require.ErrorIs(t, ch.Ack(ctx, 1, false), amqp.ErrChannelClosed)

	// The other channel and the connection are untouched.
	require.NoError(t, c.Context().Err())
	_, err = other.QueueDeclarePassive(ctx, q)
	require.NoError(t, err)

	require.NoError(t, c.Close(ctx))
	require.True(t, c.IsClosed())
	require.ErrorIs(t, context.Cause(c.Context()), amqp.ErrConnectionClosed)
	waitClosed(t, other.Context().Done(), testTimeout, "channel context after Close")
	_, err = c.Channel(ctx)
	require.ErrorIs(t, err, amqp.ErrConnectionClosed)
	_, err = other.QueueDeclarePassive(ctx, q)
	require.Error(t, err)
}
