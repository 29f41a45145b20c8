package amqp

import (
	"context"
	"testing"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// confirmMode answers the client's confirm.select.
func confirmMode(b *fakebroker.Broker, id uint16) {
	fakebroker.Expect[*sansio.ConfirmSelect](b)
	b.Send(id, &sansio.ConfirmSelectOk{})
}

func expectPublish(b *fakebroker.Broker) fakebroker.Content[*sansio.BasicPublish] {
	return fakebroker.ExpectContent[*sansio.BasicPublish](b)
}

// Each way a publish in confirm mode can end is told by its Confirmation:
// nil for an ack, ErrNacked, a ReturnError for a returned mandatory
// message (even when acked after), or the error that ended the channel or
// the connection first.
func TestConfirmationTellsHowThePublishEnded(t *testing.T) {
	cases := []struct {
		name   string
		settle func(b *fakebroker.Broker, id uint16)
		check  func(t *testing.T, c *Confirmation, err error)
	}{
		{"ack", func(b *fakebroker.Broker, id uint16) {
			b.Send(id, &sansio.BasicAck{DeliveryTag: 1})
		}, func(t *testing.T, c *Confirmation, err error) {
			require.NoError(t, err)
			require.True(t, c.Acked())
			require.Nil(t, c.Returned())
		}},
		{"nack", func(b *fakebroker.Broker, id uint16) {
			b.Send(id, &sansio.BasicNack{DeliveryTag: 1})
		}, func(t *testing.T, c *Confirmation, err error) {
			require.ErrorIs(t, err, ErrNacked)
			require.False(t, c.Acked())
		}},
		{"returned", func(b *fakebroker.Broker, id uint16) {
			// The client pairs a return with its publish by exchange,
			// routing key and body size.
			b.SendContent(id, &sansio.BasicReturn{ReplyCode: uint16(NoRoute), ReplyText: "NO_ROUTE", RoutingKey: "nowhere"},
				&sansio.Properties{MessageID: "m1"}, []byte("hello"))
			b.Send(id, &sansio.BasicAck{DeliveryTag: 1})
		}, func(t *testing.T, c *Confirmation, err error) {
			require.ErrorIs(t, err, ErrReturned)
			var re *ReturnError
			require.ErrorAs(t, err, &re)
			require.Equal(t, NoRoute, re.Return.ReplyCode)
			require.Equal(t, "nowhere", re.Return.RoutingKey)
			require.Equal(t, "m1", re.Return.MessageID)
			require.Equal(t, []byte("hello"), re.Return.Body)
			require.NotNil(t, c.Returned())
			require.Equal(t, "m1", c.Returned().MessageID)
		}},
		{"channel closed", func(b *fakebroker.Broker, id uint16) {
			closeChannel(b, id, PreconditionFailed)
		}, func(t *testing.T, c *Confirmation, err error) {
			require.ErrorIs(t, err, ErrChannelClosed)
			require.ErrorIs(t, err, ErrPreconditionFailed)
			require.False(t, c.Acked())
		}},
		{"connection closed", func(b *fakebroker.Broker, id uint16) {
			closeConnection(b, ConnectionForced)
		}, func(t *testing.T, c *Confirmation, err error) {
			require.ErrorIs(t, err, ErrConnectionClosed)
			require.ErrorIs(t, err, ErrConnectionForced)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
				confirmMode(b, id)
				p := expectPublish(b)
				require.True(t, p.Method.Mandatory)
				require.Equal(t, []byte("hello"), p.Body)
				tc.settle(b, id)
				b.AnswerClose()
			})
			require.NoError(t, ch.Confirm(context.Background()))
			c, err := ch.Publish(context.Background(), Publishing{RoutingKey: "nowhere", Mandatory: true, Body: []byte("hello")})
			require.NoError(t, err)
			err = c.Wait(context.Background())
			require.Equal(t, err, c.Err())
			tc.check(t, c, err)
		})
	}
}

// A Confirmation is pending until the broker settles it, and its delivery
// tag is the publish's sequence number on the channel.
func TestConfirmationIsPendingUntilSettled(t *testing.T) {
	settle := make(chan struct{})
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		confirmMode(b, id)
		expectPublish(b)
		expectPublish(b)
		<-settle
		b.Send(id, &sansio.BasicAck{DeliveryTag: 2, Multiple: true})
		b.AnswerClose()
	})
	require.NoError(t, ch.Confirm(context.Background()))
	first, err := ch.Publish(context.Background(), Publishing{Body: []byte("1")})
	require.NoError(t, err)
	second, err := ch.Publish(context.Background(), Publishing{Body: []byte("2")})
	require.NoError(t, err)
	require.NoError(t, first.Err())
	require.False(t, first.Acked())
	select {
	case <-first.Done():
		t.Fatal("settled before the broker said so")
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, first.Wait(ctx), context.Canceled)
	close(settle)
	require.NoError(t, second.Wait(context.Background()))
	require.NoError(t, first.Wait(context.Background()))
	require.Equal(t, uint64(1), first.DeliveryTag())
	require.Equal(t, uint64(2), second.DeliveryTag())
}

