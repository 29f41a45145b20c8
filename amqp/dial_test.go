package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// A Config.Dial that returns neither a connection nor an error makes
// DialConfig fail, rather than crash a goroutine of the connection.
func TestDialFunctionReturningNothingFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := DialConfig(ctx, "amqp://x/", Config{Dial: func(ctx context.Context, n, a string) (net.Conn, error) { return nil, nil }})
	require.Error(t, err)
}

// A dial cut short by the context's deadline matches the context's error,
// though net calls it an i/o timeout.
func TestDialTimeoutMatchesTheContextsError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := DialConfig(ctx, "amqp://x/", Config{Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: n, Err: os.ErrDeadlineExceeded}
	}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var de *DialError
	require.ErrorAs(t, err, &de)
}

// dialPipe dials through a net.Pipe whose other end runs script.
func dialPipe(t *testing.T, cfg Config, script func(b *fakebroker.Broker)) (*Conn, error) {
	t.Helper()
	client, done := fakebroker.Pipe(t, script)
	t.Cleanup(func() { client.Close(); <-done })
	cfg.Dial = func(context.Context, string, string) (net.Conn, error) { return client, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return DialConfig(ctx, "amqp://fake/", cfg)
}

// startAuth plays the broker up to the client's connection.start-ok, with
// the capabilities RabbitMQ announces.
func startAuth(b *fakebroker.Broker) {
	header := make([]byte, 8)
	_, err := io.ReadFull(b.Conn(), header)
	if err != nil {
		return
	}
	b.Send(0, &sansio.ConnectionStart{VersionMajor: 0, VersionMinor: 9, Mechanisms: []byte("PLAIN"), Locales: []byte("en_US"),
		ServerProperties: sansio.Table{"product": "fake", "capabilities": sansio.Table{"authentication_failure_close": true}}})
	fakebroker.Expect[*sansio.ConnectionStartOk](b)
}

// A broker may offer a frame_max up to 4 GiB; a received frame is held
// whole, so the client accepts at most 1 MiB unless Config.FrameMax asks
// for more.
func TestDialCapsTheBrokersFrameMax(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  uint32
		want uint32
	}{
		{"default", 0, 1 << 20},
		{"explicit", 8 << 20, 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tuneOk := make(chan uint32, 1)
			c, err := dialPipe(t, Config{FrameMax: tc.cfg}, func(b *fakebroker.Broker) {
				startAuth(b)
				b.Send(0, &sansio.ConnectionTune{ChannelMax: 16, FrameMax: 1<<32 - 1})
				tuneOk <- fakebroker.Expect[*sansio.ConnectionTuneOk](b).FrameMax
				fakebroker.Expect[*sansio.ConnectionOpen](b)
				b.Send(0, &sansio.ConnectionOpenOk{})
				b.AnswerClose()
			})
			require.NoError(t, err)
			require.Equal(t, tc.want, <-tuneOk)
			_, frameMax, _ := c.Tuning()
			require.Equal(t, tc.want, frameMax)
			require.NoError(t, c.Close(context.Background()))
		})
	}
}

// A broker with authentication_failure_close refuses wrong credentials
// with a 403: a connection cut during authentication is a network event,
// not a hint about the credentials, and a *DialError like every failure
// before the connection is open.
func TestDialConnectionCutDuringAuthentication(t *testing.T) {
	_, err := dialPipe(t, Config{}, startAuth) // the script's end closes after start-ok
	var de *DialError
	require.ErrorAs(t, err, &de)
	require.ErrorIs(t, err, io.EOF)
	require.ErrorIs(t, err, ErrConnectionClosed)
	var he *HandshakeError
	require.False(t, errors.As(err, &he), "not a refusal: %v", err)
}

// The broker's refusal during the handshake is a *DialError that still
// matches the reply code's sentinel.
func TestDialRefusalIsADialError(t *testing.T) {
	_, err := dialPipe(t, Config{}, func(b *fakebroker.Broker) {
		startAuth(b)
		b.Send(0, &sansio.ConnectionClose{ReplyCode: uint16(AccessRefused), ReplyText: "ACCESS_REFUSED - Login was refused"})
		fakebroker.Expect[*sansio.ConnectionCloseOk](b)
	})
	var de *DialError
	require.ErrorAs(t, err, &de)
	require.ErrorIs(t, err, ErrAccessRefused)
	var ae *Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, AccessRefused, ae.Code)
}

// refusingConn is a peer that refuses the connection as a TLS 1.3 broker
// does when it rejects the client certificate: it sends an alert and
// resets the socket. The client's first write fails with the reset, and
// the alert is read only then, so the write's error reaches the client
// first.
type refusingConn struct {
	net.Conn // nil: only the methods below are used
	once     sync.Once
	written  chan struct{} // closed when the first write has failed
	closed   chan struct{}
	close    sync.Once
}

var errAlert = &net.OpError{Op: "remote error", Err: tls.AlertError(48)} // unknown_ca

func (c *refusingConn) Write(p []byte) (int, error) {
	c.once.Do(func() { close(c.written) })
	return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
}

func (c *refusingConn) Read(p []byte) (int, error) {
	select {
	case <-c.written:
		return 0, errAlert
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *refusingConn) Close() error                       { c.close.Do(func() { close(c.closed) }); return nil }
func (c *refusingConn) SetDeadline(t time.Time) error      { return nil }
func (c *refusingConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *refusingConn) SetWriteDeadline(t time.Time) error { return nil }

// The peer's reason for refusing the connection wins over the reset that
// our write of the protocol header meets, whichever the client sees first.
func TestDialPrefersThePeersAlertToTheWritesReset(t *testing.T) {
	for range 20 { // the two errors race: try the order often
		nc := &refusingConn{written: make(chan struct{}), closed: make(chan struct{})}
		cfg := Config{Dial: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := DialConfig(ctx, "amqp://fake/", cfg)
		cancel()
		var de *DialError
		require.ErrorAs(t, err, &de)
		require.ErrorIs(t, err, errAlert)
		require.ErrorIs(t, err, ErrConnectionClosed)
	}
}
