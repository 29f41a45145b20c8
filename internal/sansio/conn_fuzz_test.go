package sansio

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// seedFrames encodes broker frames for fuzz seeds.
func seedFrames(f *testing.F, parts ...any) []byte {
	var b []byte
	for _, part := range parts {
		switch x := part.(type) {
		case []byte:
			b = append(b, x...)
		case chm:
			var err error
			b, err = AppendMethodFrame(b, x.ch, x.m)
			if err != nil {
				f.Fatal(err)
			}
		case content:
			var err error
			b, err = AppendMethodFrame(b, x.ch, x.m)
			if err == nil {
				b, err = AppendContentHeaderFrame(b, x.ch, ClassBasic, uint64(len(x.body)), &x.props)
			}
			if err != nil {
				f.Fatal(err)
			}
			b = AppendBodyFrames(b, x.ch, x.body, 4096)
		}
	}
	return b
}

type chm struct {
	ch uint16
	m  Method
}

type content struct {
	ch    uint16
	m     Method
	props Properties
	body  []byte
}

// fuzzSetup opens a connection (frame_max 4096, heartbeat 10 s) and channel 1
// in confirm mode with three publishes (1 and 2 mandatory), a request on the
// wire (token 2), two queued (3, 4), an update-secret (5) and channel 2
// opening (6).
func fuzzSetup(t *testing.T) *Conn {
	c, p := openConn(t, 10)
	ch := openChannel(t, c, p)
	require.Equal(t, uint16(1), ch)
	evs := rpc(t, c, p, ch, 1, &ConfirmSelect{}, &ConfirmSelectOk{})
	require.Len(t, evs, 1)
	for _, pub := range []struct {
		m    BasicPublish
		body string
	}{
		{BasicPublish{Exchange: "ex", RoutingKey: "a", Mandatory: true}, "a"},
		{BasicPublish{Exchange: "ex", RoutingKey: "b", Mandatory: true}, "bb"},
		{BasicPublish{RoutingKey: "q"}, "ccc"},
	} {
		_, err := publish(c, ch, &pub.m, nil, []byte(pub.body))
		require.NoError(t, err)
	}
	call(t, c, ch, 2, &QueueDeclare{Queue: "q"})
	call(t, c, ch, 3, &BasicGet{Queue: "q"})
	call(t, c, ch, 4, &BasicConsume{Queue: "q", ConsumerTag: "ctag"})
	require.NoError(t, c.UpdateSecret(5, []byte("s"), "r"))
	id, err := c.OpenChannel(6)
	require.NoError(t, err)
	require.Equal(t, uint16(2), id)
	c.TakeOutgoing(t0, nil)
	require.Empty(t, drain(c))
	return c
}

