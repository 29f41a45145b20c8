package actor

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// fakeBroker is the broker's end of a net.Pipe, scripted by a test with the
// same codec the client uses. It exists for faults a real RabbitMQ will not
// produce on demand: malformed frames, silence, a socket nobody reads.
type fakeBroker struct {
	t   testing.TB
	nc  net.Conn
	dec sansio.Decoder
	buf []byte // read and not yet parsed: buf[off:]
	off int
}

// received is one frame the client sent.
type received struct {
	channel uint16
	typ     uint8
	method  sansio.Method
}

// next reads the client's next frame.
func (b *fakeBroker) next() (received, error) {
	for {
		f, n, err := sansio.ParseFrame(b.buf[b.off:], 0)
		if err != nil {
			return received{}, err
		}
		if n > 0 {
			r := received{channel: f.Channel, typ: f.Type}
			if f.Type == sansio.FrameMethod {
				m, err := b.dec.DecodeMethod(f.Payload)
				if err != nil {
					return received{}, err
				}
				r.method = sansio.CloneMethod(m)
			}
			b.off += n
			return r, nil
		}
		b.buf, b.off = b.buf[:copy(b.buf, b.buf[b.off:])], 0
		chunk := make([]byte, 65536)
		k, err := b.nc.Read(chunk)
		b.buf = append(b.buf, chunk[:k]...)
		if err != nil && k == 0 {
			return received{}, err
		}
	}
}

// expect reads frames, skipping heartbeats, until a method frame, and
// requires it to be of type T.
func expect[T sansio.Method](b *fakeBroker) T {
	b.t.Helper()
	for {
		r, err := b.next()
		require.NoError(b.t, err)
		if r.typ == sansio.FrameHeartbeat {
			continue
		}
		require.Equal(b.t, sansio.FrameMethod, int(r.typ), "expected a method frame")
		m, ok := r.method.(T)
		require.True(b.t, ok, "got %s", r.method.ID())
		return m
	}
}

func (b *fakeBroker) send(ch uint16, m sansio.Method) {
	b.t.Helper()
	p, err := sansio.AppendMethodFrame(nil, ch, m)
	require.NoError(b.t, err)
	b.write(p)
}

func (b *fakeBroker) write(p []byte) {
	_, err := b.nc.Write(p)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		require.NoError(b.t, err)
	}
}

func (b *fakeBroker) deliver(ch uint16, tag string, deliveryTag uint64, body []byte) {
	p, err := sansio.AppendMethodFrame(nil, ch, &sansio.BasicDeliver{ConsumerTag: tag, DeliveryTag: deliveryTag, RoutingKey: "q"})
	require.NoError(b.t, err)
	p, err = sansio.AppendContentHeaderFrame(p, ch, sansio.ClassBasic, uint64(len(body)), &sansio.Properties{})
	require.NoError(b.t, err)
	b.write(sansio.AppendBodyFrames(p, ch, body, 131072))
}

// handshake plays the broker's part of the handshake.
func (b *fakeBroker) handshake(heartbeat uint16) {
	b.t.Helper()
	header := make([]byte, 8)
	_, err := io.ReadFull(b.nc, header)
	require.NoError(b.t, err)
	require.Equal(b.t, sansio.ProtocolHeader[:], header)
	b.send(0, &sansio.ConnectionStart{VersionMajor: 0, VersionMinor: 9, Mechanisms: []byte("PLAIN"), Locales: []byte("en_US"),
		ServerProperties: sansio.Table{"product": "fake"}})
	expect[*sansio.ConnectionStartOk](b)
	b.send(0, &sansio.ConnectionTune{ChannelMax: 16, FrameMax: 131072, Heartbeat: heartbeat})
	expect[*sansio.ConnectionTuneOk](b)
	expect[*sansio.ConnectionOpen](b)
	b.send(0, &sansio.ConnectionOpenOk{})
}

// openChannel answers channel.open.
func (b *fakeBroker) openChannel() uint16 {
	b.t.Helper()
	r, err := b.next()
	require.NoError(b.t, err)
	_, ok := r.method.(*sansio.ChannelOpen)
	require.True(b.t, ok)
	b.send(r.channel, &sansio.ChannelOpenOk{})
	return r.channel
}

// answerClose answers the client's connection.close, if it comes.
func (b *fakeBroker) answerClose() {
	for {
		r, err := b.next()
		if err != nil {
			return
		}
		if _, ok := r.method.(*sansio.ConnectionClose); ok {
			b.send(0, &sansio.ConnectionCloseOk{})
			return
		}
	}
}

// pipeConn dials a Conn over a net.Pipe whose other end the script drives
// in its own goroutine, which must return when done. The Conn is closed and
// the script awaited at the end of the test.
func pipeConn(t *testing.T, cfg Config, script func(b *fakeBroker)) (*Conn, <-chan struct{}) {
	t.Helper()
	client, server := net.Pipe()
	return scriptedConn(t, cfg, client, server, script)
}

// tcpConn is pipeConn over a loopback TCP connection with small socket
// buffers, so that the loop's non-blocking writes fill the socket quickly
// (smaller buffers than these make loopback TCP stall for seconds).
func tcpConn(t *testing.T, cfg Config, script func(b *fakeBroker)) *Conn {
	t.Helper()
	client, server := tcpPair(t)
	require.NoError(t, client.SetWriteBuffer(64<<10))
	require.NoError(t, server.SetReadBuffer(64<<10))
	c, _ := scriptedConn(t, cfg, client, server, script)
	return c
}

// tcpPair returns both ends of a loopback TCP connection, closed at the end
// of the test.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
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

func scriptedConn(t *testing.T, cfg Config, client, server net.Conn, script func(b *fakeBroker)) (*Conn, <-chan struct{}) {
	t.Helper()
	b := &fakeBroker{t: t, nc: server}
	scriptDone := make(chan struct{})
	go func() {
		defer close(scriptDone)
		defer server.Close()
		script(b)
	}()
	if cfg.Core.Auth == nil {
		cfg.Core.Auth = []sansio.Auth{&sansio.PlainAuth{Username: "guest", Password: "guest"}}
	}
	c, err := Dial(context.Background(), client, cfg)
	if err != nil {
		<-scriptDone
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
		<-scriptDone
	})
	return c, scriptDone
}
