package sansio

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

var errTestLost = errors.New("test: connection reset")

// requireConnectionClosedByClient checks that evs end with the Conn closing
// the connection for a violation with code, and that connection.close with
// that code was queued.
func requireConnectionClosedByClient(t *testing.T, c *Conn, p *peer, evs []Event, code ReplyCode) *CloseError {
	t.Helper()
	require.NotEmpty(t, evs)
	last := evs[len(evs)-1]
	require.Equal(t, EventConnectionClosed, last.Kind)
	var ce *CloseError
	require.ErrorAs(t, last.Err, &ce)
	require.Equal(t, code, ce.Code, "%v", last.Err)
	require.True(t, ce.Connection)
	require.False(t, ce.Server)
	require.ErrorIs(t, last.Err, ErrConnectionClosed)
	require.True(t, c.Closed())
	ms := p.sentMethods(c)
	require.NotEmpty(t, ms)
	close, ok := ms[len(ms)-1].(*ConnectionClose)
	require.True(t, ok, "last method sent is %T", ms[len(ms)-1])
	require.Equal(t, uint16(code), close.ReplyCode)
	require.Equal(t, ce.ClassID, close.ClassID)
	require.Equal(t, ce.MethodID, close.MethodID)
	return ce
}

func TestServerClosesChannel(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	other, err := c.OpenChannel(101)
	require.NoError(t, err)
	drive(t, c, t0, p.method(other, &ChannelOpenOk{}))
	p.sent(c)
	selectConfirms(t, c, p, ch)
	publishN(t, c, ch, 1, 3)
	drive(t, c, t0, p.method(ch, &BasicAck{DeliveryTag: 1}))
	call(t, c, ch, 7, &QueueDeclare{Queue: "missing", Passive: true})
	call(t, c, ch, 8, &QueueBind{Queue: "missing"})
	p.sent(c)

	evs := drive(t, c, t0, p.method(ch, &ChannelClose{ReplyCode: uint16(NotFound),
		ReplyText: "NOT_FOUND - no queue 'missing'", ClassID: ClassQueue, MethodID: QueueDeclareID.Method()}))
	require.Equal(t, []Method{&ChannelCloseOk{}}, p.sentMethods(c))
	require.Equal(t, []EventKind{EventReply, EventReply, EventConfirm, EventConfirm, EventChannelClosed}, kinds(evs))

	closed := evs[4]
	require.Equal(t, ch, closed.Channel)
	var ce *CloseError
	require.ErrorAs(t, closed.Err, &ce)
	require.Equal(t, CloseError{Code: NotFound, Reason: "NOT_FOUND - no queue 'missing'", ClassID: ClassQueue,
		MethodID: QueueDeclareID.Method(), Server: true}, *ce)
	require.ErrorIs(t, closed.Err, ErrNotFound)
	require.ErrorIs(t, closed.Err, ErrChannelClosed)
	require.NotErrorIs(t, closed.Err, ErrConnectionClosed)

	require.Equal(t, []uint64{7, 8}, []uint64{evs[0].Token, evs[1].Token})
	for _, ev := range evs[:2] {
		require.ErrorIs(t, ev.Err, ErrNotFound)
		require.Nil(t, ev.Method)
	}
	require.Equal(t, []uint64{2, 3}, []uint64{evs[2].Seq, evs[3].Seq})
	for _, ev := range evs[2:4] {
		require.Equal(t, ConfirmFailed, ev.Confirm)
		require.ErrorIs(t, ev.Err, ErrNotFound)
	}

	// The channel is gone; operations on it fail.
	require.ErrorIs(t, c.Call(ch, 9, &QueueDeclare{}), ErrChannelClosed)
	_, err = publish(c, ch, &BasicPublish{}, nil, nil)
	require.ErrorIs(t, err, ErrChannelClosed)

	// The other channel keeps working.
	evs = rpc(t, c, p, other, 11, &QueueDeclare{Queue: "x"}, &QueueDeclareOk{Queue: "x"})
	require.Equal(t, uint64(11), evs[0].Token)

	// The id is free again at once.
	id, err := c.OpenChannel(12)
	require.NoError(t, err)
	require.Equal(t, ch, id)
	require.Equal(t, []Method{&ChannelOpen{}}, p.sentMethods(c))
	evs = drive(t, c, t0, p.method(id, &ChannelOpenOk{}))
	require.Equal(t, uint64(12), evs[0].Token)
	evs = rpc(t, c, p, id, 13, &QueueDeclare{Queue: "y"}, &QueueDeclareOk{Queue: "y"})
	require.Equal(t, uint64(13), evs[0].Token)
}

