package amqp

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A Config.Dial that returns neither a connection nor an error makes
// DialConfig fail, rather than crash a goroutine of the connection.
func TestDialFunctionReturningNothingFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := DialConfig(ctx, "amqp://x/", Config{Dial: func(ctx context.Context, n, a string) (net.Conn, error) { return nil, nil }})
	require.Error(t, err)
}

// A dial cut short by the context's deadline matches the context's error,
// though net calls it an i/o timeout.
func TestDialTimeoutMatchesTheContextsError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := DialConfig(ctx, "amqp://x/", Config{Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: n, Err: os.ErrDeadlineExceeded}
	}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var de *DialError
	require.ErrorAs(t, err, &de)
}
