package actor

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitQueued waits until the budget has n waiters.
func waitQueued(t *testing.T, b *budget, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		got := len(b.waiters)
		b.mu.Unlock()
		if got == n {
			return
		}
		require.True(t, time.Now().Before(deadline), "%d waiters, want %d", got, n)
		runtime.Gosched()
	}
}

func TestBudgetServesWaitersInOrder(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	require.NoError(t, b.acquire(ctx, nil, 10))
	order := make(chan int, 3)
	for i, n := range []int64{6, 1, 4} {
		go func() {
			if b.acquire(ctx, nil, n) == nil {
				order <- i
			}
		}()
		waitQueued(t, b, i+1)
	}
	// 1 would fit after a release of 1, but 6 came first: nobody passes it.
	// (Grants happen inside release, so the state after it is final.)
	b.release(1)
	waitQueued(t, b, 3)
	b.release(9) // 10 free: 6 and 1 fit, then 4 does not (3 left)
	require.ElementsMatch(t, []int{0, 1}, []int{<-order, <-order})
	waitQueued(t, b, 1)
	require.Equal(t, int64(7), b.used)
	b.release(6)
	require.Equal(t, 2, <-order)
	b.release(1 + 4)
	require.Equal(t, int64(0), b.used)
}

func TestBudgetCancelledWaiterLetsTheNextIn(t *testing.T) {
	b := newBudget(10)
	require.NoError(t, b.acquire(context.Background(), nil, 8))
	ctx, cancel := context.WithCancel(context.Background())
	big := make(chan error, 1)
	go func() { big <- b.acquire(ctx, nil, 5) }()
	waitQueued(t, b, 1)
	small := make(chan error, 1)
	go func() { small <- b.acquire(context.Background(), nil, 2) }()
	waitQueued(t, b, 2)
	cancel()
	require.ErrorIs(t, <-big, context.Canceled)
	require.NoError(t, <-small) // it fitted all along, behind the big one
	b.release(8 + 2)
	require.Equal(t, int64(0), b.used)
}

func TestBudgetGrantRacingCancellationIsReturned(t *testing.T) {
	b := newBudget(1)
	for range 500 {
		require.NoError(t, b.acquire(context.Background(), nil, 1))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.acquire(ctx, nil, 1) }()
		waitQueued(t, b, 1)
		go cancel()
		b.release(1)
		if err := <-done; err == nil {
			b.release(1)
		}
		b.mu.Lock()
		require.Zero(t, b.used)
		require.Empty(t, b.waiters)
		b.mu.Unlock()
		cancel()
	}
}

func TestBudgetWaitDoesNotAllocate(t *testing.T) {
	b := newBudget(1)
	ctx := context.Background()
	require.NoError(t, b.acquire(ctx, nil, 1))
	ready := make(chan struct{})
	go func() {
		for range ready {
			for !b.hasWaiters() {
				runtime.Gosched()
			}
			b.release(1)
		}
	}()
	defer close(ready)
	allocs := testing.AllocsPerRun(100, func() {
		ready <- struct{}{}
		if err := b.acquire(ctx, nil, 1); err != nil {
			panic(err)
		}
	})
	require.Zero(t, allocs)
}

func (b *budget) hasWaiters() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters) > 0
}

func TestBudgetOverReleasePanics(t *testing.T) {
	b := newBudget(1)
	require.Panics(t, func() { b.release(1) })
}

func TestBudgetRefusesAnEndedContext(t *testing.T) {
	b := newBudget(10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, b.acquire(ctx, nil, 1), context.Canceled)
	require.Zero(t, b.used)
}

func TestBudgetWaiterLeavesWhenItsEndCloses(t *testing.T) {
	b := newBudget(1)
	require.NoError(t, b.acquire(context.Background(), nil, 1))
	end := make(chan struct{})
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- b.acquire(context.Background(), end, 1) }()
	waitQueued(t, b, 1)
	close(end)
	require.ErrorIs(t, <-gaveUp, errBudgetEnd)
	waitQueued(t, b, 0)
	b.release(1)
	require.Zero(t, b.used)
}
