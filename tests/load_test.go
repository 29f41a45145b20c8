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

// A 16 MiB message crosses a connection with the smallest frame_max every
// RabbitMQ version accepts (8192: 4.1 refuses the spec's 4096), in about
// 2,050 body frames each way.
func TestLargeMessageSmallFrames(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name(), FrameMax: 8192})
	_, frameMax, _ := c.Tuning()
	require.Equal(t, uint32(8192), frameMax)
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

// Publishers on four channels of one connection interleave small messages,
// which the connection coalesces into shared writes, with large ones that
// go out from their own buffers, while a consumer on another connection
// checks that every channel's messages arrive complete and in order.
func TestMixedSizesKeepOrderAndContent(t *testing.T) {
	t.Parallel()
	const publishers, perPublisher, window = 4, 600, 100
	sizes := []int{0, 16, 1000, 17 << 10, 3000, 70 << 10, 131072 + 1}
	ctx := ctxT(t)
	pc := dial(t, amqp.Config{ConnectionName: t.Name() + "/publish"})
	q := uniqueName(t, "mixed")
	_, err := channel(t, pc).QueueDeclare(ctx, q, amqp.QueueOptions{})
	require.NoError(t, err)
	cleanupQueue(t, pc, q)

	// body is message i of publisher p: its size from sizes, its bytes from
	// a hash of (p, i), so that a misplaced byte anywhere shows.
	body := func(p, i int) []byte {
		b := make([]byte, sizes[(p+i)%len(sizes)])
		seed := sha256.Sum256(fmt.Appendf(nil, "%d/%d", p, i))
		for j := range b {
			b[j] = seed[j%len(seed)] ^ byte(j/len(seed))
		}
		return b
	}
	cc := dial(t, amqp.Config{ConnectionName: t.Name() + "/consume"})
	cch := channel(t, cc)
	require.NoError(t, cch.Qos(ctx, 200, false))
	cons, err := cch.Consume(ctx, q, amqp.ConsumeOptions{})
	require.NoError(t, err)
	errs := make(chan error, publishers)
	for p := range publishers {
		go func() { errs <- publishInWindow(ctx, pc, q, p, perPublisher, window, body) }()
	}
	next := make([]int, publishers)
	for got := 0; got < publishers*perPublisher; got++ {
		d := waitFor(t, cons.Deliveries(), time.Minute, "a delivery")
		p, ok := d.Headers["publisher"].(int32)
		require.True(t, ok, "header publisher: %#v", d.Headers["publisher"])
		i := next[p]
		require.Equal(t, fmt.Sprintf("%d/%d", p, i), d.MessageID, "out of order")
		require.True(t, bytes.Equal(body(int(p), i), d.Body), "message %d/%d: body differs", p, i)
		next[p]++
		if got%50 == 49 {
			require.NoError(t, d.Ack(ctx, true))
		}
	}
	for range publishers {
		require.NoError(t, <-errs)
	}
}

// publishInWindow publishes n messages of publisher p on a channel of its
// own, with at most window unconfirmed.
func publishInWindow(ctx context.Context, c *amqp.Conn, q string, p, n, window int, body func(p, i int) []byte) error {
	ch, err := c.Channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close(ctx)
	if err := ch.Confirm(ctx); err != nil {
		return err
	}
	var pending []*amqp.Confirmation
	for i := range n {
		if len(pending) == window {
			if err := pending[0].Wait(ctx); err != nil {
				return err
			}
			pending = pending[1:]
		}
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: body(p, i), Properties: amqp.Properties{
			MessageID: fmt.Sprintf("%d/%d", p, i), Headers: amqp.Table{"publisher": int32(p)}}})
		if err != nil {
			return err
		}
		pending = append(pending, conf)
	}
	for _, conf := range pending {
		if err := conf.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// After idling past heartbeat ticks, which let go of the buffers a burst
// grew, a connection receives and sends frames larger than any buffer it
// kept (3 MiB bodies in 128 KiB frames) whole, and stays up.
func TestLargeFramesAfterIdling(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name(), Heartbeat: time.Second})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := exclusiveQueue(t, ch)
	cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{AutoAck: true})
	require.NoError(t, err)
	publishConfirmed(t, ch, "", q, make([]byte, 4<<20)) // a burst grows every buffer
	waitFor(t, cons.Deliveries(), testTimeout, "the burst")
	och := confirmChannel(t, dial(t, amqp.Config{ConnectionName: t.Name() + "/other"}))
	buf := make([]byte, 3<<20)
	for round := range 2 {
		select {
		case <-c.Context().Done():
			t.Fatalf("connection ended while idle: %v", context.Cause(c.Context()))
		case <-time.After(2500 * time.Millisecond): // idle: heartbeat ticks trim
		}
		body := largeBody(buf, fmt.Sprint(round), len(buf))
		publishConfirmed(t, och, "", q, body)
		require.Equal(t, body, waitFor(t, cons.Deliveries(), testTimeout, "a delivery after idling").Body)
		publishConfirmed(t, ch, "", q, body)
		require.Equal(t, body, waitFor(t, cons.Deliveries(), testTimeout, "its own publish after idling").Body)
	}
}
