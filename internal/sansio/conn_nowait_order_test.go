package sansio

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A no-wait bind issued while a declare still waits for its reply must not
// overtake it: the broker would answer 404 for a queue not declared yet.
func TestNoWaitMethodKeepsItsPlaceBehindQueuedRequests(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	require.NoError(t, c.Call(ch, 1, &QueueDeclare{Queue: "a"}))
	require.NoError(t, c.Call(ch, 2, &QueueDeclare{Queue: "b"}))
	require.NoError(t, c.Call(ch, 3, &QueueBind{Queue: "b", Exchange: "x", NoWait: true}))
	require.NoError(t, c.Call(ch, 4, &BasicAck{DeliveryTag: 9})) // asynchronous: goes at once
	sent := p.frames(c.TakeOutgoing(t0, nil))
	require.Len(t, sent, 2)
	require.Equal(t, "a", sent[0].method.(*QueueDeclare).Queue)
	require.IsType(t, &BasicAck{}, sent[1].method)

	evs := drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "a"}))
	require.Len(t, evs, 1)
	sent = p.frames(c.TakeOutgoing(t0, nil))
	require.Len(t, sent, 1)
	require.Equal(t, "b", sent[0].method.(*QueueDeclare).Queue)

	evs = drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "b"}))
	require.Len(t, evs, 1)
	sent = p.frames(c.TakeOutgoing(t0, nil))
	require.Len(t, sent, 1)
	require.Equal(t, "b", sent[0].method.(*QueueBind).Queue)

	// With nothing waiting, a no-wait method goes out at once.
	require.NoError(t, c.Call(ch, 5, &QueueBind{Queue: "c", Exchange: "x", NoWait: true}))
	require.Len(t, p.frames(c.TakeOutgoing(t0, nil)), 1)
}