// channel.open refused: the open request fails and the channel closes.
func TestServerRefusesChannelOpen(t *testing.T) {
	c, p := openConn(t, 0)
	id, err := c.OpenChannel(5)
	require.NoError(t, err)
	p.sent(c)
	evs := drive(t, c, t0, p.method(id, &ChannelClose{ReplyCode: uint16(AccessRefused)}))
	require.Equal(t, []EventKind{EventReply, EventChannelClosed}, kinds(evs))
	require.Equal(t, uint64(5), evs[0].Token)
	require.ErrorIs(t, evs[0].Err, ErrAccessRefused)
}

func TestClientClosesChannel(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	selectConfirms(t, c, p, ch)
	publishN(t, c, ch, 1, 1)
	call(t, c, ch, 7, &BasicQos{PrefetchCount: 1})
	call(t, c, ch, 8, &BasicQos{PrefetchCount: 2})
	p.sent(c)

	require.NoError(t, c.CloseChannel(ch, 99))
	require.Equal(t, []Method{&ChannelClose{ReplyCode: uint16(ReplySuccess)}}, p.sentMethods(c))
	evs := drain(c)
	require.Equal(t, []EventKind{EventReply, EventReply, EventConfirm, EventChannelClosed}, kinds(evs))
	for _, ev := range evs[:3] {
		require.ErrorIs(t, ev.Err, ErrChannelClosed)
	}
	require.Equal(t, ConfirmFailed, evs[2].Confirm)
	require.NoError(t, evs[3].Err)

	// No new operations while closing.
	require.ErrorIs(t, c.Call(ch, 1, &QueueDeclare{}), ErrChannelClosed)
	require.ErrorIs(t, c.CloseChannel(ch, 1), ErrChannelClosed)

	// Everything that crossed the close is discarded: replies, confirms,
	// deliveries with their content frames, in any number of reads.
	// (TestClientClosesChannelMidContent has a delivery whose method came
	// before the close.)
	deliver := p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, make([]byte, 6000), 4096)
	_, n, err := ParseFrame(deliver, 0)
	require.NoError(t, err)
	require.Empty(t, drive(t, c, t0, deliver[:n]))
	require.Empty(t, drive(t, c, t0, cat(
		deliver[n:],
		p.method(ch, &QueueDeclareOk{Queue: "late"}),
		p.method(ch, &BasicAck{DeliveryTag: 1}),
		p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 2}, nil, []byte("x"), 4096),
	)))
	require.Empty(t, p.sent(c))

	// Before close-ok the id stays taken: OpenChannel picks another.
	other, err := c.OpenChannel(100)
	require.NoError(t, err)
	require.NotEqual(t, ch, other)
	drive(t, c, t0, p.method(other, &ChannelOpenOk{}))
	p.sent(c)

	evs = drive(t, c, t0, p.method(ch, &ChannelCloseOk{}))
	require.Equal(t, []Event{{Kind: EventReply, Channel: ch, Token: 99, Method: &ChannelCloseOk{}}}, evs)

	// After close-ok, the id is free.
	id, err := c.OpenChannel(101)
	require.NoError(t, err)
	require.Equal(t, ch, id)
}

// Deliveries that started before CloseChannel: the content of a delivery
// whose method had already arrived is discarded too.
func TestClientClosesChannelMidContent(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	deliver := p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, make([]byte, 6000), 4096)
	_, n, err := ParseFrame(deliver, 0)
	require.NoError(t, err)
	require.Empty(t, drive(t, c, t0, deliver[:n]))
	require.NoError(t, c.CloseChannel(ch, 9))
	require.Equal(t, []EventKind{EventChannelClosed}, kinds(drain(c)))
	require.Empty(t, drive(t, c, t0, deliver[n:]))
	evs := drive(t, c, t0, p.method(ch, &ChannelCloseOk{}))
	require.Equal(t, uint64(9), evs[0].Token)
}

// Both sides close the channel at once: the client answers the broker's
// close and still waits for its own close-ok.
func TestChannelCloseCrossing(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	require.NoError(t, c.CloseChannel(ch, 9))
	p.sent(c)
	drain(c)
	require.Empty(t, drive(t, c, t0, p.method(ch, &ChannelClose{ReplyCode: uint16(PreconditionFailed)})))
	require.Equal(t, []Method{&ChannelCloseOk{}}, p.sentMethods(c))
	evs := drive(t, c, t0, p.method(ch, &ChannelCloseOk{}))
	require.Equal(t, uint64(9), evs[0].Token)
}