func FuzzConnAfterHandshake(f *testing.F) {
	body := make([]byte, 5000)
	for i := range body {
		body[i] = byte(i)
	}
	seeds := [][]byte{
		seedFrames(f, chm{1, &QueueDeclareOk{Queue: "q"}}, content{1, &BasicGetOk{DeliveryTag: 1}, Properties{}, []byte("m")},
			chm{1, &BasicConsumeOk{ConsumerTag: "ctag"}}),
		seedFrames(f, content{1, &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1},
			Properties{ContentType: "text/plain", Headers: Table{"k": "v", "n": int32(1)}}, body}),
		seedFrames(f, content{1, &BasicReturn{ReplyCode: 312, Exchange: "ex", RoutingKey: "b"}, Properties{}, []byte("bb")},
			chm{1, &BasicAck{DeliveryTag: 2}}, chm{1, &BasicNack{DeliveryTag: 3, Multiple: true}}),
		seedFrames(f, chm{1, &BasicAck{DeliveryTag: 0, Multiple: true}}, AppendHeartbeat(nil)),
		seedFrames(f, chm{1, &ChannelFlow{Active: false}}, chm{1, &BasicCancel{ConsumerTag: "ctag"}},
			chm{0, &ConnectionBlocked{Reason: "mem"}}, chm{0, &ConnectionUnblocked{}}),
		seedFrames(f, chm{1, &ChannelClose{ReplyCode: 404, ReplyText: "NOT_FOUND"}}, chm{2, &ChannelOpenOk{}}),
		seedFrames(f, chm{2, &ChannelOpenOk{}}, chm{0, &ConnectionUpdateSecretOk{}},
			chm{0, &ConnectionClose{ReplyCode: 320, ReplyText: "CONNECTION_FORCED"}}),
		seedFrames(f, chm{1, &QueueDeclareOk{Queue: "q"}}, chm{1, &BasicGetEmpty{}}, chm{1, &BasicConsumeOk{ConsumerTag: "ctag"}},
			content{1, &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 2}, Properties{}, nil}),
		seedFrames(f, content{1, &BasicDeliver{ConsumerTag: "ctag"}, Properties{}, []byte("abc")})[:30],
		{1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 80, 0xce},
		{'A', 'M', 'Q', 'P', 0, 0, 9, 1},
	}
	for _, s := range seeds {
		f.Add(s, uint16(0xffff))
		f.Add(s, uint16(0))
		f.Add(s, uint16(6))
	}

	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		c := fuzzSetup(t)
		step := int(chunk) + 1
		var evs []Event
		out := 0
		var buf []byte
		now := t0
		reads := 0
		for off := 0; off < len(data); off += step {
			buf = append(buf, data[off:min(off+step, len(data))]...)
			n := c.Receive(now, buf)
			if n < 0 || n > len(buf) {
				t.Fatalf("Receive used %d of %d bytes", n, len(buf))
			}
			buf = append([]byte(nil), buf[n:]...)
			if len(buf) > 4096 {
				t.Fatalf("%d bytes held: more than frame_max", len(buf))
			}
			evs = append(evs, drain(c)...)
			now = now.Add(3 * time.Second)
			c.HandleTimeout(now)
			out += len(c.TakeOutgoing(now, nil))
			reads++
		}
		c.ConnectionLost(io.EOF)
		evs = append(evs, drain(c)...)
		out += len(c.TakeOutgoing(now, nil))

		if len(evs) >= len(data)+10+8 { // 8 outcomes were pending from the setup
			t.Fatalf("%d events from %d bytes", len(evs), len(data))
		}
		if bound := 2*len(data) + 8*reads + 1024; out > bound {
			t.Fatalf("%d bytes sent for %d received (bound %d)", out, len(data), bound)
		}

		// The connection ended exactly once, last, with a typed error.
		last := evs[len(evs)-1]
		if last.Kind != EventConnectionClosed {
			t.Fatalf("last event is %v", last.Kind)
		}
		checkEndError(t, last.Err)

		// Every request and publish has exactly one outcome.
		replies := map[uint64]int{}
		confirms := map[uint64]int{}
		for _, ev := range evs[:len(evs)-1] {
			switch ev.Kind {
			case EventConnectionClosed:
				t.Fatalf("EventConnectionClosed before the last event")
			case EventReply:
				replies[ev.Token]++
				if (ev.Err == nil) == (ev.Method == nil) {
					t.Fatalf("reply %d: method %v, error %v", ev.Token, ev.Method, ev.Err)
				}
			case EventConfirm:
				confirms[ev.Seq]++
			case EventReturn:
				if ev.Seq != 0 && ev.Seq != 1 && ev.Seq != 2 {
					t.Fatalf("return paired with seq %d, which was not a mandatory publish", ev.Seq)
				}
			}
		}
		require.Equal(t, map[uint64]int{2: 1, 3: 1, 4: 1, 5: 1, 6: 1}, replies)
		require.Equal(t, map[uint64]int{1: 1, 2: 1, 3: 1}, confirms)
	})
}

// checkEndError fails unless err is nil or one of the errors a connection
// may end with.
func checkEndError(t *testing.T, err error) {
	t.Helper()
	if err == nil || errors.Is(err, ErrHeartbeatTimeout) || errors.Is(err, io.EOF) {
		return
	}
	var ce *CloseError
	var e *Error
	var ve *VersionError
	var he *HandshakeError
	if errors.As(err, &ce) || errors.As(err, &e) || errors.As(err, &ve) || errors.As(err, &he) {
		return
	}
	t.Fatalf("the connection ended with %T: %v", err, err)
}

// prog reads a fuzz program's bytes; past the end it reads zeros.
type prog struct{ b []byte }

func (p *prog) more() bool { return len(p.b) > 0 }

func (p *prog) byte() byte {
	if len(p.b) == 0 {
		return 0
	}
	v := p.b[0]
	p.b = p.b[1:]
	return v
}

