package actor

import "sync"

// Queue hands values from the loop to one consuming goroutine without ever
// blocking the loop: Push appends under a short lock and signals. The
// consumer takes everything queued at once with Take, so one lock and one
// wake-up cover a whole batch. Bounds are enforced by the loop, which reads
// Len.
//
// A consumer that can take a value without blocking may install a direct
// path with SetDirect: while nothing is queued and the consumer holds no
// batch, the loop offers each value there first, which saves waking the
// consumer's goroutine.
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	err    error
	signal chan struct{} // capacity 1: "something changed"
	direct func(T) bool  // must not block; reports whether it took the value
	busy   bool          // the consumer holds a batch from Take
}

// SetDirect installs f as the direct path; see Queue.
func (q *Queue[T]) SetDirect(f func(T) bool) {
	q.mu.Lock()
	q.direct = f
	q.mu.Unlock()
}

// NewQueue returns an empty, open queue.
func NewQueue[T any]() *Queue[T] {
	return &Queue[T]{signal: make(chan struct{}, 1)}
}

func (q *Queue[T]) notify() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// Push appends v. It reports false, and drops nothing, only when the queue
// was closed: the caller keeps v.
func (q *Queue[T]) Push(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.notify()
	return true
}

// push is Push for the loop: it returns the number of values now queued,
// or -1 when the queue is closed.
func (q *Queue[T]) push(v T) int {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return -1
	}
	if len(q.items) == 0 && !q.busy && q.direct != nil && q.direct(v) {
		q.mu.Unlock()
		return 0 // taken in order: nothing was waiting before it
	}
	q.items = append(q.items, v)
	n := len(q.items)
	q.mu.Unlock()
	q.notify()
	return n
}

// Len returns the number of values waiting.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Close marks the end of the values with err; values already queued can
// still be taken. Closing twice keeps the first error.
func (q *Queue[T]) Close(err error) {
	q.mu.Lock()
	if !q.closed {
		q.closed, q.err = true, err
	}
	q.mu.Unlock()
	q.notify()
}

// Signal is ready when values were pushed or the queue was closed since the
// last Take.
func (q *Queue[T]) Signal() <-chan struct{} { return q.signal }

// Take returns every queued value, with closed set when the queue is closed
// and err its close error. Until a Take returns no values, the consumer
// counts as holding a batch, and the direct path is not used. It keeps spare, cleared, as the queue's next
// storage, so a consumer alternating two slices does not allocate.
func (q *Queue[T]) Take(spare []T) (items []T, closed bool, err error) {
	clear(spare)
	q.mu.Lock()
	defer q.mu.Unlock()
	items, q.items = q.items, spare[:0]
	q.busy = len(items) > 0
	return items, q.closed, q.err
}
