package tests

import (
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// An auto-delete queue the broker deleted with its last consumer, and the
// auto-delete exchange it deleted with its last binding, stay deleted
// across a recovery: declared again, nothing would ever delete them.
func TestRecoveryDoesNotRevivePassedAutoDeletes(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name()})
	events := c.RecoveryEvents()
	ctx := ctxT(t)
	ch := channel(t, c)
	exchange := uniqueName(t, "x")
	require.NoError(t, ch.ExchangeDeclare(ctx, exchange, "fanout", amqp.ExchangeOptions{AutoDelete: true}))
	cleanupExchange(t, c, exchange)
	gone := uniqueName(t, "gone")
	_, err := ch.QueueDeclare(ctx, gone, amqp.QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	cleanupQueue(t, c, gone)
	require.NoError(t, ch.QueueBind(ctx, gone, exchange, "", nil))
	kept := uniqueName(t, "kept")
	_, err = ch.QueueDeclare(ctx, kept, amqp.QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	cleanupQueue(t, c, kept)

	cons, err := ch.Consume(ctx, gone, amqp.ConsumeOptions{})
	require.NoError(t, err)
	keeper, err := ch.Consume(ctx, kept, amqp.ConsumeOptions{})
	require.NoError(t, err)
	require.NoError(t, cons.Cancel(ctx))

	// The broker's side, seen from another connection.
	side := dialURL(t, brokerURL(t), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	exists := func(declare func(*amqp.Channel) error) bool {
		sch := channel(t, side)
		err := declare(sch)
		if err == nil {
			return true
		}
		require.ErrorIs(t, err, amqp.ErrNotFound)
		return false
	}
	queueExists := func(name string) bool {
		return exists(func(sch *amqp.Channel) error {
			_, err := sch.QueueDeclarePassive(ctx, name)
			return err
		})
	}
	exchangeExists := func(name string) bool {
		return exists(func(sch *amqp.Channel) error {
			return sch.ExchangeDeclarePassive(ctx, name)
		})
	}
	require.False(t, queueExists(gone), "the broker deletes an auto-delete queue with its last consumer")
	require.False(t, exchangeExists(exchange), "and an auto-delete exchange with its last binding")

	p.Cut()
	for ev := range events {
		require.NotEqual(t, amqp.RecoveryFailed, ev.Kind, "%v", ev.Err)
		if ev.Kind == amqp.Recovered {
			break
		}
	}
	require.False(t, queueExists(gone), "the recovery declared the deleted queue again")
	require.False(t, exchangeExists(exchange), "the recovery declared the deleted exchange again")
	require.True(t, queueExists(kept))

	// The queue that kept its consumer is back with it.
	publishConfirmed(t, confirmChannel(t, side), "", kept, []byte("after"))
	select {
	case d := <-keeper.Deliveries():
		require.Equal(t, "after", string(d.Body))
	case <-time.After(10 * time.Second):
		t.Fatal("the kept queue's consumer was not recovered")
	}
}
