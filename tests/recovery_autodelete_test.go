package tests

import (
	"slices"
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

// The broker deletes auto-delete exchanges over exchange-to-exchange
// bindings as the recovery record expects (only the source of a binding
// that goes, and in cascade), so that a recovery neither revives one it
// deleted nor loses one it kept.
func TestRecoveryFollowsAutoDeletedExchangeToExchangeBindings(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name()})
	events := c.RecoveryEvents()
	ctx := ctxT(t)
	ch := channel(t, c)
	names := map[string]string{}
	declare := func(key string, autoDelete bool) string {
		name := uniqueName(t, key)
		names[key] = name
		require.NoError(t, ch.ExchangeDeclare(ctx, name, "fanout", amqp.ExchangeOptions{AutoDelete: autoDelete}))
		cleanupExchange(t, c, name)
		return name
	}
	bind := func(destination, source string) {
		require.NoError(t, ch.ExchangeBind(ctx, destination, source, "", nil))
	}
	// Unbound: the source goes, not the destination.
	bind(declare("d-unbound", true), declare("s-unbound", true))
	require.NoError(t, ch.ExchangeUnbind(ctx, names["d-unbound"], names["s-unbound"], "", nil))
	// A queue's deletion takes the exchange bound to it, and that one's source.
	bind(declare("d-cascade", true), declare("s-cascade", true))
	queue := uniqueName(t, "q")
	_, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{})
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(ctx, queue, names["d-cascade"], "", nil))
	_, err = ch.QueueDelete(ctx, queue, false, false)
	require.NoError(t, err)
	// The destination deleted: its source goes.
	bind(declare("d-dest-deleted", false), declare("s-dest-deleted", true))
	require.NoError(t, ch.ExchangeDelete(ctx, names["d-dest-deleted"], false))
	// The source deleted: an auto-delete destination stays.
	bind(declare("d-source-deleted", true), declare("s-source-deleted", false))
	require.NoError(t, ch.ExchangeDelete(ctx, names["s-source-deleted"], false))

	side := dialURL(t, brokerURL(t), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	exists := func(name string) bool {
		sch := channel(t, side)
		err := sch.ExchangeDeclarePassive(ctx, name)
		if err == nil {
			require.NoError(t, sch.Close(ctx))
			return true
		}
		require.ErrorIs(t, err, amqp.ErrNotFound)
		return false
	}
	kept := []string{"d-unbound", "d-source-deleted"}
	check := func(when string) {
		for key, name := range names {
			if key == "d-dest-deleted" || key == "s-source-deleted" {
				require.False(t, exists(name), "%s: %s deleted by the test exists", when, key)
				continue
			}
			require.Equal(t, slices.Contains(kept, key), exists(name), "%s: %s", when, key)
		}
	}
	check("before the loss")
	p.Cut()
	awaitRecoveredCleanly(t, events)
	check("after the recovery")
}

// A consumer started with an empty queue name, which the broker takes for
// the queue last declared on the channel, keeps that auto-delete queue
// through a recovery once the consumer that named it is gone, and gets
// its messages after.
func TestRecoveryOfAConsumerOfTheLastDeclaredQueue(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name()})
	events := c.RecoveryEvents()
	ctx := ctxT(t)
	ch := channel(t, c)
	queue := uniqueName(t, "q")
	_, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	cleanupQueue(t, c, queue)
	named, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
	require.NoError(t, err)
	shortcut, err := ch.Consume(ctx, "", amqp.ConsumeOptions{})
	require.NoError(t, err)
	require.NoError(t, named.Cancel(ctx))

	p.Cut()
	awaitRecoveredCleanly(t, events)
	side := dialURL(t, brokerURL(t), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	requireDeliveredAfter(t, side, queue, shortcut, "the consumer of the last declared queue was not recovered")
}

