package tests

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

func TestConfirmWaitAndDone(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := channel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)

	// Before confirm.select, Publish returns no Confirmation.
	conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte("unconfirmed")})
	require.NoError(t, err)
	require.Nil(t, conf)

	require.NoError(t, ch.Confirm(ctx))
	var confs []*amqp.Confirmation
	for i := range 20 {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
		require.NotNil(t, conf)
		confs = append(confs, conf)
	}
	// Half by selecting on Done, half by Wait.
	for i, conf := range confs {
		if i%2 == 0 {
			select {
			case <-conf.Done():
			case <-ctx.Done():
				t.Fatal("no confirm")
			}
			require.NoError(t, conf.Err())
		} else {
			require.NoError(t, conf.Wait(ctx))
		}
		require.True(t, conf.Acked())
		require.Nil(t, conf.Returned())
		require.Equal(t, uint64(i+1), conf.DeliveryTag())
	}
	require.Equal(t, 21, queueLen(t, ch, q))
}

func TestConfirmationsChannel(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)

	outcomes := ch.Confirmations()
	sent := make(map[*amqp.Confirmation]bool)
	for i := range 50 {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
		sent[conf] = true
	}
	var lastTag uint64
	for range 50 {
		conf := waitFor(t, outcomes, testTimeout, "confirmation")
		require.True(t, sent[conf], "an outcome of a publish we made, once")
		delete(sent, conf)
		require.True(t, conf.Acked())
		require.Greater(t, conf.DeliveryTag(), lastTag, "in the order the broker settles them")
		lastTag = conf.DeliveryTag()
	}
	require.Empty(t, sent)

	// Closing the channel closes the Confirmations channel.
	require.NoError(t, ch.Close(ctx))
	for range outcomes {
		t.Fatal("no outcome expected after all were received")
	}
}

func TestMandatoryReturnPairedWithConfirm(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)
	returns := ch.Returns()

	nowhere := uniqueName(t, "amqproto.nowhere")
	body := []byte("nobody wants me")
	conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: nowhere, Mandatory: true, Body: body,
		Properties: amqp.Properties{MessageID: "m-1", Headers: amqp.Table{"k": "v"}}})
	require.NoError(t, err)
	// A routable mandatory publish after it is not returned.
	ok, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Mandatory: true, Body: []byte("routed")})
	require.NoError(t, err)

	err = conf.Wait(ctx)
	require.ErrorIs(t, err, amqp.ErrReturned)
	var rerr *amqp.ReturnError
	require.ErrorAs(t, err, &rerr)
	require.Equal(t, body, rerr.Return.Body)
	require.True(t, conf.Acked(), "a returned message is still acked: the broker handled it")
	ret := conf.Returned()
	require.NotNil(t, ret)
	require.Equal(t, body, ret.Body)
	require.Equal(t, amqp.NoRoute, ret.ReplyCode)
	require.Equal(t, "", ret.Exchange)
	require.Equal(t, nowhere, ret.RoutingKey)
	require.Equal(t, "m-1", ret.MessageID)
	require.Equal(t, "v", ret.Headers["k"])

	require.NoError(t, ok.Wait(ctx))
	require.Nil(t, ok.Returned())

	// Returns receives it as well.
	r := waitFor(t, returns, testTimeout, "return")
	require.Equal(t, body, r.Body)
	require.Equal(t, amqp.NoRoute, r.ReplyCode)
	select {
	case r := <-returns:
		t.Fatalf("unexpected second return %q", r.Body)
	default:
	}

	// Without confirm mode, Returns is the only way to see a return.
	plain := channel(t, c)
	plainReturns := plain.Returns()
	_, err = plain.Publish(ctx, amqp.Publishing{RoutingKey: nowhere, Mandatory: true, Body: []byte("plain")})
	require.NoError(t, err)
	r = waitFor(t, plainReturns, testTimeout, "return without confirms")
	require.Equal(t, "plain", string(r.Body))
	require.NoError(t, plain.Close(ctx))
	for r := range plainReturns {
		t.Fatalf("unexpected return %q", r.Body)
	}
}

