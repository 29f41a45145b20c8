package otelamqp_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/testenv"
	"github.com/amqproto/amqproto/otelamqp"
)

// What a Tracer costs per message (publish, delivery, ack), against none:
// go test -run '^$' -bench PerMessage -benchmem -benchtime 2000x ./otelamqp
func BenchmarkPerMessage(b *testing.B) {
	b.Run("nil", func(b *testing.B) { benchmarkRoundTrip(b, nil) })
	b.Run("otel", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		tr, err := otelamqp.NewTracer(otelamqp.WithTracerProvider(tp), otelamqp.WithPropagator(propagation.TraceContext{}))
		if err != nil {
			b.Fatal(err)
		}
		benchmarkRoundTrip(b, tr)
	})
}

func benchmarkRoundTrip(b *testing.B, tr amqp.Tracer) {
	ctx := context.Background()
	cfg := amqp.Config{}
	if tr != nil {
		cfg.Tracer = tr
	}
	c, err := amqp.DialConfig(ctx, testenv.Get(b, "AMQP_URL"), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	ch, err := c.Channel(ctx)
	if err != nil {
		b.Fatal(err)
	}
	q, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := ch.Consume(ctx, q.Name, amqp.ConsumeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p := amqp.Publishing{RoutingKey: q.Name, Body: make([]byte, 64)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ch.Publish(ctx, p); err != nil {
			b.Fatal(err)
		}
		d := <-cons.Deliveries()
		if err := d.Ack(ctx, false); err != nil {
			b.Fatal(err)
		}
	}
}
