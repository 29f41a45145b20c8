package sansio

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

var heartbeatFrame = AppendHeartbeat(nil)

func TestHeartbeats(t *testing.T) {
	c, p := openConn(t, 10)
	ch := openChannel(t, c, p) // everything so far was received and sent at t0
	require.Equal(t, 10*time.Second, c.Tuning().Heartbeat)
	require.Equal(t, at(5), c.Deadline(), "send after half an interval")

	c.HandleTimeout(at(4.9)) // early: nothing
	require.False(t, c.HasOutgoing())

	c.HandleTimeout(at(5))
	require.Equal(t, heartbeatFrame, c.TakeOutgoing(at(5), nil))
	require.Equal(t, at(10), c.Deadline())

	// Sending anything else counts as activity.
	call(t, c, ch, 1, &BasicQos{PrefetchCount: 1})
	c.TakeOutgoing(at(7), nil)
	require.Equal(t, at(12), c.Deadline())

	// Nothing received since t0: the broker is dead at t0+20s. Until
	// then, heartbeats go out every 5 s.
	for _, s := range []float64{12, 17} {
		require.Equal(t, at(s), c.Deadline())
		c.HandleTimeout(at(s))
		require.Equal(t, heartbeatFrame, c.TakeOutgoing(at(s), nil))
		require.Empty(t, drain(c))
	}
	require.Equal(t, at(20), c.Deadline(), "the dead deadline comes before the next send")
	c.HandleTimeout(at(19.999))
	require.Empty(t, drain(c))

	c.HandleTimeout(at(20))
	evs := drain(c)
	require.Equal(t, []EventKind{EventReply, EventChannelClosed, EventConnectionClosed}, kinds(evs))
	require.ErrorIs(t, evs[2].Err, ErrHeartbeatTimeout)
	require.ErrorIs(t, evs[2].Err, ErrConnectionClosed)
	require.ErrorIs(t, evs[0].Err, ErrHeartbeatTimeout)
	require.True(t, c.Closed())
	require.True(t, c.Deadline().IsZero())
}

// Any frame received, a heartbeat or a method, moves the dead deadline.
func TestHeartbeatReceivedFramesKeepAlive(t *testing.T) {
	c, p := openConn(t, 10)
	ch := openChannel(t, c, p)

	c.Receive(at(8), heartbeatFrame)
	for _, s := range []float64{5, 10, 15, 20, 25} {
		c.HandleTimeout(at(s))
		c.TakeOutgoing(at(s), nil)
	}
	require.Equal(t, at(28), c.Deadline())
	require.Empty(t, drain(c))

	drive(t, c, at(27), p.method(ch, &ChannelFlow{Active: true}))
	c.TakeOutgoing(at(27), nil)
	c.HandleTimeout(at(30))
	c.TakeOutgoing(at(30), nil)
	require.Equal(t, at(32), c.Deadline())
	c.HandleTimeout(at(46.9))
	require.False(t, c.Closed())
	c.HandleTimeout(at(47))
	require.True(t, c.Closed())
	evs := drain(c)
	require.ErrorIs(t, evs[len(evs)-1].Err, ErrHeartbeatTimeout)
}

// A large frame trickling in over a slow link keeps the connection alive
// before it is complete.
func TestHeartbeatPartialFrameKeepsAlive(t *testing.T) {
	c, p := openConn(t, 1)
	ch := openChannel(t, c, p)
	frames := p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, make([]byte, 4000), 4096)
	var buf []byte
	for i, b := range frames {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		buf = append(buf, b)
		n := c.Receive(now, buf)
		buf = buf[n:]
		c.HandleTimeout(now)
		c.TakeOutgoing(now, nil)
	}
	require.False(t, c.Closed())
	evs := drain(c)
	require.Equal(t, []EventKind{EventDelivery}, kinds(evs))

	// Passing the held bytes again without new ones is not activity.
	last := t0.Add(time.Duration(len(frames)) * time.Millisecond)
	half := heartbeatFrame[:4]
	require.Zero(t, c.Receive(last, half))
	require.Zero(t, c.Receive(last.Add(1900*time.Millisecond), half))
	c.HandleTimeout(last.Add(2 * time.Second))
	require.True(t, c.Closed())
}

func TestHeartbeatDisabled(t *testing.T) {
	c, _ := openConnWith(t, Config{Auth: []Auth{guest()}, Heartbeat: -1}, &ConnectionTune{Heartbeat: 60})
	require.Zero(t, c.Tuning().Heartbeat)
	require.True(t, c.Deadline().IsZero())
	c.HandleTimeout(t0.Add(24 * time.Hour))
	require.False(t, c.HasOutgoing())
	require.True(t, c.IsOpen())
	require.Empty(t, drain(c))
}

func TestNoDeadlineDuringHandshake(t *testing.T) {
	c, p := startConn(t, Config{Auth: []Auth{guest()}})
	require.True(t, c.Deadline().IsZero())
	drive(t, c, t0, p.method(0, rabbitStart()))
	require.True(t, c.Deadline().IsZero())
	c.HandleTimeout(t0.Add(time.Hour))
	require.False(t, c.Closed())
}

// While closing, heartbeats continue, and a silent broker still times out.
func TestHeartbeatWhileClosing(t *testing.T) {
	c, _ := openConn(t, 10)
	c.Close(ReplySuccess, "")
	c.TakeOutgoing(at(1), nil)
	require.Equal(t, at(6), c.Deadline())
	c.HandleTimeout(at(6))
	require.Equal(t, heartbeatFrame, c.TakeOutgoing(at(6), nil))
	c.HandleTimeout(at(20))
	evs := drain(c)
	require.ErrorIs(t, evs[len(evs)-1].Err, ErrHeartbeatTimeout)
}
