package tests

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

// amqp.Deaths reads the x-death header of a message RabbitMQ dead-lettered.
func TestDeathsOfADeadLetteredMessage(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	dlx := uniqueName(t, "dlx")
	require.NoError(t, ch.ExchangeDeclare(ctx, dlx, "fanout", amqp.ExchangeOptions{AutoDelete: true}))
	cleanupExchange(t, c, dlx)
	dead := exclusiveQueue(t, ch)
	require.NoError(t, ch.QueueBind(ctx, dead, dlx, "", nil))
	work, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true,
		Args: amqp.Table{"x-dead-letter-exchange": dlx}})
	require.NoError(t, err)

	before := time.Now().Add(-time.Second)
	publishConfirmed(t, ch, "", work.Name, []byte("doomed"))
	d, ok, err := ch.Get(ctx, work.Name, false)
	require.NoError(t, err)
	require.True(t, ok)
	require.Nil(t, amqp.Deaths(d.Headers), "not dead-lettered yet")
	require.NoError(t, d.Nack(ctx, false, false)) // dead-letters it

	awaitQueueLen(t, ch, dead, 1)
	d, ok, err = ch.Get(ctx, dead, true)
	require.NoError(t, err)
	require.True(t, ok)
	deaths := amqp.Deaths(d.Headers)
	require.Len(t, deaths, 1)
	require.Equal(t, work.Name, deaths[0].Queue)
	require.Equal(t, "rejected", deaths[0].Reason)
	require.Equal(t, int64(1), deaths[0].Count)
	require.Equal(t, "", deaths[0].Exchange) // the default exchange
	require.Equal(t, []string{work.Name}, deaths[0].RoutingKeys)
	require.WithinRange(t, deaths[0].Time, before, time.Now().Add(time.Second))
}
