package tests

import (
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// A named exclusive queue comes back after a partition, although the
// broker keeps the lost connection, which holds the queue, until it misses
// that connection's heartbeats: the recovery, by another route, declares
// the queue again until the broker lets go of it.
func TestRecoveryOfANamedExclusiveQueueAfterAPartition(t *testing.T) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name(), Heartbeat: time.Second, ConnectionTimeout: 5 * time.Second,
		Recovery: amqp.Recovery{InitialDelay: 10 * time.Millisecond}})
	events := c.RecoveryEvents()
	ctx := ctxT(t)
	ch := channel(t, c)
	queue := uniqueName(t, "excl")
	_, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{Exclusive: true})
	require.NoError(t, err)
	cons, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
	require.NoError(t, err)

	p.Partition()
	for ev := range events {
		require.NotEqual(t, amqp.TopologyFailed, ev.Kind, "%v: %v", ev.Entity, ev.Err)
		require.NotEqual(t, amqp.RecoveryFailed, ev.Kind, "%v", ev.Err)
		if ev.Kind == amqp.Recovered {
			break
		}
	}
	side := dialURL(t, brokerURL(t), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	publishConfirmed(t, confirmChannel(t, side), "", queue, []byte("after"))
	select {
	case d := <-cons.Deliveries():
		require.Equal(t, "after", string(d.Body))
	case <-time.After(10 * time.Second):
		t.Fatalf("the consumer of the exclusive queue was not recovered: %v", cons.Err())
	}
}
