package amqp

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// fakeConn dials a Conn over a net.Pipe to a fake broker running script,
// through Config.Dial. The Conn is closed and the script awaited at the
// end of the test; done closes when the script has returned.
func fakeConn(t *testing.T, script func(b *fakebroker.Broker)) (c *Conn, done <-chan struct{}) {
	t.Helper()
	return fakeConnConfig(t, Config{}, script)
}

// fakeConnConfig is fakeConn with cfg, whose Dial it sets.
func fakeConnConfig(t *testing.T, cfg Config, script func(b *fakebroker.Broker)) (c *Conn, done <-chan struct{}) {
	t.Helper()
	client, done := fakebroker.Pipe(t, script)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg.Dial = func(context.Context, string, string) (net.Conn, error) { return client, nil }
	// One script, one socket: these tests are about a connection's end;
	// recovery has tests of its own.
	cfg.Recovery.Disable = true
	c, err := DialConfig(ctx, "amqp://fake/", cfg)
	if err != nil {
		client.Close()
		<-done
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
		<-done
	})
	return c, done
}

// fakeChannel is fakeConn with one channel open; the script starts after
// the broker has answered its channel.open, and is given the channel's
// number.
func fakeChannel(t *testing.T, script func(b *fakebroker.Broker, id uint16)) (*Conn, *Channel) {
	t.Helper()
	c, _ := fakeConn(t, func(b *fakebroker.Broker) {
		b.Handshake(0)
		script(b, b.OpenChannel())
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	return c, ch
}

// closeChannel has the broker close channel id with code, as for an
// error, and answers nothing else until the client's close-ok.
func closeChannel(b *fakebroker.Broker, id uint16, code sansio.ReplyCode) {
	b.Send(id, &sansio.ChannelClose{ReplyCode: uint16(code), ReplyText: code.String()})
	fakebroker.Expect[*sansio.ChannelCloseOk](b)
}

// closeConnection has the broker close the connection with code.
func closeConnection(b *fakebroker.Broker, code sansio.ReplyCode) {
	b.Send(0, &sansio.ConnectionClose{ReplyCode: uint16(code), ReplyText: code.String()})
	fakebroker.Expect[*sansio.ConnectionCloseOk](b)
}

// receive takes the next value from c, failing the test if none comes in
// time or c is closed.
func receive[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v, ok := <-c:
		require.True(t, ok, "closed")
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
	}
	panic("unreachable")
}

// requireClosed requires c to be closed, after any values still in it,
// which it returns.
func requireClosed[T any](t *testing.T, c <-chan T) []T {
	t.Helper()
	var rest []T
	timeout := time.After(5 * time.Second)
	for {
		select {
		case v, ok := <-c:
			if !ok {
				return rest
			}
			rest = append(rest, v)
		case <-timeout:
			t.Fatal("not closed")
		}
	}
}
