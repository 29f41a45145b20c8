// Package fakebroker plays the broker's side of an AMQP 0-9-1 connection
// in tests, scripted frame by frame with the same codec the client uses
// (internal/sansio). It is for what a real RabbitMQ will not do on demand:
// malformed frames, silence, a socket nobody reads, a basic.cancel or a
// nack at a chosen moment. Behaviour a real broker shows is tested against
// one, in tests/.
//
// A script is a function run in a goroutine of its own with the broker's
// end of the connection:
//
//	client, done := fakebroker.Pipe(t, func(b *fakebroker.Broker) {
//		b.Handshake(0)
//		ch := b.OpenChannel()
//		m := fakebroker.Expect[*sansio.BasicConsume](b)
//		b.Send(ch, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
//		b.AnswerClose()
//	})
//
// The client is then dialed over client. A script fails its test through
// testing.TB when the client sends something else than it expects; since
// it runs outside the test's goroutine, such a failure only ends the
// script (and closes the broker's end), so the test fails when the client
// notices, not at once.
//
// A Broker is used by one goroutine, its script's.
package fakebroker

import (
	"errors"
	"io"
	"net"
	"testing"

	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// FrameMax is the frame size the broker offers in Handshake and uses to
// split the bodies it sends.
const FrameMax = 131072

// Broker is the broker's end of one connection.
type Broker struct {
	t   testing.TB
	nc  net.Conn
	dec sansio.Decoder
	buf []byte // read and not yet parsed: buf[off:]
	off int
}

// Frame is one frame the client sent. Method is set for method frames,
// Payload for the others. The caller owns both (they borrow nothing).
type Frame struct {
	Channel uint16
	Type    uint8 // sansio.FrameMethod, FrameHeader, FrameBody, FrameHeartbeat
	Method  sansio.Method
	Payload []byte
}

// New returns a Broker on nc, the broker's end of a connection. Most tests
// use Pipe or Start instead.
func New(t testing.TB, nc net.Conn) *Broker {
	return &Broker{t: t, nc: nc}
}

// Start runs script with a Broker on nc in a goroutine of its own, which
// closes nc when script returns and then closes the returned channel.
// The script must return by the end of the test: when the client closes,
// Next fails, which is the usual way out.
func Start(t testing.TB, nc net.Conn, script func(b *Broker)) <-chan struct{} {
	b := New(t, nc)
	done := make(chan struct{})
	go func() { // owned by the test; exits when script returns
		defer close(done)
		defer nc.Close()
		script(b)
	}()
	return done
}

// Pipe starts script on one end of a net.Pipe and returns the other end,
// for the client, with the channel Start returns.
func Pipe(t testing.TB, script func(b *Broker)) (client net.Conn, done <-chan struct{}) {
	client, server := net.Pipe()
	return client, Start(t, server, script)
}

// TCPPair returns both ends of a loopback TCP connection, closed at the
// end of the test: for tests that need a socket's buffering, which
// net.Pipe lacks. Start the script on server.
func TCPPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	sc, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() {
		nc.Close()
		sc.Close()
	})
	return nc.(*net.TCPConn), sc.(*net.TCPConn)
}

// T is the test the broker was made for, for a script's own checks.
func (b *Broker) T() testing.TB { return b.t }

// Conn is the broker's end of the connection, for scripts that read or
// write raw bytes.
func (b *Broker) Conn() net.Conn { return b.nc }

// Next reads the client's next frame, heartbeats included. It fails when
// the client closed the connection or sent a frame the codec rejects.
func (b *Broker) Next() (Frame, error) {
	for {
		f, n, err := sansio.ParseFrame(b.buf[b.off:], 0)
		if err != nil {
			return Frame{}, err
		}
		if n > 0 {
			b.off += n
			return b.frame(f)
		}
		if err := b.read(); err != nil {
			return Frame{}, err
		}
	}
}

func (b *Broker) frame(f sansio.Frame) (Frame, error) {
	r := Frame{Channel: f.Channel, Type: f.Type}
	if f.Type != sansio.FrameMethod {
		r.Payload = append([]byte(nil), f.Payload...)
		return r, nil
	}
	m, err := b.dec.DecodeMethod(f.Payload)
	if err != nil {
		return Frame{}, err
	}
	r.Method = sansio.CloneMethod(m)
	return r, nil
}

// read appends what the client sent next to the unparsed bytes.
func (b *Broker) read() error {
	b.buf, b.off = b.buf[:copy(b.buf, b.buf[b.off:])], 0
	chunk := make([]byte, 65536)
	k, err := b.nc.Read(chunk)
	b.buf = append(b.buf, chunk[:k]...)
	if err != nil && k == 0 {
		return err
	}
	return nil
}

// Expect reads frames, skipping heartbeats, until a method frame, and
// fails the test unless it is a T.
func Expect[T sansio.Method](b *Broker) T {
	b.t.Helper()
	r := b.nextNonHeartbeat()
	require.Equal(b.t, sansio.FrameMethod, int(r.Type), "expected a method frame")
	m, ok := r.Method.(T)
	require.True(b.t, ok, "got %s", r.Method.ID())
	return m
}

