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
	requireDeliveredAfter(t, side, queue, cons, "the consumer of the exclusive queue was not recovered")
}

// A named exclusive queue that another connection took while the socket
// was down stays locked: the recovery reports it and goes on, within the
// wait it gives a lost connection to let go, although that wait is longer
// than the time an attempt has to restore (here as with the defaults: 2
// heartbeats and 5 s, against the connection timeout).
func TestRecoveryGoesOnWhenAnotherConnectionHoldsTheExclusiveQueue(t *testing.T) {
	t.Run("attempts shorter than the wait", func(t *testing.T) {
		recoveryPastAnExclusiveQueueHeldForGood(t, amqp.Recovery{InitialDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond})
	})
	// The wait leaves half of MaxDuration to the rest of the recovery,
	// which would otherwise give up.
	t.Run("MaxDuration shorter than the wait", func(t *testing.T) {
		recoveryPastAnExclusiveQueueHeldForGood(t, amqp.Recovery{InitialDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond,
			MaxDuration: 4 * time.Second})
	})
}

func recoveryPastAnExclusiveQueueHeldForGood(t *testing.T, policy amqp.Recovery) {
	p, u := proxied(t)
	c := dialURL(t, u, amqp.Config{ConnectionName: t.Name(), Heartbeat: time.Second, ConnectionTimeout: 2 * time.Second,
		Recovery: policy})
	events := c.RecoveryEvents()
	ctx := ctxT(t)
	queue := uniqueName(t, "excl")
	_, err := channel(t, c).QueueDeclare(ctx, queue, amqp.QueueOptions{Exclusive: true})
	require.NoError(t, err)

	p.Refuse(true)
	p.Cut()
	side := dialURL(t, brokerURL(t), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	require.Eventually(t, func() bool { // once the broker has let the cut connection go
		ch, err := side.Channel(ctx)
		require.NoError(t, err)
		_, err = ch.QueueDeclare(ctx, queue, amqp.QueueOptions{Exclusive: true})
		if err != nil {
			require.ErrorIs(t, err, amqp.ErrResourceLocked)
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	p.Refuse(false)

	deadline := time.After(20 * time.Second)
	failed := false
	for {
		select {
		case ev := <-events:
			require.NotEqual(t, amqp.RecoveryFailed, ev.Kind, "%v", ev.Err)
			if ev.Kind == amqp.TopologyFailed {
				require.ErrorIs(t, ev.Err, amqp.ErrResourceLocked)
				failed = true
			}
			if ev.Kind == amqp.Recovered {
				require.True(t, failed, "the locked queue was not reported")
				return
			}
		case <-deadline:
			t.Fatal("the recovery did not go on past the queue another connection holds")
		}
	}
}
