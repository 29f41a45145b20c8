package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	const secret = "not-the-password-5c1e7"
	_, err := amqp.Dial(ctxT(t), userURL(t, "guest", secret))
	var derr *amqp.DialError
	require.ErrorAs(t, err, &derr, "a refusal in the handshake is a failure to dial")
	require.ErrorIs(t, err, amqp.ErrAccessRefused)
	require.ErrorIs(t, err, amqp.ErrConnectionClosed)
	var aerr *amqp.Error
	require.ErrorAs(t, err, &aerr)
	require.Equal(t, amqp.AccessRefused, aerr.Code)
	require.True(t, aerr.Server)
	require.NotContains(t, err.Error(), secret)
}

func TestUnknownVhost(t *testing.T) {
	t.Parallel()
	_, err := amqp.Dial(ctxT(t), vhostURL(t, uniqueName(t, "amqproto.no-such-vhost")))
	require.ErrorIs(t, err, amqp.ErrNotAllowed)
	require.ErrorIs(t, err, amqp.ErrConnectionClosed)

	// Config.Vhost overrides the URI's.
	_, err = amqp.DialConfig(ctxT(t), brokerURL(t), amqp.Config{Vhost: "amqproto-no-such-vhost"})
	require.ErrorIs(t, err, amqp.ErrNotAllowed)
}

func TestUserWithoutPermissions(t *testing.T) {
	t.Parallel()
	_, err := amqp.Dial(ctxT(t), env(t, "AMQP_NOACCESS_URL"))
	var derr *amqp.DialError
	require.ErrorAs(t, err, &derr)
	require.ErrorIs(t, err, amqp.ErrNotAllowed)
	require.NotContains(t, err.Error(), "noaccess@")
}

func TestPermissionErrorOnChannel(t *testing.T) {
	t.Parallel()
	c := dialURL(t, env(t, "AMQP_LIMITED_URL"), amqp.Config{ConnectionName: t.Name()})
	ctx := ctxT(t)
	denied := channel(t, c)
	allowed := channel(t, c)

	_, err := denied.QueueDeclare(ctx, "forbidden.q", amqp.QueueOptions{AutoDelete: true})
	require.ErrorIs(t, err, amqp.ErrAccessRefused)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
	require.NotErrorIs(t, err, amqp.ErrConnectionClosed)
	waitClosed(t, denied.Context().Done(), testTimeout, "denied channel")
	require.ErrorIs(t, context.Cause(denied.Context()), amqp.ErrAccessRefused)
	_, err = denied.QueueDeclare(ctx, uniqueName(t, "limited"), amqp.QueueOptions{Exclusive: true})
	require.ErrorIs(t, err, amqp.ErrChannelClosed)

	// The connection and its other channel carry on.
	require.NoError(t, c.Context().Err())
	name := uniqueName(t, "limited")
	q, err := allowed.QueueDeclare(ctx, name, amqp.QueueOptions{Exclusive: true})
	require.NoError(t, err)
	require.Equal(t, name, q.Name)
	_, ok, err := allowed.Get(ctx, name, true)
	require.NoError(t, err)
	require.False(t, ok)
	// A new channel works too.
	fresh := channel(t, c)
	_, err = fresh.QueueDeclarePassive(ctx, name)
	require.NoError(t, err)
}

func TestPassiveDeclareMissingQueue(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := channel(t, c)
	ctx := ctxT(t)

	_, err := ch.QueueDeclarePassive(ctx, uniqueName(t, "amqproto.missing"))
	require.ErrorIs(t, err, amqp.ErrNotFound)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
	var aerr *amqp.Error
	require.ErrorAs(t, err, &aerr)
	require.Equal(t, amqp.NotFound, aerr.Code)
	require.False(t, aerr.Connection)
	// The channel is seen as ended as soon as the call returns: nothing
	// more is sent on it.
	require.ErrorIs(t, ch.Err(), amqp.ErrNotFound)
	_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: "x", Body: []byte("lost?")})
	require.ErrorIs(t, err, amqp.ErrChannelClosed)

	// The connection is fine.
	require.NoError(t, c.Context().Err())
	tempQueue(t, channel(t, c))
}

func TestRedeclareWithOtherArguments(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ctx := ctxT(t)
	first := channel(t, c)
	bystander := confirmChannel(t, c)
	bq := tempQueue(t, bystander)

	name := uniqueName(t, "amqproto.redeclare")
	cleanupQueue(t, c, name)
	_, err := first.QueueDeclare(ctx, name, amqp.QueueOptions{AutoDelete: true, Args: amqp.Table{"x-max-length": int32(10)}})
	require.NoError(t, err)

	second := channel(t, c)
	_, err = second.QueueDeclare(ctx, name, amqp.QueueOptions{AutoDelete: true, Args: amqp.Table{"x-max-length": int32(20)}})
	require.ErrorIs(t, err, amqp.ErrPreconditionFailed)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
	waitClosed(t, second.Context().Done(), testTimeout, "channel")

	// Exchanges too.
	ex := uniqueName(t, "amqproto.redeclare")
	cleanupExchange(t, c, ex)
	require.NoError(t, first.ExchangeDeclare(ctx, ex, "direct", amqp.ExchangeOptions{AutoDelete: true}))
	third := channel(t, c)
	err = third.ExchangeDeclare(ctx, ex, "fanout", amqp.ExchangeOptions{AutoDelete: true})
	require.ErrorIs(t, err, amqp.ErrPreconditionFailed)

	// The other channels keep working.
	require.NoError(t, first.Err())
	_, err = first.QueueDeclarePassive(ctx, name)
	require.NoError(t, err)
	publishConfirmed(t, bystander, "", bq, []byte("still here"))
	require.Equal(t, 1, queueLen(t, bystander, bq))
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ch.QueueDeclare(cancelled, "", amqp.QueueOptions{Exclusive: true})
	require.ErrorIs(t, err, context.Canceled)
	_, err = ch.Publish(cancelled, amqp.Publishing{RoutingKey: "x"})
	require.ErrorIs(t, err, context.Canceled)
	_, err = c.Channel(cancelled)
	require.ErrorIs(t, err, context.Canceled)

	// The context's cause comes through.
	withCause, cancelCause := context.WithCancelCause(context.Background())
	myErr := errors.New("my cause")
	cancelCause(myErr)
	_, err = ch.QueueDeclare(withCause, "", amqp.QueueOptions{Exclusive: true})
	require.ErrorIs(t, err, myErr)

	// The channel is still usable, and the replies stay matched.
	require.NoError(t, ch.Err())
	for range 3 {
		q := tempQueue(t, ch)
		publishConfirmed(t, ch, "", q, []byte("ok"))
		require.Equal(t, 1, queueLen(t, ch, q))
	}

	// A deadline that expires while calls are queued: some may fail with
	// the deadline, the rest succeed, and the channel stays consistent.
	short, cancelShort := context.WithTimeout(ctx, 0)
	defer cancelShort()
	for range 20 {
		if _, err := ch.QueueDeclare(short, "", amqp.QueueOptions{Exclusive: true}); err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
	}
	q := tempQueue(t, ch)
	require.Equal(t, 0, queueLen(t, ch, q))
}

