package amqp

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// Tests that every call keeps its word: contexts, ended channels and
// connections, Close, blocked notifications.

// errNoBroker is what the fake Dial returns once its scripts are used up.
var errNoBroker = errors.New("no broker here")

// fakeRecovering dials a Conn with recovery on, whose sockets are played
// by scripts in turn: the first by Dial, the next ones by recoveries.
// Once they are used up, every dial fails with errNoBroker, so that a
// recovery goes on until Close.
func fakeRecovering(t *testing.T, scripts ...func(b *fakebroker.Broker)) *Conn {
	t.Helper()
	cfg := Config{Recovery: Recovery{Backoff: func(int) time.Duration { return 5 * time.Millisecond }}}
	c, _ := recoveringConn(t, cfg, func(bs *brokers) {
		bs.script = func(gen int) func(b *fakebroker.Broker) {
			if gen > len(scripts) {
				return nil
			}
			return scripts[gen-1]
		}
		bs.dialErr = func(gen int) error {
			if gen > len(scripts) {
				return errNoBroker
			}
			return nil
		}
	})
	return c
}

// awaitEvent returns the next recovery event of kind, skipping others.
func awaitEvent(t *testing.T, c *Conn, kind RecoveryEventKind) RecoveryEvent {
	t.Helper()
	for {
		if ev := receive(t, c.RecoveryEvents()); ev.Kind == kind {
			return ev
		}
	}
}

// A call made with a context already done sends nothing and returns the
// context's error, every time; Channel.Close then leaves the channel open.
func TestCallsWithADoneContextDoNothing(t *testing.T) {
	first := make(chan sansio.Method, 1)
	c, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		first <- fakebroker.Expect[*sansio.QueueDeclare](b)
		b.AnswerClose()
	})
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		_, err := ch.QueueDeclare(done, "cancelled", QueueOptions{})
		require.ErrorIs(t, err, context.Canceled)
		_, err = ch.Publish(done, Publishing{RoutingKey: "cancelled"})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, ch.Ack(done, 1, false), context.Canceled)
		require.ErrorIs(t, ch.Nack(done, 1, false, true), context.Canceled)
		require.ErrorIs(t, ch.Reject(done, 1, true), context.Canceled)
		_, err = ch.Consume(done, "cancelled", ConsumeOptions{})
		require.ErrorIs(t, err, context.Canceled)
		_, err = c.Channel(done)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, ch.Close(done), context.Canceled)
	}
	require.NoError(t, ch.Err(), "a Close that did nothing leaves the channel open")
	_, err := ch.QueueDeclare(context.Background(), "marker", QueueOptions{NoWait: true})
	require.NoError(t, err)
	require.Equal(t, "marker", receive(t, first).(*sansio.QueueDeclare).Queue, "nothing went out before it")
}

// When the connection's end ends a channel, the errors of calls on the
// channel match ErrChannelClosed as well as ErrConnectionClosed, as its Err
// does.
func TestCallsOnAChannelEndedWithItsConnectionMatchBoth(t *testing.T) {
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		fakebroker.Expect[*sansio.QueueDeclare](b)
		// returning drops the socket: a loss, with recovery off
	})
	_, err := ch.QueueDeclare(context.Background(), "q", QueueOptions{})
	require.ErrorIs(t, err, ErrConnectionClosed)
	require.ErrorIs(t, err, ErrChannelClosed)
	_, err = ch.QueueDeclare(context.Background(), "q", QueueOptions{})
	require.ErrorIs(t, err, ErrConnectionClosed)
	require.ErrorIs(t, err, ErrChannelClosed)
	_, err = ch.Publish(context.Background(), Publishing{})
	require.ErrorIs(t, err, ErrChannelClosed)
	require.ErrorIs(t, ch.Ack(context.Background(), 1, false), ErrChannelClosed)
	require.ErrorIs(t, ch.Err(), ErrConnectionClosed)
	require.ErrorIs(t, ch.Err(), ErrChannelClosed)
}

// Once a call has returned the connection's end, IsClosed and Err say so;
// with recovery off at once.
func TestConnErrAgreesWithWhatCallsReturn(t *testing.T) {
	for range 20 {
		_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
			fakebroker.Expect[*sansio.QueueDeclare](b)
			closeConnection(b, InternalError)
		})
		c := ch.conn
		_, err := ch.QueueDeclare(context.Background(), "q", QueueOptions{})
		require.ErrorIs(t, err, ErrInternalError)
		require.True(t, c.IsClosed())
		require.ErrorIs(t, c.Err(), ErrInternalError)
	}
}

// During a recovery the Conn is not closed: Err is nil, a call waits
// within its context, and Close returns the loss the recovery could not
// repair.
func TestRecoveringConnIsNotClosedAndCloseReturnsTheLoss(t *testing.T) {
	c := fakeRecovering(t, func(b *fakebroker.Broker) {
		b.Handshake(0)
		// returning drops the socket
	})
	require.ErrorIs(t, awaitEvent(t, c, Recovering).Err, ErrConnectionClosed)
	require.False(t, c.IsClosed())
	require.NoError(t, c.Err())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Channel(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	err = c.Close(context.Background())
	require.ErrorIs(t, err, ErrConnectionClosed, "not a clean close")
	require.True(t, c.IsClosed())
}

// Close returns the error of a connection that had died of a missed
// heartbeat, not nil.
func TestCloseAfterAMissedHeartbeatReturnsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := fakeConn(t, func(b *fakebroker.Broker) {
			b.Handshake(1)
			for { // silent
				if _, err := b.Next(); err != nil {
					return
				}
			}
		})
		<-c.Context().Done()
		require.ErrorIs(t, c.Close(context.Background()), ErrHeartbeatTimeout)
	})
}

