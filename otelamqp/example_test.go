package otelamqp_test

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/otelamqp"
)

// The README's example: spans of a connection printed by the stdout
// exporter.
func ExampleNewTracer() {
	ctx := context.Background()
	if err := run(ctx); err != nil {
		panic(err)
	}
}

func run(ctx context.Context) error {
	exp, err := stdouttrace.New(stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	defer tp.Shutdown(ctx)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tracer, err := otelamqp.NewTracer(otelamqp.WithTracerProvider(tp))
	if err != nil {
		return err
	}
	conn, err := amqp.DialConfig(ctx, "amqp://guest:guest@localhost:5672/", amqp.Config{Tracer: tracer})
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	reg, err := otelamqp.RegisterStats(conn) // Stats as instruments of the global MeterProvider
	if err != nil {
		return err
	}
	defer reg.Unregister()
	ch, _ := conn.Channel(ctx)
	_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: "jobs", Body: []byte("hi")}) // span "publish amq.default"
	return err
}
