package actor

import "sync"

// inbox carries values from any goroutine to the loop, in order. A sender
// appends under a short lock and signals only when the inbox was empty, so
// a burst costs the loop one wake-up, and the loop takes everything queued
// at once. Its storage grows with what is queued and is let go once
// drained (see trim): an idle connection holds none, where a buffered Go
// channel would hold its whole capacity for as long as it lives.
//
// An inbox does not bound what it holds; its senders are bounded
// elsewhere: publishes by Conn.queued, calls by the goroutines waiting for
// their replies, acks and other Sends by Conn.sends.
type inbox[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	signal chan struct{} // capacity 1: "something was queued"
}

func (q *inbox[T]) init() { q.signal = make(chan struct{}, 1) }

// push appends v. It reports false, keeping nothing, once the inbox was
// closed: the loop has ended and will take nothing more.
func (q *inbox[T]) push(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	first := len(q.items) == 1
	q.mu.Unlock()
	if first {
		// The loop empties the inbox whenever it takes the signal, so a
		// signal is pending or a take is coming for anything queued after
		// the first.
		select {
		case q.signal <- struct{}{}:
		default:
		}
	}
	return true
}

// take returns everything queued and keeps spare, emptied, as the inbox's
// next storage: a loop that alternates two slices allocates nothing. Only
// spare's length is cleared: past it the array holds nothing, since the
// inbox only appends to the storage it is given, and clearing its whole
// capacity, which grows to the largest burst, cost a few per cent of the
// loop's time with many publishers (row f).
func (q *inbox[T]) take(spare []T) []T {
	clear(spare)
	q.mu.Lock()
	items := q.items
	q.items = spare[:0]
	q.mu.Unlock()
	return items
}

// trim lets go of the storage when nothing waits.
func (q *inbox[T]) trim() {
	q.mu.Lock()
	if len(q.items) == 0 {
		q.items = nil
	}
	q.mu.Unlock()
}

// close refuses later pushes and returns what was still queued.
func (q *inbox[T]) close() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	items := q.items
	q.items = nil
	return items
}
