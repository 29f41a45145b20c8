package amqp

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Publish returns a nil *Confirmation outside confirm mode; code written
// for confirm mode gets ErrNotConfirmMode from it, not a panic.
func TestNilConfirmation(t *testing.T) {
	var c *Confirmation
	select {
	case <-c.Done():
	default:
		t.Fatal("Done of a nil Confirmation is not closed")
	}
	require.ErrorIs(t, c.Wait(context.Background()), ErrNotConfirmMode)
	require.ErrorIs(t, c.Err(), ErrNotConfirmMode)
	require.False(t, c.Acked())
	require.Nil(t, c.Returned())
	require.Zero(t, c.DeliveryTag())
}