func (p *prog) bytes(n int) []byte {
	n = min(n, len(p.b))
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}

// FuzzConnOps runs programs that mix client operations with broker frames
// (well-formed ones, chosen by the program, and raw bytes) on a connection
// with channel_max 3, and checks that every request and publish gets exactly
// one outcome and that nothing follows EventConnectionClosed.
func FuzzConnOps(f *testing.F) {
	f.Add([]byte{0, 1, 0, 11, 1, 1, 0, 12, 1, 3, 1, 1, 1, 9, 1, 1, 4, 1, 0, 1, 1, 5, 1, 1})
	f.Add([]byte{0, 1, 0, 11, 1, 3, 1, 1, 1, 1, 7, 1, 3, 1, 2, 1, 0, 7, 1, 1, 6, 1})
	f.Add([]byte{0, 0, 0, 0, 11, 1, 0, 11, 2, 0, 11, 3, 0, 8, 2, 11, 2, 2, 0, 1, 5, 3, 11, 3, 1})
	f.Add([]byte{0, 1, 0, 11, 1, 1, 0, 12, 1, 3, 1, 1, 3, 1, 1, 7, 1, 0, 4, 1, 0, 1, 6, 9, 12, 0, 13})
	f.Add([]byte{0, 1, 0, 11, 1, 1, 2, 11, 1, 8, 1, 20, 11, 1, 9, 11, 1, 8, 1, 200, 5, 1, 11, 1, 2})
	f.Add([]byte{0, 1, 0, 11, 1, 1, 1, 1, 1, 2, 2, 1, 1, 11, 1, 3, 11, 1, 3})
	f.Add([]byte{10, 5, 1, 0, 1, 0, 0, 0, 6, 0, 7, 11, 1, 0})
	// open channel 1, open-ok, basic.get, get-ok cut short, connection lost
	f.Add([]byte{0, 10, 1, 0, 0, 1, 1, 1, 10, 1, 1, 18})
	// the same with a close of channel 1 while the get-ok's content is due
	f.Add([]byte{0, 10, 1, 0, 0, 1, 1, 1, 10, 1, 3, 18, 5, 1, 10, 1, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, p := openConnWith(t, Config{Auth: []Auth{guest()}, ChannelMax: 3},
			&ConnectionTune{ChannelMax: 2047, FrameMax: 4096, Heartbeat: 10})
		r := &prog{b: b}
		now := t0
		expect := map[uint64]int{} // token: EventReply events it must get
		confirms := map[[2]uint64]int{}
		got := map[uint64]int{}
		gotConfirms := map[[2]uint64]int{}
		token := uint64(0)
		closed := false
		var pending []byte

		collect := func() {
			for _, ev := range drain(c) {
				if closed {
					t.Fatalf("%v after EventConnectionClosed", ev.Kind)
				}
				switch ev.Kind {
				case EventReply:
					got[ev.Token]++
				case EventConfirm:
					gotConfirms[[2]uint64{uint64(ev.Channel), ev.Seq}]++
				case EventConnectionClosed:
					closed = true
					checkEndError(t, ev.Err)
				}
			}
			c.TakeOutgoing(now, nil)
		}
		feed := func(in []byte) {
			buf := append(pending, in...)
			n := c.Receive(now, buf)
			pending = append([]byte(nil), buf[n:]...)
		}
		chans := func() uint16 { return uint16(r.byte() % 4) }

		for r.more() {
			switch op := r.byte() % 12; op {
			case 0:
				token++
				if _, err := c.OpenChannel(token); err == nil {
					expect[token] = 1
				}
			case 1, 2: // a request, queued or not
				token++
				ms := []Method{&QueueDeclare{Queue: "q"}, &BasicGet{Queue: "q"}, &ConfirmSelect{},
					&QueueDeclare{Queue: "q", NoWait: true}, &BasicAck{DeliveryTag: 1}, &BasicQos{PrefetchCount: 1}}
				m := ms[int(r.byte())%len(ms)]
				if err := c.Call(chans(), token, m); err == nil && ExpectsReply(m) {
					expect[token] = 1
				}
			case 3:
				if token > 0 {
					tk := token - uint64(r.byte())%token
					if c.CancelRequest(chans(), tk) {
						if expect[tk] != 1 {
							t.Fatalf("CancelRequest withdrew token %d, which was not waiting", tk)
						}
						expect[tk] = 0
					}
				}
			case 4:
				ch := chans()
				mandatory := r.byte()
				seq, err := publish(c, ch, &BasicPublish{RoutingKey: string('a' + mandatory%2), Mandatory: mandatory&2 != 0},
					nil, bytes.Repeat([]byte("x"), int(mandatory%2)+1))
				if err == nil && seq != 0 {
					confirms[[2]uint64{uint64(ch), seq}]++
				}
			case 5:
				token++
				if c.CloseChannel(chans(), token) == nil {
					expect[token] = 1
				}
			case 6:
				c.Close(ReplySuccess, "")
			case 7:
				token++
				if c.UpdateSecret(token, []byte("s"), "") == nil {
					expect[token] = 1
				}
			case 8:
				now = now.Add(time.Duration(r.byte()%16) * time.Second)
				c.HandleTimeout(now)
			case 9:
				feed(r.bytes(int(r.byte() % 32)))
			case 10, 11:
				feed(brokerFrame(t, p, r))
			}
			collect()
		}
		c.ConnectionLost(io.EOF)
		collect()
		require.True(t, closed)
		for tk, n := range expect {
			require.Equal(t, n, got[tk], "EventReply events for token %d", tk)
		}
		for tk, n := range got {
			require.Equal(t, expect[tk], n, "EventReply events for token %d", tk)
		}
		for k, n := range confirms {
			require.Equal(t, n, gotConfirms[k], "EventConfirm events for channel %d seq %d", k[0], k[1])
		}
		for k, n := range gotConfirms {
			require.Equal(t, confirms[k], n, "EventConfirm events for channel %d seq %d", k[0], k[1])
		}
	})
}

