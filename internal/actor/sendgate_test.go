package actor

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

func TestSendGateWaitsAtItsBoundUntilTheLoopTakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g sendGate
		for range maxSendsQueued {
			require.True(t, g.enter(t.Context(), nil))
		}
		entered := make(chan bool, 2)
		for range 2 {
			go func() { entered <- g.enter(t.Context(), nil) }()
		}
		synctest.Wait()
		require.Empty(t, entered, "a Send past the bound went through")

		g.leave(maxSendsQueued) // the loop took them all
		require.True(t, <-entered)
		require.True(t, <-entered)
		require.EqualValues(t, 2, g.queued.Load())
	})
}

func TestSendGateWaitersGiveUpWithTheirContextOrChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g sendGate
		g.queued.Store(maxSendsQueued)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.False(t, g.enter(ctx, nil))
		end := make(chan struct{})
		close(end)
		require.False(t, g.enter(t.Context(), end))
		require.EqualValues(t, maxSendsQueued, g.queued.Load(), "a Send that gave up still counts")
	})
}

// A Send made while the loop lags maxSendsQueued Sends behind waits for
// it, within its context; the count goes back to zero as the loop takes
// them.
func TestSendWaitsWhileTheLoopLagsBehind(t *testing.T) {
	acks := make(chan uint64, 1)
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		acks <- fakebroker.Expect[*sansio.BasicAck](b).DeliveryTag
		b.AnswerClose()
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)

	c.sends.queued.Add(maxSendsQueued) // as if the loop had not taken as many
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, ch.Send(ctx, &sansio.BasicAck{DeliveryTag: 1}), context.DeadlineExceeded)

	sent := make(chan error, 1)
	go func() { sent <- ch.Send(context.Background(), &sansio.BasicAck{DeliveryTag: 2}) }()
	select {
	case err := <-sent:
		t.Fatalf("Send went through past the bound: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.sends.leave(maxSendsQueued)
	require.NoError(t, <-sent)
	require.EqualValues(t, 2, <-acks, "the Send that gave up went out")
	require.Eventually(t, func() bool { return c.sends.queued.Load() == 0 },
		5*time.Second, time.Millisecond)
}

// A Send waiting at the bound returns once its channel ends (the broker
// closed it) or the connection does (lost), and the ones that gave up no
// longer count.
func TestSendWaitingAtTheBoundEndsWithItsChannelOrConnection(t *testing.T) {
	closeChannel, loseConn := make(chan struct{}), make(chan struct{})
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		first := b.OpenChannel()
		b.OpenChannel()
		<-closeChannel
		b.Send(first, &sansio.ChannelClose{ReplyCode: uint16(sansio.NotFound), ReplyText: "NOT_FOUND"})
		for {
			f, err := b.Next()
			require.NoError(t, err)
			if _, ok := f.Method.(*sansio.ChannelCloseOk); ok {
				break
			}
		}
		<-loseConn
		b.Conn().Close()
	})
	first, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	second, err := c.OpenChannel(context.Background())
	require.NoError(t, err)

	c.sends.queued.Add(maxSendsQueued) // as if the loop had not taken as many
	sent := func(ch *Channel) <-chan error {
		done := make(chan error, 1)
		go func() { done <- ch.Send(context.Background(), &sansio.BasicAck{DeliveryTag: 1}) }()
		return done
	}
	waitFirst, waitSecond := sent(first), sent(second)
	require.Eventually(t, func() bool { return c.sends.queued.Load() == maxSendsQueued+2 }, 5*time.Second, time.Millisecond)

	close(closeChannel)
	require.ErrorIs(t, receiveWithin(t, waitFirst), sansio.ErrNotFound)
	select {
	case err := <-waitSecond:
		t.Fatalf("the Send on the other channel went through past the bound: %v", err)
	default:
	}
	close(loseConn)
	require.ErrorIs(t, receiveWithin(t, waitSecond), sansio.ErrConnectionClosed)
	<-c.Done()
	require.EqualValues(t, maxSendsQueued, c.sends.queued.Load(), "the Sends that gave up still count")
}

// Sends racing the connection's Close, from many goroutines past the
// bound, all return, and the count goes back to zero: none taken, drained
// or refused is counted twice or left counted.
func TestSendsRacingCloseLeaveNothingCounted(t *testing.T) {
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		b.AnswerClose()
	})
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	const senders, each = 8, maxSendsQueued
	var wg sync.WaitGroup
	half := make(chan struct{}, senders)
	for range senders {
		wg.Go(func() {
			for i := range each {
				if i == each/2 {
					half <- struct{}{}
				}
				if ch.Send(context.Background(), &sansio.BasicAck{DeliveryTag: uint64(i + 1)}) != nil {
					return
				}
			}
		})
	}
	for range senders {
		<-half
	}
	_ = c.Close(context.Background())
	wg.Wait()
	<-c.Done()
	require.Zero(t, c.sends.queued.Load())
}

func receiveWithin[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received within 5 s")
		panic("unreachable")
	}
}
