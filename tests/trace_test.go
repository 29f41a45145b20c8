package tests

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

// recordingTracer keeps the name of every hook called, in order.
type recordingTracer struct {
	mu    sync.Mutex
	calls []string
	got   chan amqp.Delivery // deliveries seen by TraceDelivery
}

type traceKey struct{}

func (r *recordingTracer) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recordingTracer) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func (r *recordingTracer) TracePublishStart(ctx context.Context, _ *amqp.Channel, d *amqp.TracePublishStartData) context.Context {
	r.add("publish-start")
	d.SetHeader("traced", "yes")
	return context.WithValue(ctx, traceKey{}, "publish")
}

func (r *recordingTracer) TracePublishEnd(ctx context.Context, _ *amqp.Channel, d amqp.TracePublishEndData) {
	r.add("publish-end:" + ctx.Value(traceKey{}).(string))
}

func (r *recordingTracer) TraceConfirm(ctx context.Context, _ *amqp.Channel, d amqp.TraceConfirmData) {
	if d.Err == nil && d.Confirmation.Acked() {
		r.add("confirm-ack:" + ctx.Value(traceKey{}).(string))
	}
}

func (r *recordingTracer) TraceDelivery(_ context.Context, d *amqp.Delivery) {
	r.add("delivery")
	r.got <- *d
}

func (r *recordingTracer) TraceSettle(_ context.Context, _ *amqp.Delivery, d amqp.TraceSettleData) {
	if d.Op == amqp.SettleAck && d.Err == nil && !d.Received.IsZero() {
		r.add("ack")
	}
}

func (r *recordingTracer) TraceCallStart(ctx context.Context, _ *amqp.Channel, d amqp.TraceCallStartData) context.Context {
	r.add("call-start:" + d.Method)
	return ctx
}

func (r *recordingTracer) TraceCallEnd(context.Context, *amqp.Channel, amqp.TraceCallEndData) {
	r.add("call-end")
}

func (r *recordingTracer) TraceConn(_ *amqp.Conn, ev amqp.TraceConnEvent) {
	switch ev.Kind {
	case amqp.ConnOpened:
		r.add("conn-opened")
	case amqp.ConnClosed:
		r.add("conn-closed")
	}
}

// Every hook of a Tracer runs, publish hooks add a header without touching
// the caller's Table, and Close waits for the tracer goroutine.
func TestTracerSeesAPublishConfirmDeliveryAndAck(t *testing.T) {
	tr := &recordingTracer{got: make(chan amqp.Delivery, 1)}
	c, err := amqp.DialConfig(ctxT(t), brokerURL(t), amqp.Config{Tracer: tr})
	require.NoError(t, err)
	ch := confirmChannel(t, c)
	q := exclusiveQueue(t, ch)
	headers := amqp.Table{"app": "x"}
	conf, err := ch.Publish(ctxT(t), amqp.Publishing{RoutingKey: q, Properties: amqp.Properties{Headers: headers}, Body: []byte("hi")})
	require.NoError(t, err)
	require.NoError(t, conf.Wait(ctxT(t)))
	require.Equal(t, amqp.Table{"app": "x"}, headers, "the caller's headers are untouched")

	cons, err := ch.Consume(ctxT(t), q, amqp.ConsumeOptions{})
	require.NoError(t, err)
	d := waitFor(t, cons.Deliveries(), testTimeout, "the delivery")
	require.Equal(t, "yes", d.Headers["traced"])
	require.Equal(t, "x", d.Headers["app"])
	require.NoError(t, d.Ack(ctxT(t), false))
	seen := waitFor(t, tr.got, testTimeout, "TraceDelivery")
	require.Equal(t, d.DeliveryTag, seen.DeliveryTag)
	require.NoError(t, c.Close(ctxT(t)))

	calls := tr.names()
	require.Equal(t, "conn-opened", calls[0])
	require.Equal(t, "conn-closed", calls[len(calls)-1], "Close returns after the last event")
	for _, want := range []string{"call-start:confirm.select", "call-end", "call-start:queue.declare",
		"publish-start", "publish-end:publish", "confirm-ack:publish", "delivery", "ack"} {
		require.Contains(t, calls, want)
	}
}
