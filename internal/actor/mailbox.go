package actor

import "sync"

// Mailbox hands values from the loop to one consuming goroutine without ever
// blocking the loop: Push appends under a short lock and signals. The
// consumer takes everything queued at once with Take, so one lock and one
// wake-up cover a whole batch. Bounds are enforced by the loop, which reads
// Len.
//
// A consumer that can take a value without blocking may install a direct
// path with SetDirect: while nothing is queued and the consumer holds no
// batch, the loop offers each value there first, which saves waking the
// consumer's goroutine.
type Mailbox[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	err    error
	signal chan struct{} // capacity 1: "something changed"
	direct func(T) bool  // must not block; reports whether it took the value
	busy   bool          // the consumer holds a batch from Take
}

// SetDirect installs f as the direct path; see Mailbox.
func (mb *Mailbox[T]) SetDirect(f func(T) bool) {
	mb.mu.Lock()
	mb.direct = f
	mb.mu.Unlock()
}

// NewMailbox returns an empty, open mailbox.
func NewMailbox[T any]() *Mailbox[T] {
	return &Mailbox[T]{signal: make(chan struct{}, 1)}
}

func (mb *Mailbox[T]) notify() {
	select {
	case mb.signal <- struct{}{}:
	default:
	}
}

// Push appends v. It reports false, and drops nothing, only when the mailbox
// was closed: the caller keeps v.
func (mb *Mailbox[T]) Push(v T) bool {
	mb.mu.Lock()
	if mb.closed {
		mb.mu.Unlock()
		return false
	}
	mb.items = append(mb.items, v)
	mb.mu.Unlock()
	mb.notify()
	return true
}

// push is Push for the loop: it returns the number of values now queued,
// or -1 when the mailbox is closed.
func (mb *Mailbox[T]) push(v T) int {
	mb.mu.Lock()
	if mb.closed {
		mb.mu.Unlock()
		return -1
	}
	if len(mb.items) == 0 && !mb.busy && mb.direct != nil && mb.direct(v) {
		mb.mu.Unlock()
		return 0 // taken in order: nothing was waiting before it
	}
	mb.items = append(mb.items, v)
	n := len(mb.items)
	mb.mu.Unlock()
	mb.notify()
	return n
}

// Len returns the number of values waiting.
func (mb *Mailbox[T]) Len() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.items)
}

// Close marks the end of the values with err; values already queued can
// still be taken. Closing twice keeps the first error.
func (mb *Mailbox[T]) Close(err error) {
	mb.mu.Lock()
	if !mb.closed {
		mb.closed, mb.err = true, err
	}
	mb.mu.Unlock()
	mb.notify()
}

// Signal is ready when values were pushed or the mailbox was closed since the
// last Take.
func (mb *Mailbox[T]) Signal() <-chan struct{} { return mb.signal }

// Take returns every queued value, with closed set when the mailbox is closed
// and err its close error. Until a Take returns no values, the consumer
// counts as holding a batch, and the direct path is not used. It keeps spare, cleared, as the mailbox's next
// storage, so a consumer alternating two slices does not allocate.
func (mb *Mailbox[T]) Take(spare []T) (items []T, closed bool, err error) {
	clear(spare)
	mb.mu.Lock()
	defer mb.mu.Unlock()
	items, mb.items = mb.items, spare[:0]
	mb.busy = len(items) > 0
	return items, mb.closed, mb.err
}
