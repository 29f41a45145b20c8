package actor

import (
	"context"
	"runtime"
	"testing"

	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

func (p *Outcome) hasWaiter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiter != nil
}

func TestOutcomeWaitersAllSeeTheOutcome(t *testing.T) {
	var p Outcome
	ctx := context.Background()
	settled := make(chan bool, 3)
	for range 3 {
		go func() { settled <- p.Wait(ctx) }()
	}
	done := p.Done()
	for !p.hasWaiter() {
		runtime.Gosched()
	}
	p.settle(sansio.ConfirmAck, nil)
	<-done
	for range 3 {
		require.True(t, <-settled)
	}
	require.True(t, p.Wait(ctx))
	require.Equal(t, sansio.ConfirmAck, p.Confirm)
	<-p.Done() // closed, also when asked after the outcome
}

// A Wait whose context ends as the outcome arrives reports one or the
// other truthfully, and leaves its pooled channel empty.
func TestOutcomeWaitRacingSettleAndCancel(t *testing.T) {
	for range 1000 {
		var p Outcome
		ctx, cancel := context.WithCancel(context.Background())
		start := make(chan struct{})
		go func() {
			<-start
			cancel()
		}()
		go func() {
			<-start
			p.settle(sansio.ConfirmNack, nil)
		}()
		close(start)
		if p.Wait(ctx) {
			require.True(t, p.Settled())
		} else {
			require.Error(t, ctx.Err())
		}
		cancel()
	}
	for range 10 {
		w := waiters.Get().(chan struct{})
		require.Empty(t, w, "a pooled channel still holds a value")
		defer waiters.Put(w)
	}
}

func TestOutcomeWaitDoesNotAllocate(t *testing.T) {
	ps := make(chan *Outcome)
	go func() {
		for p := range ps {
			for !p.hasWaiter() {
				runtime.Gosched()
			}
			p.settle(sansio.ConfirmAck, nil)
		}
	}()
	defer close(ps)
	all := make([]Outcome, 101) // AllocsPerRun runs once more to warm up
	next := 0
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		p := &all[next]
		next++
		ps <- p
		if !p.Wait(ctx) {
			panic("not settled")
		}
	})
	require.Zero(t, allocs)
}
