package tests

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// A header table larger than frame_max cannot be sent: Publish says so,
// rather than return nil for a message the connection would drop, and the
// channel stays usable.
func TestPublishWithHeadersOverFrameMaxFails(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)
	_, frameMax, _ := c.Tuning()
	_, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte("b"),
		Properties: amqp.Properties{Headers: amqp.Table{"big": strings.Repeat("x", int(frameMax))}}})
	require.ErrorContains(t, err, "exceeds frame_max")
	publishConfirmed(t, ch, "", q, []byte("ok"))
	require.Equal(t, 1, queueLen(t, ch, q))
}

// countOutcomes counts what Confirmations delivers until it closes.
func countOutcomes(ch *amqp.Channel) (got *atomic.Int64, closed <-chan struct{}) {
	got = new(atomic.Int64)
	done := make(chan struct{})
	outcomes := ch.Confirmations()
	go func() {
		defer close(done)
		for range outcomes {
			got.Add(1)
		}
	}()
	return got, done
}

// publishUntilError publishes from 8 goroutines until Publish fails;
// after calls it once all goroutines are publishing. It returns how many
// publishes returned a Confirmation.
func publishUntilError(ctx context.Context, ch *amqp.Channel, after func()) int64 {
	var sent atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				if _, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: "nowhere", Body: make([]byte, 1000)}); err != nil {
					return
				}
				if sent.Add(1) >= 2000 {
					once.Do(after)
				}
			}
		})
	}
	wg.Wait()
	return sent.Load()
}

// Every publish that returned a Confirmation shows up on Confirmations
// before it closes, also when the channel ends under busy publishers.
func TestConfirmationsReportEveryPublishWhenTheChannelEnds(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	for range 3 {
		ch := confirmChannel(t, c)
		ctx := ctxT(t)
		got, closed := countOutcomes(ch)
		sent := publishUntilError(ctx, ch, func() {
			// A publish to a missing exchange: the broker closes the channel.
			_, _ = ch.Publish(ctx, amqp.Publishing{Exchange: uniqueName(t, "missing"), Body: []byte("x")})
		})
		waitClosed(t, closed, 10*time.Second, "Confirmations")
		require.Equal(t, sent+1, got.Load(), "Confirmations missed outcomes")
	}
}

// The same when the connection is lost; Close then says it was.
func TestConfirmationsReportEveryPublishWhenTheConnectionIsLost(t *testing.T) {
	t.Parallel()
	for range 3 {
		var nc atomic.Pointer[net.Conn]
		c := dial(t, amqp.Config{ConnectionName: t.Name(), Recovery: amqp.Recovery{Disable: true}, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				nc.Store(&conn)
			}
			return conn, err
		}})
		ch := confirmChannel(t, c)
		ctx := ctxT(t)
		got, closed := countOutcomes(ch)
		sent := publishUntilError(ctx, ch, func() { (*nc.Load()).Close() })
		waitClosed(t, closed, 10*time.Second, "Confirmations")
		require.Equal(t, sent, got.Load(), "Confirmations missed outcomes")
		require.ErrorIs(t, c.Close(ctx), amqp.ErrConnectionClosed)
	}
}

// Ack, Nack and Reject on the zero Delivery of an empty Get fail rather
// than panic.
func TestZeroDeliveryCannotBeAcked(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := channel(t, c)
	ctx := ctxT(t)
	d, ok, err := ch.Get(ctx, exclusiveQueue(t, ch), false)
	require.NoError(t, err)
	require.False(t, ok)
	require.ErrorIs(t, d.Ack(ctx, false), amqp.ErrNoDelivery)
	require.ErrorIs(t, d.Nack(ctx, false, true), amqp.ErrNoDelivery)
	require.ErrorIs(t, d.Reject(ctx, true), amqp.ErrNoDelivery)
}
