package main

import "context"

// A client is one of the two libraries under comparison. Every method of a
// session that is not a prepared run happens outside the measured window.
type client interface {
	Name() string
	Dial(ctx context.Context, url string) (session, error)
	// DialIdle opens a connection and one channel on it, and starts
	// nothing else (no notification listener): what an idle service holds.
	// The function it returns closes the connection.
	DialIdle(ctx context.Context, url string) (func(context.Context) error, error)
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
	// PreparePaced publishes n messages at rate per second on this
	// connection, each stamped with its send time (see stamp), and
	// consumes them on a second connection (prefetch, ack each); the
	// consumer records each message's latency in lat.
	PreparePaced(ctx context.Context, queue string, n int, body []byte, rate float64, prefetch int, lat *latencies) (prepared, error)
	// PrepareRPC makes n request/reply round trips on this connection: a
	// requester channel publishes to queue, with reply-to replyQueue and a
	// correlation id, and waits for the reply; a responder channel
	// consumes queue and publishes each reply. Both consume with auto-ack.
	// lat records each round trip.
	PrepareRPC(ctx context.Context, queue, replyQueue string, n int, body []byte, lat *latencies) (prepared, error)
}

// prepared is a scenario ready to run: Run is measured, Cleanup is not.
type prepared struct {
	Run     func(ctx context.Context) error
	Cleanup func(ctx context.Context)
	Lat     *latencies // the latencies Run records; nil when it records none
}

// split returns how many of n messages goroutine i of k publishes.
func split(n, k, i int) int {
	share := n / k
	if i < n%k {
		share++
	}
	return share
}
