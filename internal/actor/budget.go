package actor

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// budget is a weighted semaphore that serves its waiters in order, like
// x/sync/semaphore, but without an allocation per wait: a publisher of
// large messages waits on nearly every publish, and each wait there cost a
// channel and a list element. Waiters and their channels are reused.
type budget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters []*budgetWaiter // in arrival order; few: one per blocked publisher
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // capacity 1: receives the grant; empty while pooled
}

var budgetWaiters = sync.Pool{New: func() any { return &budgetWaiter{ready: make(chan struct{}, 1)} }}

func newBudget(size int64) *budget { return &budget{size: size} }

// errBudgetEnd is acquire's error when its end channel closed first.
var errBudgetEnd = errors.New("actor: stopped waiting for outgoing room")

// acquire takes n, waiting while earlier waiters are queued or less than n
// is free. It fails with ctx's error when ctx ends first, or had already
// ended (a publish with a cancelled context is not sent), and with
// errBudgetEnd when end closes first (the publish's channel ended).
func (b *budget) acquire(ctx context.Context, end <-chan struct{}, n int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.size-b.used >= n {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := budgetWaiters.Get().(*budgetWaiter)
	w.n = n
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	var gaveUp error
	select {
	case <-w.ready:
		budgetWaiters.Put(w)
		return nil
	case <-ctx.Done():
		gaveUp = ctx.Err()
	case <-end:
		gaveUp = errBudgetEnd
	}
	return b.withdraw(w, n, gaveUp)
}

// withdraw takes back the wait of w, which gave up with err.
func (b *budget) withdraw(w *budgetWaiter, n int64, err error) error {
	b.mu.Lock()
	if i := slices.Index(b.waiters, w); i >= 0 {
		b.waiters = slices.Delete(b.waiters, i, i+1)
		b.grantLocked() // the waiters behind it may fit now
		b.mu.Unlock()
		budgetWaiters.Put(w)
		return err
	}
	b.mu.Unlock()
	// Granted just as it gave up: give it back.
	<-w.ready
	budgetWaiters.Put(w)
	b.release(n)
	return err
}

// release returns n and wakes the waiters that now fit, in order.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	if b.used < 0 {
		b.mu.Unlock()
		panic("actor: budget released more than was acquired")
	}
	b.grantLocked()
	b.mu.Unlock()
}

func (b *budget) grantLocked() {
	for len(b.waiters) > 0 && b.size-b.used >= b.waiters[0].n {
		w := b.waiters[0]
		b.used += w.n
		b.waiters = slices.Delete(b.waiters, 0, 1)
		w.ready <- struct{}{} // never blocks: capacity 1, one grant per wait
	}
}
