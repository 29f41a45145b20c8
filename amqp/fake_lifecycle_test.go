package amqp

import (
	"context"
	"testing"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/stretchr/testify/require"
)

// A channel the broker closed refuses publishes with its error, and
// closing it again returns nil.
func TestEndedChannelRefusesPublishesAndClosesQuietly(t *testing.T) {
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		closeChannel(b, id, NotFound)
		b.AnswerClose()
	})
	<-ch.Context().Done()
	require.ErrorIs(t, ch.Err(), ErrNotFound)
	require.ErrorIs(t, context.Cause(ch.Context()), ErrNotFound)
	_, err := ch.Publish(context.Background(), Publishing{})
	require.ErrorIs(t, err, ErrChannelClosed)
	require.NoError(t, ch.Close(context.Background()))
}

// Close returns nil after a clean close, and the error that had ended the
// connection otherwise.
func TestConnCloseReportsHowTheConnectionEnded(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		c, _ := fakeConn(t, func(b *fakebroker.Broker) {
			b.Handshake(0)
			b.AnswerClose()
		})
		require.False(t, c.IsClosed())
		require.NoError(t, c.Close(context.Background()))
		require.True(t, c.IsClosed())
		require.ErrorIs(t, context.Cause(c.Context()), ErrConnectionClosed)
	})
	t.Run("closed by the broker", func(t *testing.T) {
		c, _ := fakeConn(t, func(b *fakebroker.Broker) {
			b.Handshake(0)
			closeConnection(b, ConnectionForced)
		})
		<-c.Context().Done()
		require.True(t, c.IsClosed())
		err := c.Close(context.Background())
		require.ErrorIs(t, err, ErrConnectionForced)
		var e *Error
		require.ErrorAs(t, err, &e)
		require.True(t, e.Server)
		_, err = c.Channel(context.Background())
		require.ErrorIs(t, err, ErrConnectionClosed)
	})
}