func TestTenThousandConfirms(t *testing.T) {
	t.Parallel()
	const n = 10000
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)

	outcomes := ch.Confirmations()
	type result struct {
		seen map[*amqp.Confirmation]int
		dup  int
	}
	collected := make(chan result, 1)
	// Reads Confirmations until the channel is closed; exits then.
	go func() {
		res := result{seen: make(map[*amqp.Confirmation]int, n)}
		for conf := range outcomes {
			res.seen[conf]++
			if res.seen[conf] > 1 {
				res.dup++
			}
		}
		collected <- res
	}()

	confs := make([]*amqp.Confirmation, 0, n)
	body := make([]byte, 100)
	for range n {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: body})
		require.NoError(t, err)
		confs = append(confs, conf)
	}
	tags := make(map[uint64]bool, n)
	for _, conf := range confs {
		require.NoError(t, conf.Wait(ctx))
		require.True(t, conf.Acked())
		tag := conf.DeliveryTag()
		require.False(t, tags[tag], "delivery tag %d twice", tag)
		tags[tag] = true
	}
	require.Len(t, tags, n)
	require.Equal(t, n, queueLen(t, ch, q))

	// Closing the channel ends Confirmations once every outcome is out.
	require.NoError(t, ch.Close(ctx))
	var res result
	select {
	case res = <-collected:
	case <-ctx.Done():
		t.Fatal("Confirmations was not closed")
	}
	require.Zero(t, res.dup, "outcomes received more than once")
	require.Len(t, res.seen, n)
	for _, conf := range confs {
		require.Equal(t, 1, res.seen[conf])
	}
}

// When the socket fails, every outcome already queued for Confirmations is
// still delivered before it closes.
func TestConfirmationsSurviveConnectionLoss(t *testing.T) {
	t.Parallel()
	var (
		mu sync.Mutex
		nc net.Conn
	)
	cfg := amqp.Config{ConnectionName: t.Name(), Recovery: amqp.Recovery{Disable: true}, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		mu.Lock()
		nc = c
		mu.Unlock()
		return c, err
	}}
	c := dial(t, cfg)
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)
	outcomes := ch.Confirmations()
	const n = 300
	for i := range n {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
		require.NoError(t, conf.Wait(ctx))
	}
	mu.Lock()
	nc.Close()
	mu.Unlock()
	waitClosed(t, c.Context().Done(), testTimeout, "connection context")
	got := 0
	for range outcomes {
		got++
	}
	require.Equal(t, n, got)
}

// On one channel, publishes to a full reject-publish queue are nacked,
// mandatory ones no queue takes are returned, the rest acked: each
// Confirmation says which, and Confirmations and Returns report each once
// (in the order the broker settles them, not always the publishing order)
// and close with the channel.
func TestNacksReturnsAndAcksOnOneChannel(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	outcomes := ch.Confirmations()
	returns := ch.Returns()
	full, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true,
		Args: amqp.Table{"x-max-length": 2, "x-overflow": "reject-publish"}})
	require.NoError(t, err)
	open := exclusiveQueue(t, ch)
	nowhere := uniqueName(t, "nowhere")
	const n = 30
	confs := make(map[*amqp.Confirmation]string, n)
	var order []*amqp.Confirmation
	for i := range n {
		key := []string{full.Name, open, nowhere}[i%3]
		size := []int{5, 300 << 10, 1 << 20}[i%3]
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: key, Mandatory: true, Body: make([]byte, size)})
		require.NoError(t, err)
		confs[conf] = key
		order = append(order, conf)
	}
	acked, nacked, returned := map[string]int{}, 0, 0
	for _, conf := range order {
		err := conf.Wait(ctx)
		switch key := confs[conf]; {
		case err == nil:
			acked[key]++
		case errors.Is(err, amqp.ErrNacked):
			require.Equal(t, full.Name, key)
			require.False(t, conf.Acked())
			nacked++
		default:
			require.ErrorIs(t, err, amqp.ErrReturned)
			require.Equal(t, nowhere, key)
			returned++
		}
	}
	require.Equal(t, map[string]int{full.Name: 2, open: n / 3}, acked)
	require.Equal(t, n/3-2, nacked)
	require.Equal(t, n/3, returned)
	for range n {
		conf := waitFor(t, outcomes, testTimeout, "an outcome")
		_, ours := confs[conf]
		require.True(t, ours, "an outcome of a publish made, once")
		delete(confs, conf)
	}
	for range returned {
		r := waitFor(t, returns, testTimeout, "a return")
		require.Equal(t, nowhere, r.RoutingKey)
	}
	require.NoError(t, ch.Close(ctx))
	for range outcomes {
		t.Fatal("an outcome too many")
	}
	for range returns {
		t.Fatal("a return too many")
	}
}
