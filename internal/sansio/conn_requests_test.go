package sansio

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Only one synchronous request per channel is on the wire; the others wait
// their turn and their replies come back with their tokens, in order.
func TestOneOutstandingRequestPerChannel(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)

	reqs := []Method{
		&ExchangeDeclare{Exchange: "ex", Type: "direct"},
		&QueueDeclare{Queue: "q"},
		&QueueBind{Queue: "q", Exchange: "ex", RoutingKey: "k"},
	}
	replies := []Method{&ExchangeDeclareOk{}, &QueueDeclareOk{Queue: "q"}, &QueueBindOk{}}
	for i, m := range reqs {
		call(t, c, ch, uint64(10+i), m)
	}
	require.Equal(t, reqs[:1], p.sentMethods(c))

	for i := range reqs {
		evs := drive(t, c, t0, p.method(ch, replies[i]))
		require.Equal(t, []Event{{Kind: EventReply, Channel: ch, Token: uint64(10 + i), Method: replies[i]}}, evs)
		if i+1 < len(reqs) {
			require.Equal(t, reqs[i+1:i+2], p.sentMethods(c), "after reply %d", i)
		} else {
			require.Empty(t, p.sent(c))
		}
	}
}

// Channels queue independently.
func TestRequestQueuesArePerChannel(t *testing.T) {
	c, p := openConn(t, 0)
	a := openChannel(t, c, p)
	b, err := c.OpenChannel(200)
	require.NoError(t, err)
	drive(t, c, t0, p.method(b, &ChannelOpenOk{}))
	p.sent(c)

	call(t, c, a, 1, &QueueDeclare{Queue: "a"})
	call(t, c, b, 2, &QueueDeclare{Queue: "b"})
	s := p.sent(c)
	require.Len(t, s, 2)
	require.Equal(t, []uint16{a, b}, []uint16{s[0].channel, s[1].channel})

	evs := drive(t, c, t0, cat(p.method(b, &QueueDeclareOk{Queue: "b"}), p.method(a, &QueueDeclareOk{Queue: "a"})))
	require.Equal(t, []uint64{2, 1}, []uint64{evs[0].Token, evs[1].Token})
}

func TestCancelRequest(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "one"})
	call(t, c, ch, 2, &QueueDeclare{Queue: "two"})
	call(t, c, ch, 3, &QueueDeclare{Queue: "three"})
	require.Equal(t, []Method{&QueueDeclare{Queue: "one"}}, p.sentMethods(c))

	require.True(t, c.CancelRequest(ch, 2), "queued request is withdrawn")
	require.False(t, c.CancelRequest(ch, 2), "only once")
	require.False(t, c.CancelRequest(ch, 1), "a sent request cannot be withdrawn")
	require.False(t, c.CancelRequest(ch, 99))
	require.False(t, c.CancelRequest(42, 1))
	require.Empty(t, drain(c))

	// The sent one's reply still comes; the withdrawn one never goes out.
	evs := drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "one"}))
	require.Equal(t, []Event{{Kind: EventReply, Channel: ch, Token: 1, Method: &QueueDeclareOk{Queue: "one"}}}, evs)
	require.Equal(t, []Method{&QueueDeclare{Queue: "three"}}, p.sentMethods(c))
	evs = drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "three"}))
	require.Equal(t, uint64(3), evs[0].Token)
}

// No-wait variants wait behind a request that waits for its reply, so that
// they keep their order, then go out together; no event follows them.
func TestNoWaitKeepsOrderBehindWaitingRequest(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "sync"})
	p.sent(c)
	call(t, c, ch, 2, &QueueDeclare{Queue: "async", NoWait: true})
	call(t, c, ch, 3, &QueueBind{Queue: "async", Exchange: "ex", NoWait: true})
	require.Empty(t, p.sentMethods(c))
	require.Empty(t, drain(c))

	evs := drive(t, c, t0, p.method(ch, &QueueDeclareOk{Queue: "sync"}))
	require.Equal(t, []Event{{Kind: EventReply, Channel: ch, Token: 1, Method: &QueueDeclareOk{Queue: "sync"}}}, evs)
	require.Equal(t, []Method{
		&QueueDeclare{Queue: "async", NoWait: true},
		&QueueBind{Queue: "async", Exchange: "ex", NoWait: true},
	}, p.sentMethods(c))
}

// A reply nobody asked for is a protocol violation.
func TestUnexpectedReply(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 1, &QueueDeclare{Queue: "q"})
	p.sent(c)
	evs := drive(t, c, t0, p.method(ch, &ExchangeDeclareOk{}))
	requireConnectionClosedByClient(t, c, p, evs, CommandInvalid)
}

func TestCallOnOpeningChannel(t *testing.T) {
	c, p := openConn(t, 0)
	ch, err := c.OpenChannel(1)
	require.NoError(t, err)
	require.Error(t, c.Call(ch, 2, &QueueDeclare{}))
	require.Equal(t, []Method{&ChannelOpen{}}, p.sentMethods(c))
}

func TestOperationsOnClosedConnection(t *testing.T) {
	c := NewConn(Config{Auth: []Auth{guest()}})
	_, err := c.OpenChannel(1)
	require.ErrorIs(t, err, ErrConnectionClosed)
	require.ErrorIs(t, c.Call(1, 1, &QueueDeclare{}), ErrConnectionClosed)
	require.ErrorIs(t, c.CloseChannel(1, 1), ErrConnectionClosed)
	_, err = publish(c, 1, &BasicPublish{}, nil, nil)
	require.ErrorIs(t, err, ErrConnectionClosed)
	require.ErrorIs(t, c.UpdateSecret(1, nil, ""), ErrConnectionClosed)
}