// A consumer Recovery.Filter leaves out does not cost its channel's other
// consumer its auto-delete queue: the restore registers that one once,
// on the channel it keeps (registered on a channel closed to start again,
// the broker deleted the queue with it).
func TestRecoveryFilterLeavesTheOtherConsumersQueue(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name(), Recovery: amqp.Recovery{Filter: func(e amqp.TopologyEntity) bool {
		return e.Kind != amqp.EntityConsumer || e.Name != "skipped"
	}}})
	events := c.RecoveryEvents()
	ctx := ctxT(t)
	ch := channel(t, c)
	queue := uniqueName(t, "q")
	_, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	cleanupQueue(t, c, queue)
	kept, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
	require.NoError(t, err)
	_, err = ch.Consume(ctx, queue, amqp.ConsumeOptions{Tag: "skipped"})
	require.NoError(t, err)

	p.Cut()
	awaitRecoveredCleanly(t, events)
	side := dialURL(t, brokerURL(t), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	requireDeliveredAfter(t, side, queue, kept, "the kept consumer was not recovered")
}

// A consumer whose queue was deleted while the socket was down does not
// cost a consumer of an auto-delete queue on the same channel its queue:
// that one is recovered and gets its messages.
func TestRecoveryConsumerOfADeletedQueueLeavesTheAutoDeleteOne(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name(), Recovery: amqp.Recovery{InitialDelay: 10 * time.Millisecond}})
	events := c.RecoveryEvents()
	ctx := ctxT(t)
	side := dialURL(t, brokerURL(t), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	sch := channel(t, side)
	gone := uniqueName(t, "gone")
	_, err := sch.QueueDeclare(ctx, gone, amqp.QueueOptions{}) // not in c's record
	require.NoError(t, err)
	cleanupQueue(t, side, gone)
	ch := channel(t, c)
	queue := uniqueName(t, "q")
	_, err = ch.QueueDeclare(ctx, queue, amqp.QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	cleanupQueue(t, c, queue)
	kept, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
	require.NoError(t, err)
	lost, err := ch.Consume(ctx, gone, amqp.ConsumeOptions{})
	require.NoError(t, err)

	p.Refuse(true)
	p.Cut()
	_, err = sch.QueueDelete(ctx, gone, false, false)
	require.NoError(t, err)
	p.Refuse(false)
	for ev := range events {
		require.NotEqual(t, amqp.RecoveryFailed, ev.Kind, "%v", ev.Err)
		if ev.Kind == amqp.TopologyFailed {
			require.ErrorIs(t, ev.Err, amqp.ErrNotFound)
			require.Equal(t, gone, ev.Entity.Queue)
		}
		if ev.Kind == amqp.Recovered {
			break
		}
	}
	require.ErrorIs(t, lost.Err(), amqp.ErrConsumerNotRecovered)
	requireDeliveredAfter(t, side, queue, kept, "the consumer of the auto-delete queue was not recovered")
}

// A consumer of a server-named, exclusive, auto-delete queue (a reply
// queue) comes back with the queue, under its new name: the restore's
// check that the queue is there finds it.
func TestRecoveryOfAConsumerOfAServerNamedAutoDeleteQueue(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name()})
	events := c.RecoveryEvents()
	ctx := ctxT(t)
	ch := channel(t, c)
	queue := tempQueue(t, ch)
	cons, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
	require.NoError(t, err)

	p.Cut()
	awaitRecoveredCleanly(t, events)
	renamed := c.QueueName(queue)
	require.NotEqual(t, queue, renamed)
	side := dialURL(t, brokerURL(t), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	requireDeliveredAfter(t, side, renamed, cons, "the consumer of the reply queue was not recovered")
}

// awaitRecoveredCleanly waits for the next Recovered event, failing at a
// RecoveryFailed or TopologyFailed one.
func awaitRecoveredCleanly(t *testing.T, events <-chan amqp.RecoveryEvent) {
	t.Helper()
	for ev := range events {
		require.NotEqual(t, amqp.RecoveryFailed, ev.Kind, "%v", ev.Err)
		require.NotEqual(t, amqp.TopologyFailed, ev.Kind, "%v: %v", ev.Entity, ev.Err)
		if ev.Kind == amqp.Recovered {
			return
		}
	}
}

// requireDeliveredAfter publishes a message to queue through side and
// requires cons to get it: what fails says what was not recovered.
func requireDeliveredAfter(t *testing.T, side *amqp.Conn, queue string, cons *amqp.Consumer, what string) {
	t.Helper()
	publishConfirmed(t, confirmChannel(t, side), "", queue, []byte("after"))
	select {
	case d := <-cons.Deliveries():
		require.Equal(t, "after", string(d.Body))
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: %v", what, cons.Err())
	}
}