// A close request waiting for close-ok when the connection ends is still
// answered, so no caller waits forever.
func TestChannelCloseInterruptedByConnectionEnd(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	require.NoError(t, c.CloseChannel(ch, 9))
	drain(c)
	p.sent(c)
	c.ConnectionLost(errTestLost)
	evs := drain(c)
	require.Equal(t, []EventKind{EventReply, EventConnectionClosed}, kinds(evs))
	require.Equal(t, uint64(9), evs[0].Token)
	require.ErrorIs(t, evs[0].Err, errTestLost)
}

func TestChannelMax(t *testing.T) {
	c, p := openConnWith(t, Config{Auth: []Auth{guest()}, ChannelMax: 3}, &ConnectionTune{ChannelMax: 2047, FrameMax: 4096})
	require.Equal(t, uint16(3), c.Tuning().ChannelMax)
	for want := uint16(1); want <= 3; want++ {
		id, err := c.OpenChannel(uint64(want))
		require.NoError(t, err)
		require.Equal(t, want, id)
		drive(t, c, t0, p.method(id, &ChannelOpenOk{}))
	}
	_, err := c.OpenChannel(4)
	require.ErrorIs(t, err, ErrNoFreeChannel)

	require.NoError(t, c.CloseChannel(2, 5))
	_, err = c.OpenChannel(6)
	require.ErrorIs(t, err, ErrNoFreeChannel, "channel 2 is still closing")
	drive(t, c, t0, p.method(2, &ChannelCloseOk{}))
	id, err := c.OpenChannel(7)
	require.NoError(t, err)
	require.Equal(t, uint16(2), id)

	// A frame for channel 4, beyond channel_max, is for a channel that is
	// not open.
	drain(c)
	p.sent(c)
	evs := drive(t, c, t0, p.method(4, &ChannelOpenOk{}))
	requireConnectionClosedByClient(t, c, p, evs, ChannelError)
}

