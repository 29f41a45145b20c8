package tests

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// TestDialAnyNetConn brings its own transport: an in-memory net.Pipe whose
// far end is relayed to the broker, so the client never touches TCP itself.
func TestDialAnyNetConn(t *testing.T) {
	url := brokerURL(t)
	uri, err := amqp.ParseURI(url)
	require.NoError(t, err)
	var relays sync.WaitGroup
	t.Cleanup(relays.Wait)
	dials := 0
	cfg := amqp.Config{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		require.Equal(t, uri.Addr(), addr)
		var d net.Dialer
		broker, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		ours, theirs := net.Pipe()
		relays.Add(2)
		// Each relay goroutine belongs to this test and exits when either
		// side closes.
		go func() { defer relays.Done(); _, _ = io.Copy(broker, theirs); broker.Close() }()
		go func() { defer relays.Done(); _, _ = io.Copy(theirs, broker); theirs.Close() }()
		return ours, nil
	}}
	conn := dial(t, cfg)
	require.Equal(t, 1, dials)
	ch := channel(t, conn)
	ctx := ctxT(t)
	q := tempQueue(t, ch)
	_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: []byte("through a pipe")})
	require.NoError(t, err)
	d, ok, err := ch.Get(ctx, q, true)
	for err == nil && !ok { // the publish and the get race on the broker's side
		d, ok, err = ch.Get(ctx, q, true)
	}
	require.NoError(t, err)
	require.Equal(t, "through a pipe", string(d.Body))
	require.NoError(t, conn.Close(ctx))
}