// A synchronous call held behind an earlier one the broker never answers
// says so when its context ends, naming the unanswered method; nothing of
// it is sent, and the channel is not ended.
func TestCallHeldBehindAnUnansweredOneSaysSo(t *testing.T) {
	sawTx := make(chan struct{})
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		fakebroker.Expect[*sansio.TxSelect](b)
		close(sawTx)
		b.AnswerClose() // never answers tx.select; fails if anything else but the close comes
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // owned by the test: ends once tx.select is on the wire
		<-sawTx
		cancel()
	}()
	require.ErrorIs(t, ch.Tx(ctx), context.Canceled)

	held, cancelHeld := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelHeld()
	err := ch.ExchangeDelete(held, "x", false)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var he *HeldError
	require.ErrorAs(t, err, &he)
	require.Equal(t, "tx.select", he.Behind)
	require.NoError(t, ch.Err(), "the channel has not ended")
}

// DeliveryTag never waits: it is the publish's number as soon as the
// publish went out, before the broker confirms it.
func TestConfirmationDeliveryTagDoesNotWait(t *testing.T) {
	published := make(chan struct{})
	_, ch := fakeChannel(t, func(b *fakebroker.Broker, id uint16) {
		fakebroker.Expect[*sansio.ConfirmSelect](b)
		b.Send(id, &sansio.ConfirmSelectOk{})
		fakebroker.ExpectContent[*sansio.BasicPublish](b)
		close(published)
		b.AnswerClose() // never confirms
	})
	require.NoError(t, ch.Confirm(context.Background()))
	conf, err := ch.Publish(context.Background(), Publishing{RoutingKey: "q"})
	require.NoError(t, err)
	<-published
	require.Equal(t, uint64(1), conf.DeliveryTag())
	require.False(t, conf.Acked())
}

// Blocked coalesces notifications: a reader gets the current state first,
// and the latest one after any burst, never a backlog. IsBlocked tells the
// current state.
func TestBlockedIsTheLatestState(t *testing.T) {
	proceed := make(chan struct{})
	c, _ := fakeConn(t, func(b *fakebroker.Broker) {
		b.Handshake(0)
		for range 1000 {
			b.Send(0, &sansio.ConnectionBlocked{Reason: "low on memory"})
			b.Send(0, &sansio.ConnectionUnblocked{})
		}
		b.Send(0, &sansio.ConnectionBlocked{Reason: "low on disk"})
		b.OpenChannel()
		<-proceed
		b.Send(0, &sansio.ConnectionUnblocked{})
		closeConnection(b, ConnectionForced)
	})
	_, err := c.Channel(context.Background()) // its open-ok comes after the burst
	require.NoError(t, err)
	blocked, reason := c.IsBlocked()
	require.True(t, blocked)
	require.Equal(t, "low on disk", reason)
	notes := c.Blocked()
	require.Equal(t, Blocking{Blocked: true, Reason: "low on disk"}, receive(t, notes), "the current state first")
	close(proceed)
	// The unblocked state comes next, unless the connection's end, right
	// behind it, overtakes it: only the latest state is kept.
	for _, b := range requireClosed(t, notes) {
		require.Equal(t, Blocking{}, b)
	}
	require.ErrorIs(t, context.Cause(c.Context()), ErrConnectionForced)
	blocked, _ = c.IsBlocked()
	require.False(t, blocked)
}

// A recovered socket starts unblocked, and Blocked says so.
func TestBlockedAcrossARecovery(t *testing.T) {
	drop := make(chan struct{})
	c := fakeRecovering(t, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.Send(0, &sansio.ConnectionBlocked{Reason: "low on memory"})
		b.OpenChannel()
		<-drop
	}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel() // the channel's recovery
		b.AnswerClose()
	})
	_, err := c.Channel(context.Background())
	require.NoError(t, err)
	notes := c.Blocked()
	require.Equal(t, Blocking{Blocked: true, Reason: "low on memory"}, receive(t, notes))
	close(drop)
	require.Equal(t, Blocking{}, receive(t, notes), "the new socket is not blocked")
	awaitEvent(t, c, Recovered)
	blocked, _ := c.IsBlocked()
	require.False(t, blocked)
}

// A manual-ack consumer whose socket is lost hands over none of the
// deliveries still buffered, while the connection recovers.
func TestManualAckDeliveriesBufferedAtALossAreDropped(t *testing.T) {
	c := fakeRecovering(t, func(b *fakebroker.Broker) {
		b.Handshake(0)
		id := b.OpenChannel()
		fakebroker.Expect[*sansio.BasicQos](b)
		b.Send(id, &sansio.BasicQosOk{})
		m := fakebroker.Expect[*sansio.BasicConsume](b)
		b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
		for i := range uint64(100) { // more than the Deliveries buffer holds
			b.Deliver(id, m.ConsumerTag, i+1, []byte("x"))
		}
		// returning drops the socket
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{})
	require.NoError(t, err)
	awaitEvent(t, c, Recovering)
	require.Eventually(t, func() bool { return len(cons.Deliveries()) == 0 }, 5*time.Second, time.Millisecond)
	select {
	case d := <-cons.Deliveries():
		t.Fatalf("delivery %d handed over after its socket was lost", d.DeliveryTag)
	default:
	}
}