// Content is a method with content the client sent, such as a
// basic.publish, with its properties and body.
type Content[T sansio.Method] struct {
	Channel    uint16
	Method     T
	Properties sansio.Properties
	Body       []byte
}

// ExpectContent is Expect for a method with content: it also reads the
// content header and body frames that follow on the same channel.
func ExpectContent[T sansio.Method](b *Broker) Content[T] {
	b.t.Helper()
	r := b.nextNonHeartbeat()
	m, ok := r.Method.(T)
	require.True(b.t, ok, "got frame type %d, method %v", r.Type, r.Method)
	c := Content[T]{Channel: r.Channel, Method: m}
	r = b.nextNonHeartbeat()
	require.Equal(b.t, sansio.FrameHeader, int(r.Type), "expected a content header")
	var h sansio.ContentHeader
	require.NoError(b.t, b.dec.DecodeContentHeader(r.Payload, &h))
	c.Properties = h.Properties
	c.Body = []byte{}
	for uint64(len(c.Body)) < h.BodySize {
		r = b.nextNonHeartbeat()
		require.Equal(b.t, sansio.FrameBody, int(r.Type), "expected a body frame")
		c.Body = append(c.Body, r.Payload...)
	}
	return c
}

func (b *Broker) nextNonHeartbeat() Frame {
	b.t.Helper()
	for {
		r, err := b.Next()
		require.NoError(b.t, err)
		if r.Type != sansio.FrameHeartbeat {
			return r
		}
	}
}

// Send writes method m on channel ch.
func (b *Broker) Send(ch uint16, m sansio.Method) {
	b.t.Helper()
	p, err := sansio.AppendMethodFrame(nil, ch, m)
	require.NoError(b.t, err)
	b.Write(p)
}

// SendContent writes method m (basic.deliver, basic.return, basic.get-ok)
// on channel ch, followed by its content header and body frames, in one
// write.
func (b *Broker) SendContent(ch uint16, m sansio.Method, props *sansio.Properties, body []byte) {
	b.t.Helper()
	if props == nil {
		props = &sansio.Properties{}
	}
	p, err := sansio.AppendMethodFrame(nil, ch, m)
	require.NoError(b.t, err)
	p, err = sansio.AppendContentHeaderFrame(p, ch, sansio.ClassBasic, uint64(len(body)), props)
	require.NoError(b.t, err)
	b.Write(sansio.AppendBodyFrames(p, ch, body, FrameMax))
}

// Deliver sends a basic.deliver of body to consumer tag on channel ch,
// from a queue named "q".
func (b *Broker) Deliver(ch uint16, tag string, deliveryTag uint64, body []byte) {
	b.t.Helper()
	b.SendContent(ch, &sansio.BasicDeliver{ConsumerTag: tag, DeliveryTag: deliveryTag, RoutingKey: "q"}, nil, body)
}

// Write writes raw bytes. A client that has closed its end is not an
// error: a script may outlive the client's interest.
func (b *Broker) Write(p []byte) {
	b.t.Helper()
	_, err := b.nc.Write(p)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		require.NoError(b.t, err)
	}
}

// Handshake plays the broker's part of the handshake, from the protocol
// header to connection.open-ok, offering PLAIN, 16 channels, FrameMax and
// the given heartbeat interval in seconds. The server properties carry
// product "fake".
func (b *Broker) Handshake(heartbeat uint16) {
	b.t.Helper()
	header := make([]byte, 8)
	_, err := io.ReadFull(b.nc, header)
	require.NoError(b.t, err)
	require.Equal(b.t, sansio.ProtocolHeader[:], header)
	b.Send(0, &sansio.ConnectionStart{VersionMajor: 0, VersionMinor: 9, Mechanisms: []byte("PLAIN"), Locales: []byte("en_US"),
		ServerProperties: sansio.Table{"product": "fake"}})
	Expect[*sansio.ConnectionStartOk](b)
	b.Send(0, &sansio.ConnectionTune{ChannelMax: 16, FrameMax: FrameMax, Heartbeat: heartbeat})
	Expect[*sansio.ConnectionTuneOk](b)
	Expect[*sansio.ConnectionOpen](b)
	b.Send(0, &sansio.ConnectionOpenOk{})
}

// OpenChannel answers the client's next frame, which must be a
// channel.open, and returns the channel's number.
func (b *Broker) OpenChannel() uint16 {
	b.t.Helper()
	r, err := b.Next()
	require.NoError(b.t, err)
	_, ok := r.Method.(*sansio.ChannelOpen)
	require.True(b.t, ok, "expected channel.open, got %v", r.Method)
	b.Send(r.Channel, &sansio.ChannelOpenOk{})
	return r.Channel
}

// AnswerClose reads and ignores frames until the client's
// connection.close, which it answers, or until the connection fails.
func (b *Broker) AnswerClose() {
	for {
		r, err := b.Next()
		if err != nil {
			return
		}
		if _, ok := r.Method.(*sansio.ConnectionClose); ok {
			b.Send(0, &sansio.ConnectionCloseOk{})
			return
		}
	}
}
