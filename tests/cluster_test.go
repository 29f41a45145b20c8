package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/clustertest"
	"github.com/stretchr/testify/require"
)

// TestClusterSmoke proves the cluster helpers, not recovery (switched off
// here; see TestClusterFailover): every node answers, a quorum queue gets a member on
// each, and after kill -9 of its leader's node the survivors elect another
// leader, keep every confirmed message, and take the restarted member back.
func TestClusterSmoke(t *testing.T) {
	cl := clustertest.New(t)
	conns := make([]*amqp.Conn, cl.Size()+1) // by node number
	for n := 1; n <= cl.Size(); n++ {
		conns[n] = dialURL(t, cl.URL(n), amqp.Config{Recovery: amqp.Recovery{Disable: true}})
	}

	queue := uniqueName(t, "cluster")
	ch := confirmChannel(t, conns[1])
	_, err := ch.QueueDeclare(ctxT(t), queue, amqp.QueueOptions{
		Durable: true, Args: amqp.Table{"x-queue-type": "quorum"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { deleteQueueOnAnyNode(t, cl, queue) })
	// Every member running, with its data on disk, before any node dies
	// (see BROKER.md: a member killed just after the declare may never
	// come back).
	cl.WaitQuorumOnline(t, queue)

	const messages = 10
	for i := range messages {
		publishConfirmed(t, ch, "", queue, fmt.Appendf(nil, "m%d", i))
	}

	leader := cl.QuorumLeader(t, queue)
	require.NotZero(t, leader, "the queue has a leader")
	cl.KillNode(t, leader)

	select {
	case <-conns[leader].Context().Done():
	case <-ctxT(t).Done():
		t.Fatalf("the connection to the killed node %d is still open", leader)
	}

	survivor := leader%cl.Size() + 1
	newLeader := cl.WaitQuorumLeader(t, queue)
	require.NotEqual(t, leader, newLeader)
	sch := channel(t, conns[survivor])
	require.Equal(t, messages, queueLen(t, sch, queue), "no confirmed message lost")

	cl.StartNode(t, leader)
	cl.WaitQuorumOnline(t, queue)
	back := channel(t, dialURL(t, cl.URL(leader), amqp.Config{}))
	require.Equal(t, messages, queueLen(t, back, queue))
	for i := range messages {
		d, ok, err := back.Get(ctxT(t), queue, true)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, fmt.Sprintf("m%d", i), string(d.Body))
	}
}

// deleteQueueOnAnyNode deletes queue through the first node that answers.
func deleteQueueOnAnyNode(t *testing.T, cl *clustertest.Cluster, queue string) {
	for _, u := range cl.URLs() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := amqp.Dial(ctx, u)
		if err == nil {
			if ch, err := c.Channel(ctx); err == nil {
				_, err = ch.QueueDelete(ctx, queue, false, false)
				if err == nil {
					_ = c.Close(ctx)
					cancel()
					return
				}
			}
			_ = c.Close(ctx)
		}
		cancel()
	}
	t.Errorf("could not delete queue %s on any node", queue)
}
