package tests

import (
	"fmt"
	"testing"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

func TestPublishConsumeRoundTrip(t *testing.T) {
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := channel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)
	require.NoError(t, ch.Confirm(ctx))
	for i := range 10 {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte(fmt.Sprint(i)),
			Properties: amqp.Properties{ContentType: "text/plain", Headers: amqp.Table{"n": int32(i)}}})
		require.NoError(t, err)
		require.NoError(t, conf.Wait(ctx))
	}
	require.NoError(t, ch.Qos(ctx, 5, false))
	cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{})
	require.NoError(t, err)
	n := 0
	for d := range cons.Deliveries() {
		require.Equal(t, fmt.Sprint(n), string(d.Body))
		require.Equal(t, int32(n), d.Headers["n"])
		require.NoError(t, d.Ack(ctx, false))
		n++
		if n == 10 {
			require.NoError(t, cons.Cancel(ctx))
		}
	}
	require.ErrorIs(t, cons.Err(), amqp.ErrConsumerCancelled)
	require.Equal(t, 10, n)
}
