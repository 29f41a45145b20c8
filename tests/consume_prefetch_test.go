package tests

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

// publishN publishes n numbered messages to queue and waits until the
// broker has them all.
func publishN(t *testing.T, ch *amqp.Channel, queue string, n int) {
	t.Helper()
	for i := range n - 1 {
		_, err := ch.Publish(ctxT(t), amqp.Publishing{RoutingKey: queue, Body: []byte(strconv.Itoa(i))})
		require.NoError(t, err)
	}
	publishConfirmed(t, ch, "", queue, []byte(strconv.Itoa(n-1))) // confirms are in order: all are in
}

// A manual-ack consumer on a channel where Qos was never called gets a
// prefetch of Config.ConsumerBuffer: with a backlog far larger than that and
// a handler that stalls, the broker stops sending, and the client never
// cancels the consumer.
func TestConsumeDefaultPrefetch(t *testing.T) {
	t.Parallel()
	const buffer, n = 10, 500
	c := dial(t, amqp.Config{ConnectionName: t.Name(), ConsumerBuffer: buffer})
	ch := confirmChannel(t, c)
	q := exclusiveQueue(t, ch)
	publishN(t, ch, q, n)

	cons, err := ch.Consume(ctxT(t), q, amqp.ConsumeOptions{})
	require.NoError(t, err)
	// The handler stalls: the broker holds back all but the prefetch. (More
	// than the 64 the Deliveries channel holds plus ConsumerBuffer would
	// have overflowed without one.)
	check := channel(t, c)
	awaitQueueLen(t, check, q, n-buffer, "the broker sent more than the prefetch")
	require.NoError(t, cons.Err())

	for i := range n {
		d := waitFor(t, cons.Deliveries(), testTimeout, "delivery "+strconv.Itoa(i))
		require.Equal(t, strconv.Itoa(i), string(d.Body))
		require.NoError(t, d.Ack(ctxT(t), false))
	}
	require.NoError(t, cons.Err())
	p, err := check.QueueDeclarePassive(ctxT(t), q)
	require.NoError(t, err)
	require.Equal(t, uint32(1), p.Consumers)
	require.NoError(t, cons.Cancel(ctxT(t)))
	waitClosed(t, cons.Done(), testTimeout, "the cancelled consumer")
	require.ErrorIs(t, cons.Err(), amqp.ErrConsumerCancelled)
}

// warnCounter is a slog.Handler that counts Warn records. warned, when
// set, is closed at the first.
type warnCounter struct {
	mu     sync.Mutex
	warns  int
	warned chan struct{}
}

func (*warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		w.mu.Lock()
		w.warns++
		if w.warns == 1 && w.warned != nil {
			close(w.warned)
		}
		w.mu.Unlock()
	}
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }

func (w *warnCounter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.warns
}

// An explicit Qos(0) removes the limit: a manual-ack consumer that falls
// ConsumerBuffer deliveries behind is then cancelled, logged at Warn, and
// keeps what it received.
func TestConsumeExplicitQosZeroOverflows(t *testing.T) {
	t.Parallel()
	const buffer, n = 10, 500
	logs := &warnCounter{warned: make(chan struct{})}
	c := dial(t, amqp.Config{ConnectionName: t.Name(), ConsumerBuffer: buffer, Logger: slog.New(logs)})
	ch := confirmChannel(t, c)
	q := exclusiveQueue(t, ch)
	publishN(t, ch, q, n)

	require.NoError(t, ch.Qos(ctxT(t), 0, false))
	cons, err := ch.Consume(ctxT(t), q, amqp.ConsumeOptions{})
	require.NoError(t, err)
	// Read nothing until it overflowed: a reader that kept up with the
	// broker would never let it fall behind.
	waitClosed(t, logs.warned, testTimeout, "the overflow's warning")
	got := 0
	for d := range cons.Deliveries() { // closed once the overflow cancelled it
		require.NoError(t, d.Ack(ctxT(t), false))
		got++
	}
	require.Greater(t, got, buffer)
	require.ErrorIs(t, cons.Err(), amqp.ErrConsumerOverflow)
	require.Equal(t, 1, logs.count())
}

// With CancelWithContext, the consumer ends when Consume's ctx does, as
// amqp091-go's ConsumeWithContext; without it, that ctx bounds only the
// call.
func TestConsumeCancelWithContext(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := channel(t, c)
	q := exclusiveQueue(t, ch)

	ctx, cancel := context.WithCancel(context.Background())
	bound, err := ch.Consume(ctx, q, amqp.ConsumeOptions{CancelWithContext: true})
	require.NoError(t, err)
	free, err := ch.Consume(ctx, q, amqp.ConsumeOptions{})
	require.NoError(t, err)
	cancel()

	waitClosed(t, bound.Done(), testTimeout, "the consumer bound to its ctx")
	require.ErrorIs(t, bound.Err(), amqp.ErrConsumerCancelled)
	p, err := ch.QueueDeclarePassive(ctxT(t), q)
	require.NoError(t, err)
	require.Equal(t, uint32(1), p.Consumers, "the other consumer runs on")
	require.NoError(t, free.Err())
	require.NoError(t, free.Cancel(ctxT(t)))
}
