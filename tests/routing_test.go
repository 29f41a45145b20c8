package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// publishWith publishes body to queue q with props and waits for its
// confirm. ch must be in confirm mode.
func publishWith(t *testing.T, ch *amqp.Channel, q string, props amqp.Properties, body []byte) {
	t.Helper()
	conf, err := ch.Publish(ctxT(t), amqp.Publishing{RoutingKey: q, Properties: props, Body: body})
	require.NoError(t, err)
	require.NoError(t, conf.Wait(ctxT(t)))
}

// A headers exchange routes by x-match all and any; binding arguments are
// plain Go ints, as amqp091-go users write them.
func TestHeadersExchange(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	hx := uniqueName(t, "headers")
	cleanupExchange(t, c, hx)
	require.NoError(t, ch.ExchangeDeclare(ctx, hx, "headers", amqp.ExchangeOptions{AutoDelete: true}))
	all, anyOf := exclusiveQueue(t, ch), exclusiveQueue(t, ch)
	require.NoError(t, ch.QueueBind(ctx, all, hx, "", amqp.Table{"x-match": "all", "format": "pdf", "n": 7}))
	require.NoError(t, ch.QueueBind(ctx, anyOf, hx, "", amqp.Table{"x-match": "any", "format": "pdf", "n": 7}))
	for _, h := range []amqp.Table{{"format": "pdf", "n": 7}, {"format": "pdf"}, {"n": int32(7)}, {"format": "zip"}} {
		conf, err := ch.Publish(ctx, amqp.Publishing{Exchange: hx, Body: []byte("h"), Properties: amqp.Properties{Headers: h}})
		require.NoError(t, err)
		require.NoError(t, conf.Wait(ctx))
	}
	require.Equal(t, 1, queueLen(t, ch, all))
	require.Equal(t, 3, queueLen(t, ch, anyOf))
}

// A priority queue (x-max-priority as a Go int) hands out the highest
// priority first.
func TestPriorityQueue(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true, Args: amqp.Table{"x-max-priority": 10}})
	require.NoError(t, err)
	for _, p := range []uint8{1, 9, 5, 0, 7} {
		publishWith(t, ch, q.Name, amqp.Properties{Priority: p}, []byte{p})
	}
	var got []byte
	for range 5 {
		d, ok, err := ch.Get(ctx, q.Name, true)
		require.NoError(t, err)
		require.True(t, ok)
		got = append(got, d.Body...)
	}
	require.Equal(t, []byte{9, 7, 5, 1, 0}, got)
}

// Per-message expiration drops a message; one that lives is redelivered
// after a Reject with requeue, and Get then finds the queue empty.
func TestExpirationAndRequeue(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true, Args: amqp.Table{"x-message-ttl": 60000}})
	require.NoError(t, err)
	publishWith(t, ch, q.Name, amqp.Properties{Expiration: "1"}, []byte("short"))
	publishWith(t, ch, q.Name, amqp.Properties{Expiration: "600000"}, []byte("long"))
	awaitQueueLen(t, ch, q.Name, 1)
	d, ok, err := ch.Get(ctx, q.Name, false)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "long", string(d.Body))
	require.Equal(t, "600000", d.Expiration)
	require.NoError(t, d.Reject(ctx, true))
	d, ok, err = ch.Get(ctx, q.Name, false)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, d.Redelivered)
	require.NoError(t, d.Ack(ctx, false))
	_, ok, err = ch.Get(ctx, q.Name, false)
	require.NoError(t, err)
	require.False(t, ok)
}

// A headers table of 2,000 entries, each an array holding an int, a
// string and a nested table, crosses the broker intact.
func TestLargeHeadersTable(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	q := exclusiveQueue(t, ch)
	big := amqp.Table{}
	for i := range 2000 {
		big[fmt.Sprintf("key-%04d", i)] = []any{i, fmt.Sprint(i), amqp.Table{"n": int64(i)}}
	}
	publishWith(t, ch, q, amqp.Properties{Headers: big}, []byte("big"))
	d, ok, err := ch.Get(ctxT(t), q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, d.Headers, len(big))
	for _, i := range []int{0, 1234, 1999} {
		v, isArray := d.Headers[fmt.Sprintf("key-%04d", i)].([]any)
		require.True(t, isArray)
		n, _ := amqp.Int64(v[0])
		require.Equal(t, int64(i), n)
		require.Equal(t, fmt.Sprint(i), v[1])
		require.Equal(t, int64(i), v[2].(amqp.Table)["n"])
	}
}

// A stream is consumed without an explicit Qos (Consume sets the prefetch
// RabbitMQ requires there) from the offsets users write: "first", an int,
// an int64, a time.
func TestStreamOffsets(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := uniqueName(t, "stream")
	cleanupQueue(t, c, q)
	_, err := ch.QueueDeclare(ctx, q, amqp.QueueOptions{Durable: true, Args: amqp.Table{"x-queue-type": "stream"}})
	require.NoError(t, err)
	for i := range 20 {
		publishConfirmed(t, ch, "", q, []byte(fmt.Sprint(i)))
	}
	for _, tc := range []struct {
		offset any
		first  string
	}{{"first", "0"}, {5, "5"}, {int64(10), "10"}, {time.Now().Add(-time.Hour), "0"}} {
		sch := channel(t, c)
		cons, err := sch.Consume(ctx, q, amqp.ConsumeOptions{Args: amqp.Table{"x-stream-offset": tc.offset}})
		require.NoError(t, err, "offset %v", tc.offset)
		d := waitFor(t, cons.Deliveries(), testTimeout, "the first delivery")
		require.Equal(t, tc.first, string(d.Body), "offset %v", tc.offset)
		require.NoError(t, d.Ack(ctx, false))
		require.NoError(t, sch.Close(ctx))
	}
}