func TestServerClosesConnection(t *testing.T) {
	c, p := openConn(t, 0)
	a := openChannel(t, c, p)
	b, err := c.OpenChannel(7)
	require.NoError(t, err) // still opening: its open request fails too
	p.sent(c)
	selectConfirms(t, c, p, a)
	publishN(t, c, a, 1, 1)
	call(t, c, a, 8, &QueueDeclare{})
	require.NoError(t, c.UpdateSecret(9, []byte("s"), "r"))
	p.sent(c)

	evs := drive(t, c, t0, p.method(0, &ConnectionClose{ReplyCode: uint16(ConnectionForced),
		ReplyText: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"}))
	require.Equal(t, []Method{&ConnectionCloseOk{}}, p.sentMethods(c))
	require.Equal(t, []EventKind{
		EventReply, EventConfirm, EventChannelClosed, // channel a
		EventReply, EventChannelClosed, // channel b
		EventReply,            // update-secret on channel 0
		EventConnectionClosed, // last
	}, kinds(evs))
	require.Equal(t, []uint16{a, a, a, b, b, 0}, []uint16{evs[0].Channel, evs[1].Channel, evs[2].Channel,
		evs[3].Channel, evs[4].Channel, evs[5].Channel})
	require.Equal(t, []uint64{8, 7, 9}, []uint64{evs[0].Token, evs[3].Token, evs[5].Token})

	last := evs[len(evs)-1]
	var ce *CloseError
	require.ErrorAs(t, last.Err, &ce)
	require.Equal(t, ConnectionForced, ce.Code)
	require.True(t, ce.Connection)
	require.True(t, ce.Server)
	require.ErrorIs(t, last.Err, ErrConnectionForced)
	require.ErrorIs(t, last.Err, ErrConnectionClosed)
	require.NotErrorIs(t, last.Err, ErrChannelClosed)
	for _, ev := range evs[:len(evs)-1] {
		require.ErrorIs(t, ev.Err, ErrConnectionForced)
	}
	require.True(t, c.Closed())
	require.False(t, c.IsOpen())

	// Nothing more happens.
	require.Equal(t, 5, c.Receive(t0, []byte{1, 2, 3, 4, 5}))
	c.ConnectionLost(errTestLost)
	c.Close(ReplySuccess, "")
	require.Empty(t, drain(c))
	require.Empty(t, p.sent(c))
}

func TestClientClosesConnection(t *testing.T) {
	c, p := openConn(t, 0)
	ch := openChannel(t, c, p)
	call(t, c, ch, 8, &QueueDeclare{})
	p.sent(c)

	c.Close(ReplySuccess, "bye")
	require.Equal(t, []Method{&ConnectionClose{ReplyCode: uint16(ReplySuccess), ReplyText: "bye"}}, p.sentMethods(c))
	evs := drain(c)
	require.Equal(t, []EventKind{EventReply, EventChannelClosed}, kinds(evs))
	require.ErrorIs(t, evs[1].Err, ErrConnectionClosed)
	require.False(t, c.IsOpen())
	require.False(t, c.Closed())
	_, err := c.OpenChannel(1)
	require.ErrorIs(t, err, ErrConnectionClosed)

	// Frames are discarded until close-ok, even ones that would be
	// violations on an open connection.
	require.Empty(t, drive(t, c, t0, cat(
		p.method(ch, &QueueDeclareOk{}),
		p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, []byte("late"), 4096),
		p.method(9, &ChannelOpenOk{}),
		AppendBodyFrames(nil, ch, []byte("stray"), 0),
		unknownMethodFrame(ch),
		p.method(0, &ConnectionBlocked{Reason: "x"}),
		AppendHeartbeat(nil),
	)))
	require.Empty(t, p.sent(c))

	evs = drive(t, c, t0, p.method(0, &ConnectionCloseOk{}))
	require.Equal(t, []Event{{Kind: EventConnectionClosed}}, evs)
	require.True(t, c.Closed())
}

func TestClientCloseAnsweredByClose(t *testing.T) {
	c, p := openConn(t, 0)
	c.Close(ReplySuccess, "")
	p.sent(c)
	evs := drive(t, c, t0, p.method(0, &ConnectionClose{ReplyCode: uint16(ReplySuccess)}))
	require.Equal(t, []Event{{Kind: EventConnectionClosed}}, evs)
	require.Equal(t, []Method{&ConnectionCloseOk{}}, p.sentMethods(c))
}

// The broker may drop the socket instead of sending close-ok.
func TestClientCloseThenEOF(t *testing.T) {
	c, p := openConn(t, 0)
	c.Close(ReplySuccess, "")
	p.sent(c)
	c.ConnectionLost(errTestLost)
	require.Equal(t, []Event{{Kind: EventConnectionClosed}}, drain(c))
}

// A reply text longer than a short string is truncated, not a panic.
func TestCloseLongText(t *testing.T) {
	c, p := openConn(t, 0)
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'x'
	}
	require.NotPanics(t, func() { c.Close(ReplySuccess, string(long)) })
	ms := p.sentMethods(c)
	require.Len(t, ms[0].(*ConnectionClose).ReplyText, 255)
}

func TestCloseBeforeHandshake(t *testing.T) {
	c := NewConn(Config{Auth: []Auth{guest()}})
	c.Close(ReplySuccess, "")
	require.Equal(t, []Event{{Kind: EventConnectionClosed}}, drain(c))
}

// unknownMethodFrame is a method frame for class 60, method 999.
func unknownMethodFrame(ch uint16) []byte {
	b, start := beginFrame(nil, FrameMethod, ch)
	b = binary.BigEndian.AppendUint32(b, uint32(ClassBasic)<<16|999)
	return finishFrame(b, start)
}

func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input func(p *peer, ch uint16) []byte
		code  ReplyCode
	}{
		{"method in the middle of content", func(p *peer, ch uint16) []byte {
			full := p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, []byte("body"), 4096)
			_, n, _ := ParseFrame(full, 0)
			return cat(full[:n], p.method(ch, &BasicAck{DeliveryTag: 1}))
		}, UnexpectedFrame},
		{"method between content header and body", func(p *peer, ch uint16) []byte {
			full := p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, []byte("body"), 4096)
			_, n1, _ := ParseFrame(full, 0)
			_, n2, _ := ParseFrame(full[n1:], 0)
			return cat(full[:n1+n2], p.method(ch, &ChannelFlow{Active: true}))
		}, UnexpectedFrame},
		{"body without header", func(p *peer, ch uint16) []byte {
			return AppendBodyFrames(nil, ch, []byte("body"), 0)
		}, UnexpectedFrame},
		{"body after deliver without header", func(p *peer, ch uint16) []byte {
			return cat(p.method(ch, &BasicDeliver{ConsumerTag: "c"}), AppendBodyFrames(nil, ch, []byte("body"), 0))
		}, UnexpectedFrame},
		{"header without method", func(p *peer, ch uint16) []byte {
			b, _ := AppendContentHeaderFrame(nil, ch, ClassBasic, 1, nil)
			return b
		}, UnexpectedFrame},
		{"body longer than announced", func(p *peer, ch uint16) []byte {
			b := p.method(ch, &BasicDeliver{ConsumerTag: "c"})
			b, _ = AppendContentHeaderFrame(b, ch, ClassBasic, 2, nil)
			return AppendBodyFrames(b, ch, []byte("abc"), 0)
		}, FrameError},
		{"content header of another class", func(p *peer, ch uint16) []byte {
			b := p.method(ch, &BasicDeliver{ConsumerTag: "c"})
			b, _ = AppendContentHeaderFrame(b, ch, ClassQueue, 2, nil)
			return b
		}, FrameError},
		{"unknown method", func(p *peer, ch uint16) []byte { return unknownMethodFrame(ch) }, NotImplemented},
		{"method only a client sends", func(p *peer, ch uint16) []byte {
			return p.method(ch, &BasicPublish{})
		}, CommandInvalid},
		{"bad frame end", func(p *peer, ch uint16) []byte {
			b := p.method(ch, &ChannelFlow{Active: true})
			b[len(b)-1] = 0
			return b
		}, FrameError},
		{"unknown frame type", func(p *peer, ch uint16) []byte {
			return []byte{9, 0, 1, 0, 0, 0, 0, FrameEnd}
		}, FrameError},
		{"frame over frame_max", func(p *peer, ch uint16) []byte {
			return AppendBodyFrames(nil, ch, make([]byte, 5000), 0)
		}, FrameError},
		{"heartbeat on a channel", func(p *peer, ch uint16) []byte {
			return []byte{FrameHeartbeat, 0, ch1, 0, 0, 0, 0, FrameEnd}
		}, FrameError},
		{"frame on a channel that is not open", func(p *peer, ch uint16) []byte {
			return p.method(ch+1, &ChannelFlow{Active: true})
		}, ChannelError},
		{"content on channel 0", func(p *peer, ch uint16) []byte {
			return AppendBodyFrames(nil, 0, []byte("x"), 0)
		}, CommandInvalid},
		{"truncated method", func(p *peer, ch uint16) []byte {
			b, start := beginFrame(nil, FrameMethod, ch)
			b = binary.BigEndian.AppendUint32(b, uint32(QueueDeclareOkID))
			return finishFrame(append(b, 3, 'a'), start)
		}, SyntaxError},
		{"protocol header after the handshake", func(p *peer, ch uint16) []byte {
			return ProtocolHeader[:]
		}, FrameError},
		{"channel method on channel 0", func(p *peer, ch uint16) []byte {
			return p.method(0, &ChannelFlow{Active: true})
		}, CommandInvalid},
		{"second connection.start", func(p *peer, ch uint16) []byte {
			return p.method(0, rabbitStart())
		}, CommandInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := openConn(t, 0)
			ch := openChannel(t, c, p)
			require.Equal(t, uint16(ch1), ch)
			call(t, c, ch, 5, &QueueDeclare{Queue: "q"})
			p.sent(c)
			evs := drive(t, c, t0, tc.input(p, ch))
			requireConnectionClosedByClient(t, c, p, evs, tc.code)
			// The channel and its request ended first.
			require.Equal(t, []EventKind{EventReply, EventChannelClosed, EventConnectionClosed}, kinds(evs))
			require.Equal(t, uint64(5), evs[0].Token)
			require.ErrorIs(t, evs[0].Err, ErrConnectionClosed)
		})
	}
}

const ch1 = 1

// After the client sent connection.close, every method but close and
// close-ok is discarded (spec, connection.close), also on channel 0 and
// also one that does not decode: the close-ok behind it still ends the
// connection cleanly.
func TestClosingDiscardsUndecodableMethodsOnChannel0(t *testing.T) {
	c, p := openConn(t, 0)
	c.Close(ReplySuccess, "")
	p.sent(c)
	evs := drive(t, c, t0, cat(unknownMethodFrame(0), p.method(0, &ConnectionCloseOk{})))
	require.Equal(t, []Event{{Kind: EventConnectionClosed}}, evs)
}
