package sansio

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// t0 is the start of every transcript's clock.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// peer is the broker's side of a transcript: it encodes what the broker
// sends and decodes what the client sent.
type peer struct {
	t   testing.TB
	dec Decoder
}

func (p *peer) method(ch uint16, m Method) []byte {
	b, err := AppendMethodFrame(nil, ch, m)
	require.NoError(p.t, err)
	return b
}

// content encodes a content-carrying method with its header and body frames.
func (p *peer) content(ch uint16, m Method, props *Properties, body []byte, frameMax uint32) []byte {
	b := p.method(ch, m)
	b, err := AppendContentHeaderFrame(b, ch, ClassBasic, uint64(len(body)), props)
	require.NoError(p.t, err)
	return AppendBodyFrames(b, ch, body, frameMax)
}

// frames decodes the client's output into methods (content frames are
// returned as nil entries) so tests can check what was sent.
func (p *peer) frames(out []byte) []sent {
	var got []sent
	for len(out) > 0 {
		if out[0] == 'A' {
			require.Equal(p.t, ProtocolHeader[:], out[:8])
			got = append(got, sent{header: true})
			out = out[8:]
			continue
		}
		f, n, err := ParseFrame(out, 0)
		require.NoError(p.t, err)
		require.NotZero(p.t, n, "client sent a partial frame")
		s := sent{channel: f.Channel, frameType: f.Type}
		if f.Type == FrameMethod {
			m, err := p.dec.DecodeMethod(f.Payload)
			require.NoError(p.t, err)
			s.method = cloneMethod(m)
		} else {
			s.payload = append([]byte(nil), f.Payload...)
		}
		got = append(got, s)
		out = out[n:]
	}
	return got
}

type sent struct {
	header    bool
	channel   uint16
	frameType uint8
	method    Method
	payload   []byte
}

// drive feeds input to c in one piece and returns the events and the sent
// frames.
func drive(t testing.TB, c *Conn, now time.Time, input []byte) []Event {
	t.Helper()
	n := c.Receive(now, input)
	require.Equal(t, len(input), n, "Receive left complete input unused")
	return drain(c)
}

func drain(c *Conn) []Event {
	var evs []Event
	for {
		ev, ok := c.NextEvent()
		if !ok {
			return evs
		}
		evs = append(evs, ev)
	}
}

// rabbitStart is a connection.start like RabbitMQ's.
func rabbitStart() *ConnectionStart {
	return &ConnectionStart{
		VersionMajor: 0, VersionMinor: 9,
		ServerProperties: Table{
			"product": "RabbitMQ", "version": "3.10.8", "platform": "Erlang/OTP 25",
			"capabilities": Table{"publisher_confirms": true, "basic.nack": true, "consumer_cancel_notify": true},
		},
		Mechanisms: []byte("AMQPLAIN EXTERNAL PLAIN"),
		Locales:    []byte("en_US"),
	}
}

// openConn runs a PLAIN handshake with frame_max 4096 and heartbeat hb
// seconds, and returns the open Conn with its output drained.
func openConn(t testing.TB, hb uint16) (*Conn, *peer) {
	t.Helper()
	p := &peer{t: t}
	c := NewConn(Config{Auth: []Auth{&PlainAuth{Username: "guest", Password: "guest"}}})
	c.Start(t0)
	var in []byte
	in = append(in, p.method(0, rabbitStart())...)
	in = append(in, p.method(0, &ConnectionTune{ChannelMax: 2047, FrameMax: 4096, Heartbeat: hb})...)
	in = append(in, p.method(0, &ConnectionOpenOk{})...)
	evs := drive(t, c, t0, in)
	require.Len(t, evs, 1)
	require.Equal(t, EventConnected, evs[0].Kind)
	c.TakeOutgoing(t0, nil)
	return c, p
}

// openChannel opens channel 1 on c.
func openChannel(t testing.TB, c *Conn, p *peer) uint16 {
	t.Helper()
	id, err := c.OpenChannel(100)
	require.NoError(t, err)
	evs := drive(t, c, t0, p.method(id, &ChannelOpenOk{}))
	require.Len(t, evs, 1)
	require.Equal(t, EventReply, evs[0].Kind)
	require.Equal(t, uint64(100), evs[0].Token)
	c.TakeOutgoing(t0, nil)
	return id
}

// guest is the PLAIN mechanism with RabbitMQ's default credentials.
func guest() Auth { return &PlainAuth{Username: "guest", Password: "guest"} }

// startConn returns a started Conn for cfg with the protocol header taken
// from its output.
func startConn(t testing.TB, cfg Config) (*Conn, *peer) {
	t.Helper()
	c := NewConn(cfg)
	c.Start(t0)
	got := (&peer{t: t}).frames(c.TakeOutgoing(t0, nil))
	require.Equal(t, []sent{{header: true}}, got)
	return c, &peer{t: t}
}

// openConnWith runs a handshake for cfg against a broker that proposes tune,
// and returns the open Conn with its output drained.
func openConnWith(t testing.TB, cfg Config, tune *ConnectionTune) (*Conn, *peer) {
	t.Helper()
	c, p := startConn(t, cfg)
	in := p.method(0, rabbitStart())
	in = append(in, p.method(0, tune)...)
	in = append(in, p.method(0, &ConnectionOpenOk{})...)
	evs := drive(t, c, t0, in)
	require.Equal(t, []EventKind{EventConnected}, kinds(evs))
	c.TakeOutgoing(t0, nil)
	return c, p
}

// sent takes the client's output and decodes it.
func (p *peer) sent(c *Conn) []sent {
	p.t.Helper()
	return p.frames(c.TakeOutgoing(t0, nil))
}

// sentMethods takes the client's output and returns its methods; it fails
// when the output holds anything but method frames.
func (p *peer) sentMethods(c *Conn) []Method {
	p.t.Helper()
	var ms []Method
	for _, s := range p.sent(c) {
		require.Equal(p.t, uint8(FrameMethod), s.frameType, "expected only method frames")
		ms = append(ms, s.method)
	}
	return ms
}

// cat concatenates byte slices: a transcript's pieces.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func kinds(evs []Event) []EventKind {
	var ks []EventKind
	for _, ev := range evs {
		ks = append(ks, ev.Kind)
	}
	return ks
}

// call is c.Call that must succeed.
func call(t testing.TB, c *Conn, ch uint16, token uint64, m Method) {
	t.Helper()
	require.NoError(t, c.Call(ch, token, m))
}

// publish encodes a publish for c and hands it over, to be copied.
func publish(c *Conn, id uint16, m *BasicPublish, props *Properties, body []byte) (uint64, error) {
	frames, err := AppendPublish(nil, id, m, props, body, c.Tuning().FrameMax)
	if err != nil {
		return 0, err
	}
	seq, _, err := c.Publish(id, m, frames, nil, false)
	return seq, err
}
