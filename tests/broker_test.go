package tests

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// TestBrokerWide changes the whole broker (a memory alarm, closing every
// connection), so it does not call t.Parallel: Go runs it before the
// parallel tests start, and its subtests one after the other.
func TestBrokerWide(t *testing.T) {
	env(t, "AMQP_RABBITMQCTL")
	t.Run("MemoryAlarm", testMemoryAlarm)
	t.Run("LargePublishCaughtByAlarm", testLargePublishCaughtByAlarm)
	t.Run("CloseAllConnections", testCloseAllConnections)
	t.Run("RecoveryAfterForcedClose", testRecoveryAfterForcedClose)
	t.Run("RecoveryAfterBrokerRestart", testRecoveryAfterBrokerRestart)
}

func testMemoryAlarm(t *testing.T) {
	c := dial(t, amqp.Config{ConnectionName: t.Name(), Heartbeat: time.Second})
	blocked := c.Blocked()
	require.Equal(t, amqp.Blocking{}, waitFor(t, blocked, testTimeout, "the current state"), "the first value is the current state")
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)

	// Published before the alarm, confirms not yet awaited.
	var before []*amqp.Confirmation
	for range 500 {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: make([]byte, 512)})
		require.NoError(t, err)
		before = append(before, conf)
	}
	// A reply on the same channel: the broker has read every publish
	// before it, so the alarm cannot hold any of them back (their confirms
	// may still be on their way).
	queueLen(t, ch, q)

	restored := false
	t.Cleanup(func() {
		if !restored {
			rabbitmqctl(t, "set_vm_memory_high_watermark", "0.4")
		}
	})
	rabbitmqctl(t, "set_vm_memory_high_watermark", "0.0000001")
	// A rabbitmqctl call boots an Erlang VM: on a loaded 2-core machine it
	// took up to 21 s, so each step after one gets a context of its own.
	ctx = ctxT(t)
	// RabbitMQ 3.10 blocks a connection, and says so, when it publishes
	// during the alarm: the broker reads this publish's method frame, then
	// stops reading the socket until the alarm clears. Its confirm comes
	// after that.
	trigger, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte("trigger")})
	require.NoError(t, err)
	b := waitFor(t, blocked, testTimeout, "connection.blocked")
	require.True(t, b.Blocked)
	require.NotEmpty(t, b.Reason)
	t.Logf("blocked: %q", b.Reason)
	isBlocked, reason := c.IsBlocked()
	require.True(t, isBlocked)
	require.Equal(t, b.Reason, reason)

	// The confirms of what the broker took before keep arriving.
	for _, conf := range before {
		require.NoError(t, conf.Wait(ctx))
	}

	// Publish waits while blocked, until its context ends.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = ch.Publish(short, amqp.Publishing{RoutingKey: q, Body: []byte("blocked")})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// A waiting publisher goes through once the alarm clears. It waits
	// as long as the alarm lasts, which the rabbitmqctl call below ends:
	// the test bounds the wait for it from then on.
	wctx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	waiting := make(chan error, 1)
	go func() { // owned by the test: ends with wctx at the latest
		conf, err := ch.Publish(wctx, amqp.Publishing{RoutingKey: q, Body: []byte("waited")})
		if err == nil {
			err = conf.Wait(wctx)
		}
		waiting <- err
	}()

	// Heartbeats flow both ways while blocked: three intervals later the
	// connection is still up.
	select {
	case <-c.Context().Done():
		t.Fatalf("connection ended while blocked: %v", context.Cause(c.Context()))
	case <-time.After(3 * time.Second):
	}
	select {
	case err := <-waiting:
		t.Fatalf("publish went through while blocked: %v", err)
	default:
	}
	require.False(t, trigger.Acked(), "the broker has not read the trigger's body yet")

	rabbitmqctl(t, "set_vm_memory_high_watermark", "0.4")
	restored = true
	ctx = ctxT(t)
	b = waitFor(t, blocked, testTimeout, "connection.unblocked")
	require.False(t, b.Blocked)
	isBlocked, _ = c.IsBlocked()
	require.False(t, isBlocked)
	require.NoError(t, waitFor(t, waiting, testTimeout, "the waiting publish"))
	require.NoError(t, trigger.Wait(ctx))

	publishConfirmed(t, ch, "", q, []byte("after"))
	require.Equal(t, 500+3, queueLen(t, ch, q))
	require.NoError(t, c.Context().Err())
}

