package actor

import (
	"context"
	"sync/atomic"
)

// gate holds publishers back while the broker asks it (connection.blocked,
// channel.flow). Only the loop shuts and opens it; any goroutine may wait.
type gate struct {
	shutCh atomic.Pointer[chan struct{}] // non-nil while shut; closed when opened
}

func (g *gate) shut() {
	if g.shutCh.Load() == nil {
		ch := make(chan struct{})
		g.shutCh.Store(&ch)
	}
}

func (g *gate) open() {
	if ch := g.shutCh.Swap(nil); ch != nil {
		close(*ch)
	}
}

// wait returns nil once the gate is open, ctx's cause if ctx ends first, or
// endErr() if end closes first. An end wins over an open: the loop opens a
// channel's gate when the channel ends, after closing end, and the waiting
// publishers must then fail, not go on.
func (g *gate) wait(ctx context.Context, end <-chan struct{}, endErr func() error) error {
	for {
		ch := g.shutCh.Load()
		if ch == nil {
			return nil
		}
		select {
		case <-*ch:
			select {
			case <-end:
				return endErr()
			default:
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-end:
			return endErr()
		}
	}
}