// A publish the broker refuses closes the channel asynchronously; its
// confirmation, and every later one, fails with the channel's error.
func TestPublishRefusedFailsConfirmation(t *testing.T) {
	t.Parallel()
	c := dialURL(t, env(t, "AMQP_LIMITED_URL"), amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	outcomes := ch.Confirmations()

	// The limited user may not write to the default exchange.
	conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: "limited.whatever", Body: []byte("no")})
	require.NoError(t, err, "refused asynchronously")
	err = conf.Wait(ctx)
	require.ErrorIs(t, err, amqp.ErrAccessRefused)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
	require.False(t, conf.Acked())
	require.ErrorIs(t, ch.Err(), amqp.ErrAccessRefused, "ended as soon as the outcome is known")
	_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: "limited.whatever"})
	require.ErrorIs(t, err, amqp.ErrChannelClosed)

	// Its outcome was delivered once, then Confirmations closed.
	n := 0
	for o := range outcomes {
		require.Same(t, conf, o)
		n++
	}
	require.Equal(t, 1, n)
	require.NoError(t, c.Context().Err())

	// Publishing to a missing exchange: 404, the same way.
	c2 := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch2 := confirmChannel(t, c2)
	var confs []*amqp.Confirmation
	for range 5 {
		conf, err := ch2.Publish(ctx, amqp.Publishing{Exchange: uniqueName(t, "amqproto.missing"), Body: []byte("x")})
		if err != nil {
			require.ErrorIs(t, err, amqp.ErrNotFound) // the channel ended already
			continue
		}
		confs = append(confs, conf)
	}
	require.NotEmpty(t, confs)
	for _, conf := range confs {
		err := conf.Wait(ctx)
		require.ErrorIs(t, err, amqp.ErrNotFound)
		require.ErrorIs(t, err, amqp.ErrChannelClosed)
	}
}

func TestExclusiveQueueOfAnotherConnection(t *testing.T) {
	t.Parallel()
	owner := dial(t, amqp.Config{ConnectionName: t.Name()})
	q := exclusiveQueue(t, channel(t, owner))

	other := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := channel(t, other)
	_, err := ch.Consume(ctxT(t), q, amqp.ConsumeOptions{})
	require.ErrorIs(t, err, amqp.ErrResourceLocked)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
	tempQueue(t, channel(t, other))
}

// Opening more channels than channel_max allows fails with
// ErrNoFreeChannel, and leaves the connection usable.
func TestNoFreeChannel(t *testing.T) {
	t.Parallel()
	c := dialURL(t, userURL(t, "guest", "guest")+"?channel_max=2", amqp.Config{ConnectionName: t.Name()})
	ctx := ctxT(t)
	first := channel(t, c)
	channel(t, c)
	_, err := c.Channel(ctx)
	require.ErrorIs(t, err, amqp.ErrNoFreeChannel)
	require.NotErrorIs(t, err, amqp.ErrConnectionClosed)

	require.NoError(t, first.Close(ctx))
	channel(t, c)
}

// A header value with no AMQP field type is a *TableError naming the key
// and the Go type, found before anything is sent; a uint64 that fits in an
// int64 is sent as one.
func TestUnsupportedHeaderValue(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)

	for _, bad := range []any{uint64(1) << 63, struct{ A int }{1}} {
		_, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q,
			Properties: amqp.Properties{Headers: amqp.Table{"x-outer": amqp.Table{"x-bad": bad}}}})
		var te *amqp.TableError
		require.ErrorAs(t, err, &te)
		require.Equal(t, "x-outer.x-bad", te.Key)
		require.Equal(t, fmt.Sprintf("%T", bad), te.Type)
		var ae *amqp.Error
		require.False(t, errors.As(err, &ae), "not a reply code: the broker saw nothing")
	}
	require.NoError(t, ch.Err(), "the channel is still open")

	conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q,
		Properties: amqp.Properties{Headers: amqp.Table{"count": uint64(7), "n": uint(8)}}})
	require.NoError(t, err)
	require.NoError(t, conf.Wait(ctx))
	d, ok, err := ch.Get(ctx, q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, amqp.Table{"count": int64(7), "n": int64(8)}, d.Headers)
}