// brokerFrame encodes a broker frame the program chooses.
func brokerFrame(t *testing.T, p *peer, r *prog) []byte {
	ch := uint16(r.byte() % 4)
	arg := r.byte()
	switch r.byte() % 19 {
	case 0:
		return p.method(ch, &ChannelOpenOk{})
	case 1:
		return p.method(ch, &ChannelClose{ReplyCode: uint16(NotFound)})
	case 2:
		return p.method(ch, &ChannelCloseOk{})
	case 3:
		return p.method(ch, &QueueDeclareOk{Queue: "q"})
	case 4:
		return p.method(ch, &BasicAck{DeliveryTag: uint64(arg % 8), Multiple: arg&8 != 0})
	case 5:
		return p.method(ch, &BasicNack{DeliveryTag: uint64(arg % 8), Multiple: arg&8 != 0})
	case 6:
		return p.content(ch, &BasicReturn{ReplyCode: uint16(noRoute), RoutingKey: string('a' + arg%2)}, nil,
			bytes.Repeat([]byte("x"), int(arg%2)+1), 4096)
	case 7:
		return p.content(ch, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}, nil, make([]byte, int(arg)*40), 4096)
	case 8:
		return p.content(ch, &BasicGetOk{DeliveryTag: 1}, nil, make([]byte, int(arg)*40), 4096)
	case 9:
		return p.method(ch, &BasicGetEmpty{})
	case 10:
		return p.method(ch, &ChannelFlow{Active: arg&1 != 0})
	case 11:
		return p.method(ch, &BasicCancel{ConsumerTag: "c", NoWait: arg&1 != 0})
	case 12:
		return p.method(ch, &ConfirmSelectOk{})
	case 13:
		return p.method(0, &ConnectionClose{ReplyCode: uint16(ConnectionForced)})
	case 14:
		return p.method(0, &ConnectionCloseOk{})
	case 15:
		return heartbeatFrame
	case 16:
		return p.method(0, &ConnectionUpdateSecretOk{})
	case 17:
		return p.method(ch, &BasicQosOk{})
	default: // a content cut short: the method frame and perhaps the header
		var m Method = &BasicDeliver{ConsumerTag: "c"}
		if arg&1 != 0 {
			m = &BasicGetOk{DeliveryTag: 1}
		}
		full := p.content(ch, m, nil, []byte("abc"), 4096)
		_, n, err := ParseFrame(full, 0)
		require.NoError(t, err)
		if arg&2 != 0 {
			_, n2, err := ParseFrame(full[n:], 0)
			require.NoError(t, err)
			n += n2
		}
		return full[:n]
	}
}
