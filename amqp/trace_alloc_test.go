package amqp

import (
	"context"
	"testing"
)

// A Delivery that a consumer ranges over stays on the stack: nothing in
// Ack, Nack or Reject (tracing included) lets it escape. One escape there
// costs every delivery an allocation, with or without a tracer.
func TestDeliverySettleDoesNotMakeDeliveriesEscape(t *testing.T) {
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		var d Delivery
		_ = d.Ack(ctx, false)
		_ = d.Nack(ctx, false, true)
		_ = d.Reject(ctx, true)
	})
	if allocs != 0 {
		t.Fatalf("settling a Delivery allocates %v times: it escapes", allocs)
	}
}
