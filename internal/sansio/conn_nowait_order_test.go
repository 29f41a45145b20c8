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

// A publish issued after a no-wait exchange.declare that waits its turn
// behind a declare must not reach the broker before it: RabbitMQ closes the
// channel with 404 NOT_FOUND for a publish to an exchange not declared yet.
func TestPublishWaitsBehindQueuedNoWaitDeclare(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "q"})
	call(t, c, ch, 2, &ExchangeDeclare{Exchange: "x", Type: "fanout", NoWait: true})
	_, err := publish(c, ch, &BasicPublish{Exchange: "x"}, nil, []byte("m"))
	require.NoError(t, err)
	drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "q"}))

	order := sentMethods(p, c)
	require.Equal(t, []string{"queue.declare", "exchange.declare", "basic.publish"}, order,
		"the publish overtook the exchange.declare it was issued after")
}

// Call accepted a no-wait queue.bind (it returned nil and no event will
// follow). CloseChannel must not drop it silently: it has to reach the
// broker before channel.close, or be reported as failed.
func TestCloseChannelSendsAcceptedNoWaitMethodsFirst(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "q"})
	call(t, c, ch, 2, &QueueBind{Queue: "q", Exchange: "amq.fanout", NoWait: true})
	require.NoError(t, c.CloseChannel(ch, 3))
	evs := drain(c)
	evs = append(evs, drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "q"}))...)
	evs = append(evs, drive(t, c, t0, p.method(ch, &ChannelCloseOk{}))...)

	order := sentMethods(p, c)
	reported := false
	for _, ev := range evs {
		if ev.Kind == EventReply && ev.Token == 2 {
			reported = true
		}
	}
	require.True(t, reported || len(order) == 3 && order[1] == "queue.bind",
		"accepted no-wait queue.bind was neither sent nor reported; wire: %v", order)
}

// A confirm.select no-wait that waits its turn numbers the publishes queued
// behind it, which go out after it: the broker's ack of 1 settles the first.
func TestPublishesQueuedBehindNoWaitConfirmSelectAreNumbered(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "q"})
	call(t, c, ch, 2, &ConfirmSelect{Nowait: true})
	seq, err := publish(c, ch, &BasicPublish{RoutingKey: "q"}, nil, []byte("m"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), seq)
	drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "q"}))
	order := sentMethods(p, c)
	require.Equal(t, []string{"queue.declare", "confirm.select", "basic.publish"}, order)
	evs := drive(t, c, t0, p.method(ch, &BasicAck{DeliveryTag: 1}))
	require.Equal(t, []Event{{Kind: EventConfirm, Channel: ch, Seq: 1, Confirm: ConfirmAck}}, evs)
}

// A publish queued behind a no-wait method that itself waits behind a
// (waiting) confirm.select goes on the wire after confirm.select, so the
// broker numbers it 1, and so must the core.
func TestPublishQueuedBehindAWaitingConfirmSelectIsNumbered(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "q"})
	call(t, c, ch, 2, &ConfirmSelect{})
	call(t, c, ch, 3, &ExchangeDeclare{Exchange: "x", Type: "fanout", NoWait: true})
	seq1, err := publish(c, ch, &BasicPublish{Exchange: "x"}, nil, []byte("m1"))
	require.NoError(t, err)
	drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "q"}))
	drive(t, c, t0, p.method(ch, &ConfirmSelectOk{}))
	seq2, err := publish(c, ch, &BasicPublish{Exchange: "x"}, nil, []byte("m2"))
	require.NoError(t, err)

	order := sentMethods(p, c)
	require.Equal(t, []string{"queue.declare", "confirm.select", "exchange.declare", "basic.publish", "basic.publish"}, order)
	// On the wire both publishes follow confirm.select: the broker numbers
	// them 1 and 2.
	require.Equal(t, []uint64{1, 2}, []uint64{seq1, seq2},
		"publish sent after confirm.select was numbered as if outside confirm mode")
}

// OutgoingLen counts publishes the core holds in a channel's queue: a
// driver bounds memory by it.
func TestOutgoingLenCountsHeldPublishes(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "q"})
	call(t, c, ch, 2, &ExchangeDeclare{Exchange: "x", Type: "fanout", NoWait: true})
	c.TakeOutgoing(t0, nil)
	for range 10 {
		_, err := publish(c, ch, &BasicPublish{Exchange: "x"}, nil, make([]byte, 100<<10))
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, c.OutgoingLen(), 10*100<<10, "1 MB of queued publishes not counted by OutgoingLen")
}

// A no-wait method larger than frame_max, queued behind a request, is
// refused by Call: no reply would ever report it.
func TestQueuedNoWaitOverFrameMaxIsRefused(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "q"})
	big := Table{"k": string(make([]byte, 200<<10))}
	err := c.Call(ch, 2, &QueueBind{Queue: "q", Exchange: "amq.fanout", NoWait: true, Arguments: big})
	evs := drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "q"}))
	reported := err != nil
	for _, ev := range evs {
		if ev.Kind == EventReply && ev.Token == 2 && ev.Err != nil {
			reported = true
		}
	}
	sentBind := false
	for _, s := range p.sent(c) {
		if _, ok := s.method.(*QueueBind); ok {
			sentBind = true
		}
	}
	require.True(t, reported || sentBind, "accepted no-wait queue.bind over frame_max was neither sent nor reported")
}

// A client channel.close sends the no-wait methods accepted behind the
// request on the wire, but not those behind a request never sent: they may
// depend on it.
func TestCloseChannelStopsAtARequestNeverSent(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "q"})
	call(t, c, ch, 2, &QueueBind{Queue: "q", Exchange: "amq.fanout", NoWait: true})
	call(t, c, ch, 3, &QueueDeclare{Queue: "r"}) // waits its turn: never sent
	call(t, c, ch, 4, &QueueBind{Queue: "r", Exchange: "amq.fanout", NoWait: true})
	require.NoError(t, c.CloseChannel(ch, 5))
	order := sentMethods(p, c)
	require.Equal(t, []string{"queue.declare", "queue.bind", "channel.close"}, order)
	require.Zero(t, c.OutgoingLen()-len(c.out))
}

// sentMethods returns the names of the methods the client sent since the
// last call, in order (content frames are skipped).
func sentMethods(p *peer, c *Conn) []string {
	var names []string
	for _, s := range p.sent(c) {
		if s.method != nil {
			names = append(names, s.method.ID().String())
		}
	}
	return names
}
