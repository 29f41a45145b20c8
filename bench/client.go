package main

import "context"

// A client is one of the two libraries under comparison. Every method of a
// session that is not a prepared run happens outside the measured window.
type client interface {
	Name() string
	Dial(ctx context.Context, url string) (session, error)
}

// A session is one connection of a client.
type session interface {
	// ServerVersion returns the "version" server property.
	ServerVersion() string
	// Blocked reports whether the broker has sent connection.blocked since
	// the connection was made (a resource alarm, such as one raised by a
	// test suite sharing the broker): such a run is not comparable.
	Blocked() bool
	// Declare declares a fresh, non-durable, non-exclusive, non-auto-delete
	// queue with no arguments.
	Declare(ctx context.Context, queue string) error
	// Delete purges and deletes the queue.
	Delete(ctx context.Context, queue string) error
	// Preload publishes n messages with confirms (window 1,000) and waits
	// until the queue holds them.
	Preload(ctx context.Context, queue string, n int, body []byte) error
	// Close closes the connection.
	Close(ctx context.Context) error

	// Each Prepare method opens what its scenario needs (channels, confirm
	// mode, Qos) outside the window and returns the measured part.
	PreparePublish(ctx context.Context, queue string, n int, body []byte) (prepared, error)
	PrepareConfirmed(ctx context.Context, queue string, n int, body []byte, window int) (prepared, error)
	PrepareWaitEach(ctx context.Context, queue string, n int, body []byte) (prepared, error)
	PrepareConsume(ctx context.Context, queue string, n, prefetch, ackEvery int) (prepared, error)
	PrepareConcurrent(ctx context.Context, queue string, n int, body []byte, channels, window int) (prepared, error)
}

// prepared is a scenario ready to run: Run is measured, Cleanup is not.
type prepared struct {
	Run     func(ctx context.Context) error
	Cleanup func(ctx context.Context)
}

// split returns how many of n messages goroutine i of k publishes.
func split(n, k, i int) int {
	share := n / k
	if i < n%k {
		share++
	}
	return share
}
