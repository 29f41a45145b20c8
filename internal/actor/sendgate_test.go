package actor

import (
	"context"
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
