package actor

import (
	"context"
	"testing"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/stretchr/testify/require"
)

// Close with an already-expired ctx cannot run the close handshake; it must
// not report a clean close (nil).
func TestCloseWithAnExpiredContextIsNotClean(t *testing.T) {
	for i := 0; i < 50; i++ {
		c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
			b.Handshake(0)
			for { // never answers the close
				if _, err := b.Next(); err != nil {
					return
				}
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.Close(ctx)
		require.Error(t, err, "iteration %d: Close with an expired ctx returned nil (c.Err()=%v)", i, c.Err())
	}
}