// Confirmations receives every Confirmation in the order the broker
// settles them, and is closed when the channel ends.
func TestConfirmationsComeInSettlingOrderAndCloseWithTheChannel(t *testing.T) {
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		confirmMode(b, id)
		for range 5 {
			expectPublish(b)
		}
		b.Send(id, &sansio.BasicAck{DeliveryTag: 2})
		b.Send(id, &sansio.BasicNack{DeliveryTag: 3})
		b.Send(id, &sansio.BasicAck{DeliveryTag: 1})
		b.Send(id, &sansio.BasicAck{DeliveryTag: 5, Multiple: true})
		closeChannel(b, id, PreconditionFailed)
		b.AnswerClose()
	})
	require.NoError(t, ch.Confirm(context.Background()))
	confirms := ch.Confirmations()
	for range 5 {
		_, err := ch.Publish(context.Background(), Publishing{})
		require.NoError(t, err)
	}
	var tags []uint64
	for range 5 {
		c := receive(t, confirms)
		tags = append(tags, c.DeliveryTag())
		if c.DeliveryTag() == 3 {
			require.ErrorIs(t, c.Err(), ErrNacked)
		} else {
			require.NoError(t, c.Err())
		}
	}
	require.Equal(t, []uint64{2, 3, 1, 4, 5}, tags)
	require.Empty(t, requireClosed(t, confirms))
	require.ErrorIs(t, ch.Err(), ErrPreconditionFailed)
}

// A publish the channel's end overtakes still reaches Confirmations, with
// the end's error, before it closes.
func TestConfirmationsReportPublishesTheChannelsEndOvertook(t *testing.T) {
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		confirmMode(b, id)
		expectPublish(b)
		closeChannel(b, id, PreconditionFailed)
		b.AnswerClose()
	})
	require.NoError(t, ch.Confirm(context.Background()))
	confirms := ch.Confirmations()
	c, err := ch.Publish(context.Background(), Publishing{})
	require.NoError(t, err)
	got := receive(t, confirms)
	require.Same(t, c, got)
	require.ErrorIs(t, got.Err(), ErrPreconditionFailed)
	require.Empty(t, requireClosed(t, confirms))
}

// Confirmations is closed when the connection ends, whether the broker
// or the client closes it.
func TestConfirmationsCloseWhenTheConnectionEnds(t *testing.T) {
	t.Run("broker", func(t *testing.T) {
		c, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
			confirmMode(b, id)
			closeConnection(b, ConnectionForced)
		})
		require.NoError(t, ch.Confirm(context.Background()))
		confirms := ch.Confirmations()
		<-c.Context().Done()
		require.Empty(t, requireClosed(t, confirms))
	})
	t.Run("client", func(t *testing.T) {
		c, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
			confirmMode(b, id)
			b.AnswerClose()
		})
		require.NoError(t, ch.Confirm(context.Background()))
		confirms := ch.Confirmations()
		require.NoError(t, c.Close(context.Background()))
		require.Empty(t, requireClosed(t, confirms))
	})
}

// Returns receives the returned messages in order, and is closed when the
// channel ends, or the connection.
func TestReturnsComeInOrderAndCloseWithTheChannel(t *testing.T) {
	returnMessage := func(b *fakebroker.Broker, id uint16, key string) {
		b.SendContent(id, &sansio.BasicReturn{ReplyCode: uint16(NoRoute), ReplyText: "NO_ROUTE", RoutingKey: key}, nil, []byte(key))
	}
	t.Run("channel", func(t *testing.T) {
		ready := make(chan struct{})
		_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
			<-ready
			returnMessage(b, id, "a")
			returnMessage(b, id, "b")
			closeChannel(b, id, PreconditionFailed)
			b.AnswerClose()
		})
		returns := ch.Returns()
		close(ready)
		a, b := receive(t, returns), receive(t, returns)
		require.Equal(t, "a", a.RoutingKey)
		require.Equal(t, []byte("a"), a.Body)
		require.Equal(t, NoRoute, a.ReplyCode)
		require.Equal(t, "b", b.RoutingKey)
		require.Empty(t, requireClosed(t, returns))
	})
	t.Run("connection", func(t *testing.T) {
		ready := make(chan struct{})
		_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
			<-ready
			returnMessage(b, id, "a")
			closeConnection(b, ConnectionForced)
		})
		returns := ch.Returns()
		close(ready)
		require.Equal(t, "a", receive(t, returns).RoutingKey)
		require.Empty(t, requireClosed(t, returns))
	})
}

// Confirmations hands every Confirmation over once and in order, whether
// its reader keeps up (the loop then hands each straight to the channel)
// or falls behind (they wait in the mailbox for the forwarder).
func TestConfirmationsInOrderWhetherTheReaderKeepsUpOrNot(t *testing.T) {
	const n = 200 // the second half overflows the channel's buffer of 64
	secondHalf := make(chan struct{})
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		confirmMode(b, id)
		for range n {
			expectPublish(b)
		}
		for tag := uint64(1); tag <= n/2; tag++ {
			b.Send(id, &sansio.BasicAck{DeliveryTag: tag})
		}
		<-secondHalf
		for tag := uint64(n/2 + 1); tag <= n; tag++ {
			b.Send(id, &sansio.BasicAck{DeliveryTag: tag})
		}
		closeChannel(b, id, PreconditionFailed)
		b.AnswerClose()
	})
	require.NoError(t, ch.Confirm(context.Background()))
	confirms := ch.Confirmations()
	published := make([]*Confirmation, n)
	for i := range published {
		c, err := ch.Publish(context.Background(), Publishing{})
		require.NoError(t, err)
		published[i] = c
	}
	for i := range n / 2 {
		require.Same(t, published[i], receive(t, confirms))
	}
	close(secondHalf)
	require.NoError(t, published[n-1].Wait(context.Background()), "all settled before any is read")
	for i := n / 2; i < n; i++ {
		require.Same(t, published[i], receive(t, confirms))
	}
	require.Empty(t, requireClosed(t, confirms))
}
