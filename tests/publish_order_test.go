package tests

import (
	"context"
	"testing"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// A publish that returned nil goes out before anything the same goroutine
// asks for afterwards: closing the connection or the channel right after
// publishing loses nothing, and tx.commit covers it.
func TestPublishThenCloseOrCommit(t *testing.T) {
	t.Parallel()
	observer := dial(t, amqp.Config{ConnectionName: t.Name()})
	och := channel(t, observer)
	q := uniqueName(t, "amqproto.flush")
	_, err := och.QueueDeclare(ctxT(t), q, amqp.QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	cleanupQueue(t, observer, q)
	ctx := ctxT(t)

	const rounds, n = 10, 500
	want := 0
	publish := func(ch *amqp.Channel) {
		t.Helper()
		for range n {
			_, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte("m")})
			require.NoError(t, err)
		}
		want += n
	}
	for round := range rounds {
		c, err := amqp.DialConfig(ctx, brokerURL(t), amqp.Config{ConnectionName: t.Name()})
		require.NoError(t, err)
		ch, err := c.Channel(ctx)
		require.NoError(t, err)

		publish(ch)
		require.NoError(t, ch.Close(ctx))
		awaitQueueLen(t, och, q, want, "round %d, channel close", round)

		ch, err = c.Channel(ctx)
		require.NoError(t, err)
		require.NoError(t, ch.Tx(ctx))
		publish(ch)
		require.NoError(t, ch.TxCommit(ctx))
		awaitQueueLen(t, och, q, want, "round %d, tx.commit", round)

		publish(ch)
		require.NoError(t, ch.TxCommit(ctx))
		publish(ch)
		require.NoError(t, c.Close(ctx))
		want -= n // the last ones were not committed
		awaitQueueLen(t, och, q, want, "round %d, after connection close", round)

		c, err = amqp.DialConfig(ctx, brokerURL(t), amqp.Config{ConnectionName: t.Name()})
		require.NoError(t, err)
		ch, err = c.Channel(ctx)
		require.NoError(t, err)
		publish(ch)
		closeCtx, cancel := context.WithTimeout(ctx, testTimeout)
		require.NoError(t, c.Close(closeCtx))
		cancel()
		awaitQueueLen(t, och, q, want, "round %d, connection close", round)
	}
}