// A large publish caught by the alarm with its body partly written (the
// broker stops reading the socket): its publisher gives up, Publish copies
// the rest and returns nil, the caller reuses its buffer, and the message
// arrives whole once the alarm clears. A publish after it waits for the
// alarm and gives up unsent.
func testLargePublishCaughtByAlarm(t *testing.T) {
	c := dial(t, amqp.Config{ConnectionName: t.Name(), Heartbeat: time.Second})
	blocked := c.Blocked()
	require.False(t, waitFor(t, blocked, testTimeout, "the current state").Blocked)
	ch := confirmChannel(t, c)
	q := tempQueue(t, ch)
	restored := false
	t.Cleanup(func() {
		if !restored {
			rabbitmqctl(t, "set_vm_memory_high_watermark", "0.4")
		}
	})
	rabbitmqctl(t, "set_vm_memory_high_watermark", "0.0000001")
	ctx := ctxT(t)              // from here: see testMemoryAlarm
	buf := make([]byte, 16<<20) // far more than the socket buffers take
	body := largeBody(buf, "big", len(buf))
	want := bytes.Clone(body)
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	conf, err := ch.Publish(pctx, amqp.Publishing{RoutingKey: q, Body: body})
	cancel()
	require.NoError(t, err, "handed over, then copied when its context ended")
	clear(buf)
	require.True(t, waitFor(t, blocked, testTimeout, "connection.blocked").Blocked)
	pctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = ch.Publish(pctx, amqp.Publishing{RoutingKey: q, Body: buf})
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	rabbitmqctl(t, "set_vm_memory_high_watermark", "0.4")
	restored = true
	ctx = ctxT(t)
	require.NoError(t, conf.Wait(ctx))
	d, ok, err := ch.Get(ctx, q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, bytes.Equal(want, d.Body), "the body arrived changed")
	_, ok, err = ch.Get(ctx, q, true)
	require.NoError(t, err)
	require.False(t, ok, "the publish that gave up was not sent")
}

func testCloseAllConnections(t *testing.T) {
	// Without recovery, a forced close ends the connection for good.
	c := dial(t, amqp.Config{ConnectionName: t.Name(), Recovery: amqp.Recovery{Disable: true}})
	blocked := c.Blocked()
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := exclusiveQueue(t, ch)
	cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{})
	require.NoError(t, err)

	rabbitmqctl(t, "close_all_connections", "amqproto test: closing everything")
	ctx = ctxT(t) // see testMemoryAlarm
	waitClosed(t, c.Context().Done(), testTimeout, "connection context")
	cause := context.Cause(c.Context())
	require.ErrorIs(t, cause, amqp.ErrConnectionForced)
	require.ErrorIs(t, cause, amqp.ErrConnectionClosed)
	var aerr *amqp.Error
	require.ErrorAs(t, cause, &aerr)
	require.True(t, aerr.Server)
	require.Contains(t, aerr.Reason, "closing everything")
	require.True(t, c.IsClosed())

	// Everything on it ends with the same cause.
	waitClosed(t, ch.Context().Done(), testTimeout, "channel context")
	require.ErrorIs(t, context.Cause(ch.Context()), amqp.ErrConnectionForced)
	waitClosed(t, cons.Done(), testTimeout, "consumer")
	require.ErrorIs(t, cons.Err(), amqp.ErrConnectionForced)
	for b := range blocked { // at most the first value: the current state
		require.False(t, b.Blocked, "no connection.blocked expected")
	}
	_, err = ch.QueueDeclarePassive(ctx, q)
	require.ErrorIs(t, err, amqp.ErrConnectionForced)
	_, err = c.Channel(ctx)
	require.ErrorIs(t, err, amqp.ErrConnectionForced)
	require.ErrorIs(t, c.Close(ctx), amqp.ErrConnectionForced)
}
