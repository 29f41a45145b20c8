package actor

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// len returns the number of values queued, for tests that wait for a
// caller to have queued something.
func (q *inbox[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func TestInboxSignalsOncePerBurstAndKeepsOrder(t *testing.T) {
	var q inbox[int]
	q.init()
	for i := range 5 {
		require.True(t, q.push(i))
	}
	<-q.signal
	select {
	case <-q.signal:
		t.Fatal("a burst signalled twice")
	default:
	}
	got := q.take(nil)
	require.Equal(t, []int{0, 1, 2, 3, 4}, got)

	// The taken slice becomes the storage again, emptied.
	require.True(t, q.push(9))
	<-q.signal
	again := q.take(got)
	require.Equal(t, []int{9}, again)
	require.Empty(t, q.take(again))
}

func TestInboxTrimLetsGoOfDrainedStorage(t *testing.T) {
	var q inbox[int]
	q.init()
	for i := range 1000 {
		q.push(i)
	}
	q.trim()
	require.Equal(t, 1000, q.len(), "trim keeps what waits")
	q.take(nil)
	q.trim()
	require.Nil(t, q.items)
}

func TestInboxRefusesAfterClose(t *testing.T) {
	var q inbox[int]
	q.init()
	q.push(1)
	require.Equal(t, []int{1}, q.close())
	require.False(t, q.push(2))
	require.Empty(t, q.close())
}

// A consumer that takes on each signal, and sometimes without one (as
// publishesFirst does), gets every value pushed by concurrent senders: no
// wake-up is lost between a push and a take.
func TestInboxLosesNoWakeUp(t *testing.T) {
	const senders, each = 4, 2000
	var q inbox[int]
	q.init()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				q.push(s*each + i)
				if i%7 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	got := 0
	var spare []int
	for takes := 0; got < senders*each; takes++ {
		if takes%5 == 0 {
			spare = q.take(spare) // without the signal
			got += len(spare)
			continue
		}
		select {
		case <-q.signal:
		case <-time.After(10 * time.Second):
			t.Fatalf("no signal with %d of %d values taken", got, senders*each)
		}
		spare = q.take(spare)
		got += len(spare)
	}
	wg.Wait()
	require.Equal(t, senders*each, got)
	require.Empty(t, q.take(nil))
}
