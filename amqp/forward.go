package amqp

import (
	"errors"

	"github.com/amqproto/amqproto/internal/actor"
)

// Why forward stopped before its mailbox was closed and drained.
var (
	errForwardStopped   = errors.New("amqp: forwarding stopped: the connection is closing")
	errForwardAbandoned = errors.New("amqp: forwarding abandoned")
)

// forward moves the values of mb to out, converted by conv, in order. It
// returns mb's close error once mb is closed and every value was handed
// over; errForwardStopped as soon as stop closes; errForwardAbandoned as
// soon as abandon closes (nil: never). It does not close out.
//
// It takes again right after handing a batch over rather than waiting for
// a signal: only an empty Take lets the loop use mb's direct path again.
func forward[T, U any](mb *actor.Mailbox[T], out chan<- U, conv func(*T) U, stop, abandon <-chan struct{}) error {
	var spare []T
	for {
		items, closed, err := mb.Take(spare)
		for i := range items {
			select {
			case out <- conv(&items[i]):
			case <-abandon:
				return errForwardAbandoned
			case <-stop:
				return errForwardStopped
			}
		}
		spare = items
		if len(items) > 0 {
			continue
		}
		if closed {
			return err
		}
		select {
		case <-mb.Signal():
		case <-stop:
			return errForwardStopped
		}
	}
}

// nextGeneration waits for a handle's next generation: it calls look,
// under the handle's lock, for the current value, the channel closed at
// its next change and why the handle ended (nil while it lives), and
// returns the first value that is not prev (true), or false once the
// handle has ended with nothing newer, or stop closes.
func nextGeneration[T comparable](prev T, stop <-chan struct{}, look func() (T, <-chan struct{}, error)) (T, bool) {
	for {
		cur, changed, err := look()
		if cur != prev {
			return cur, true
		}
		if err != nil {
			return cur, false
		}
		select {
		case <-changed:
		case <-stop:
			return cur, false
		}
	}
}
