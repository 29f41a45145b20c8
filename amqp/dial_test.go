package amqp

import (
	"context"
	"net"
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
