package actor

import (
	"context"
	"sync"
	"sync/atomic"
)

// maxSendsQueued bounds the Sends (acks, nacks, rejects) queued for the
// loop and not yet taken. Acks of real deliveries never reach it: the loop
// takes them as fast as it hands deliveries out. A caller that sends in a
// tight loop would otherwise outrun the loop and grow c.reqs without end.
const maxSendsQueued = 4096

// sendGate makes Send wait while maxSendsQueued are queued. The count is
// one atomic add per Send and per batch the loop takes; the lock is taken
// only to wait, and by the loop only when its take brings the count back
// under the bound.
type sendGate struct {
	queued atomic.Int64 // Sends pushed, or about to be, and not yet taken
	mu     sync.Mutex
	room   chan struct{} // closed when the count drops under the bound; nil when nobody waits
}

// enter counts one Send, waiting while the bound is reached, until ctx or
// end (the channel's end) is done: then it counts nothing and returns
// false.
func (g *sendGate) enter(ctx context.Context, end <-chan struct{}) bool {
	if g.queued.Add(1) <= maxSendsQueued {
		return true
	}
	for {
		g.mu.Lock()
		if g.queued.Load() <= maxSendsQueued {
			g.mu.Unlock()
			return true
		}
		if g.room == nil {
			g.room = make(chan struct{})
		}
		room := g.room
		g.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			g.leave(1)
			return false
		case <-end:
			g.leave(1)
			return false
		}
	}
}

// leave uncounts n Sends: taken by the loop, or never pushed. It wakes the
// waiters when the count drops under the bound.
func (g *sendGate) leave(n int64) {
	if n == 0 {
		return
	}
	if after := g.queued.Add(-n); after > maxSendsQueued || after+n <= maxSendsQueued {
		return // still over the bound, or nobody can be waiting
	}
	g.mu.Lock()
	if g.room != nil {
		close(g.room)
		g.room = nil
	}
	g.mu.Unlock()
}
