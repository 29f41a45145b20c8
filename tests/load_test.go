package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// A 16 MiB message crosses a connection with the smallest frame_max RabbitMQ
// accepts, in about 4,100 body frames each way.
func TestLargeMessageSmallFrames(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name(), FrameMax: 4096})
	_, frameMax, _ := c.Tuning()
	require.Equal(t, uint32(4096), frameMax)
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)

	body := make([]byte, 16<<20)
	_, _ = rand.Read(body)
	sum := sha256.Sum256(body)
	conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: body,
		Properties: amqp.Properties{MessageID: "big", Headers: amqp.Table{"sha256": sum[:]}}})
	require.NoError(t, err)
	require.NoError(t, conf.Wait(ctx))

	cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{AutoAck: true})
	require.NoError(t, err)
	d := waitFor(t, cons.Deliveries(), time.Minute, "the large delivery")
	require.Equal(t, "big", d.MessageID)
	require.Len(t, d.Body, len(body))
	require.True(t, bytes.Equal(body, d.Body), "body differs")
	require.Equal(t, sum[:], d.Headers["sha256"])
	require.NoError(t, cons.Cancel(ctx))
}

// 100 goroutines each use a channel of their own on one connection:
// declare, publish with confirm, get. Run with -race.
func TestManyChannelsConcurrently(t *testing.T) {
	t.Parallel()
	const workers, perWorker = 100, 10
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ctx := ctxT(t)

	work := func(w int) error {
		ch, err := c.Channel(ctx)
		if err != nil {
			return err
		}
		q, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true, AutoDelete: true})
		if err != nil {
			return err
		}
		if err := ch.Confirm(ctx); err != nil {
			return err
		}
		confs := make([]*amqp.Confirmation, 0, perWorker)
		for i := range perWorker {
			conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q.Name, Body: fmt.Appendf(nil, "%d/%d", w, i)})
			if err != nil {
				return err
			}
			confs = append(confs, conf)
		}
		for _, conf := range confs {
			if err := conf.Wait(ctx); err != nil {
				return err
			}
		}
		for i := range perWorker {
			d, ok, err := ch.Get(ctx, q.Name, false)
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("%d/%d", w, i); !ok || string(d.Body) != want {
				return fmt.Errorf("worker %d: got %q (ok %v), want %q", w, d.Body, ok, want)
			}
			if err := d.Ack(ctx, false); err != nil {
				return err
			}
		}
		if _, ok, err := ch.Get(ctx, q.Name, true); err != nil || ok {
			return fmt.Errorf("worker %d: queue not empty (ok %v, err %v)", w, ok, err)
		}
		return ch.Close(ctx)
	}

	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { errs <- work(w) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, c.Context().Err())
}

// With a 1 s heartbeat, 5 s of idleness do not end the connection.
func TestHeartbeatKeepsIdleConnection(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name(), Heartbeat: time.Second})
	_, _, hb := c.Tuning()
	require.Equal(t, time.Second, hb)
	ch := channel(t, c)
	q := tempQueue(t, ch)

	select {
	case <-c.Context().Done():
		t.Fatalf("connection ended while idle: %v", context.Cause(c.Context()))
	case <-time.After(5 * time.Second):
	}
	require.NoError(t, ch.Err())
	require.NoError(t, ch.Confirm(ctxT(t)))
	publishConfirmed(t, ch, "", q, []byte("still alive"))
	require.Equal(t, 1, queueLen(t, ch, q))
}

// Far more bytes than Config.MaxOutgoing go through one connection: the
// bound makes publishers wait for the socket, never forever.
func TestPublishBeyondMaxOutgoing(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name(), MaxOutgoing: 256 << 10})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)
	body := make([]byte, 512<<10) // larger than the bound by itself
	var confs []*amqp.Confirmation
	for range 40 {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: body})
		require.NoError(t, err)
		confs = append(confs, conf)
	}
	for _, conf := range confs {
		require.NoError(t, conf.Wait(ctx))
	}
	n, err := ch.QueuePurge(ctx, q)
	require.NoError(t, err)
	require.Equal(t, 40, n)
}
