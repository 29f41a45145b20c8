package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// requireClosedNotCancelled checks that err is the connection's end, as
// the package documents it for every call waiting on an ended connection,
// and not the error of the context Close gave up on: a caller whose own
// context is alive must not read its error as its own.
func requireClosedNotCancelled(t *testing.T, err error, what string) {
	t.Helper()
	require.ErrorIs(t, err, amqp.ErrConnectionClosed, what)
	require.False(t, errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded),
		"%s: %v is the context error of Close, not of this call", what, err)
}

// A Close that does not wait for the broker (its context already done)
// still ends channels, consumers and confirmations with the connection's
// end, not with Close's context error.
func TestCloseWithDoneContextEndsChannelsAsClosed(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ctx := ctxT(t)
	ch := confirmChannel(t, c)
	q := tempQueue(t, ch)
	cons, err := ch.Consume(ctx, q, amqp.ConsumeOptions{})
	require.NoError(t, err)

	done, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Close(done), context.Canceled, "Close itself reports its context")
	require.ErrorIs(t, c.Err(), amqp.ErrConnectionClosed)

	requireClosedNotCancelled(t, ch.Err(), "Channel.Err")
	require.ErrorIs(t, ch.Err(), amqp.ErrChannelClosed)
	requireClosedNotCancelled(t, context.Cause(ch.Context()), "Channel.Context's cause")
	waitClosed(t, cons.Done(), testTimeout, "consumer")
	requireClosedNotCancelled(t, cons.Err(), "Consumer.Err")
	_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: q})
	requireClosedNotCancelled(t, err, "Publish after Close")
	_, err = ch.QueueDeclarePassive(ctx, q)
	requireClosedNotCancelled(t, err, "a declare after Close")
}

// A Close whose context ends while publishers wait for the socket (the
// broker reads nothing) ends those publishers with the connection's end,
// not with Close's context error.
func TestCloseGivingUpEndsWaitingPublishersAsClosed(t *testing.T) {
	t.Parallel()
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name(), Dial: smallSendBuffer, MaxOutgoing: 256 << 10,
		Recovery: amqp.Recovery{Disable: true}})
	ch := confirmChannel(t, c)
	q := tempQueue(t, ch)
	p.Blackhole(true)
	const publishers = 6
	type result struct {
		conf *amqp.Confirmation
		err  error
	}
	returned := make(chan result, publishers)
	for range publishers {
		go func() {
			// Small bodies are copied: a publisher waits only for room.
			var r result
			for r.err == nil {
				r.conf, r.err = ch.Publish(context.Background(), amqp.Publishing{RoutingKey: q, Body: make([]byte, 64<<10)})
			}
			returned <- r
		}()
	}
	// The socket and MaxOutgoing fill up; the publishers then wait.
	deadline := time.Now().Add(testTimeout)
	for c.Stats().Published < 4 {
		require.True(t, time.Now().Before(deadline), "nothing was handed to the socket")
		time.Sleep(time.Millisecond)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Close(closeCtx), context.DeadlineExceeded)
	for range publishers {
		r := waitFor(t, returned, testTimeout, "a publisher")
		requireClosedNotCancelled(t, r.err, "a waiting Publish")
	}
	requireClosedNotCancelled(t, ch.Err(), "Channel.Err")
}

// An Ack racing Close (with recovery on, as by default) reports the
// connection's end, not a stale delivery of a recovery that will not come.
func TestAckDuringCloseReportsTheEnd(t *testing.T) {
	t.Parallel()
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := exclusiveQueue(t, ch)
	publishConfirmed(t, ch, "", q, []byte("x"))
	d, ok, err := ch.Get(ctx, q, false)
	require.NoError(t, err)
	require.True(t, ok)

	p.Blackhole(true) // the close handshake cannot complete: Close waits
	closeCtx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- c.Close(closeCtx) }()
	// Acks go into the silent link until the closing connection refuses
	// them.
	deadline := time.Now().Add(testTimeout)
	for err == nil {
		require.True(t, time.Now().Before(deadline), "Ack still accepted while the connection closes")
		err = d.Ack(ctx, false)
	}
	require.ErrorIs(t, err, amqp.ErrConnectionClosed, "%v", err)
	require.ErrorIs(t, err, amqp.ErrChannelClosed, "%v", err)
	require.False(t, errors.Is(err, amqp.ErrStaleDelivery), "%v", err)
	cancel()
	<-closed
}

// Calls racing a Close that waits for a silent broker fail at once with
// the connection's end (with recovery on, as by default): they do not
// wait for the Close, as they would for a recovery, which no Close
// starts.
func TestCallsDuringCloseFailAtOnce(t *testing.T) {
	t.Parallel()
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := exclusiveQueue(t, ch)

	p.Blackhole(true) // the close handshake cannot complete: Close waits
	closeCtx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- c.Close(closeCtx) }()
	// Publishes go into the silent link until the closing connection
	// refuses them.
	var err error
	deadline := time.Now().Add(testTimeout)
	for err == nil {
		require.True(t, time.Now().Before(deadline), "Publish still accepted while the connection closes")
		_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte("x")})
	}
	requireClosedNotCancelled(t, err, "Publish during Close")
	require.True(t, c.IsClosed(), "IsClosed agrees with the error a call returned")
	requireClosedNotCancelled(t, c.Err(), "Conn.Err during Close")
	requireClosedNotCancelled(t, ch.Err(), "Channel.Err during Close")
	_, err = c.Channel(ctx)
	requireClosedNotCancelled(t, err, "Channel during Close")
	_, err = ch.Consume(ctx, q, amqp.ConsumeOptions{})
	requireClosedNotCancelled(t, err, "Consume during Close")
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the calls failed: they waited for it", err)
	default:
	}
	cancel()
	<-closed
}
