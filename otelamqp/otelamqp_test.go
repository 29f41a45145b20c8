package otelamqp_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/testenv"
	"github.com/amqproto/amqproto/otelamqp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// world is a connection traced into in-memory exporters.
type world struct {
	t      *testing.T
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	tracer *otelamqp.Tracer
	tp     *sdktrace.TracerProvider
	c      *amqp.Conn
	ch     *amqp.Channel
	queue  string
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	w.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(w.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(w.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	var err error
	w.tracer, err = otelamqp.NewTracer(otelamqp.WithTracerProvider(w.tp), otelamqp.WithMeterProvider(mp),
		otelamqp.WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	w.c, err = amqp.DialConfig(ctx(t), testenv.Get(t, "AMQP_URL"), amqp.Config{Tracer: w.tracer})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.c.Close(context.Background()) })
	reg, err := otelamqp.RegisterStats(w.c, otelamqp.WithMeterProvider(mp))
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Unregister() })
	w.ch, err = w.c.Channel(ctx(t))
	require.NoError(t, err)
	require.NoError(t, w.ch.Confirm(ctx(t)))
	q, err := w.ch.QueueDeclare(ctx(t), "", amqp.QueueOptions{Exclusive: true})
	require.NoError(t, err)
	w.queue = q.Name
	return w
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// span returns the one span named name.
func (w *world) span(name string) tracetest.SpanStub {
	w.t.Helper()
	var found []tracetest.SpanStub
	for _, s := range w.spans.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	require.Len(w.t, found, 1, "spans named %q", name)
	return found[0]
}

func requireAttr(t *testing.T, s tracetest.SpanStub, want attribute.KeyValue) {
	t.Helper()
	for _, a := range s.Attributes {
		if a.Key == want.Key {
			require.Equal(t, want.Value.Emit(), a.Value.Emit(), "%s of %s", want.Key, s.Name)
			return
		}
	}
	t.Fatalf("span %s has no %s", s.Name, want.Key)
}

func requireLinkedTo(t *testing.T, s tracetest.SpanStub, sc trace.SpanContext) {
	t.Helper()
	for _, l := range s.Links {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return
		}
	}
	t.Fatalf("span %s is not linked to %v: %v", s.Name, sc, s.Links)
}

// A publish → consume → ack round trip makes a producer span and consumer
// spans linked to it, with the messaging attributes; Stats and the
// histograms count it.
func TestRoundTripLinksConsumerSpansToTheProducer(t *testing.T) {
	w := newWorld(t)
	parent, parentSpan := w.tp.Tracer("test").Start(ctx(t), "parent")
	headers := amqp.Table{"app": "x"}
	conf, err := w.ch.Publish(parent, amqp.Publishing{RoutingKey: w.queue, Body: []byte("hello"),
		Properties: amqp.Properties{MessageID: "m-1", Headers: headers}})
	require.NoError(t, err)
	require.NoError(t, conf.Wait(ctx(t)))
	parentSpan.End()
	require.Len(t, headers, 1, "the caller's headers are untouched")

	cons, err := w.ch.Consume(ctx(t), w.queue, amqp.ConsumeOptions{})
	require.NoError(t, err)
	var d amqp.Delivery
	select {
	case d = <-cons.Deliveries():
	case <-time.After(15 * time.Second):
		t.Fatal("no delivery")
	}
	require.Contains(t, d.Headers, "traceparent")
	pctx, process := w.tracer.StartProcess(ctx(t), &d)
	require.NoError(t, d.Ack(pctx, false))
	process.End()
	require.NoError(t, w.c.Close(ctx(t))) // delivers the tracer's queued events

	pub := w.span("publish amq.default")
	require.Equal(t, trace.SpanKindProducer, pub.SpanKind)
	require.Equal(t, parentSpan.SpanContext().TraceID(), pub.SpanContext.TraceID())
	for _, a := range []attribute.KeyValue{semconv.MessagingSystemRabbitMQ, semconv.MessagingOperationTypeSend,
		semconv.MessagingDestinationName("amq.default"), semconv.MessagingRabbitMQDestinationRoutingKey(w.queue),
		semconv.MessagingMessageID("m-1"), semconv.MessagingMessageBodySize(5)} {
		requireAttr(t, pub, a)
	}
	require.Equal(t, pub.SpanContext, w.tracer.ProducerContext(&d).WithRemote(false))

	deliver := w.span("deliver amq.default")
	require.Equal(t, trace.SpanKindConsumer, deliver.SpanKind)
	requireAttr(t, deliver, semconv.MessagingOperationTypeReceive)
	requireAttr(t, deliver, semconv.MessagingMessageID("m-1"))
	requireLinkedTo(t, deliver, pub.SpanContext)
	proc := w.span("process amq.default")
	requireAttr(t, proc, semconv.MessagingOperationTypeProcess)
	requireLinkedTo(t, proc, pub.SpanContext)
	ack := w.span("ack amq.default")
	requireAttr(t, ack, semconv.MessagingOperationTypeSettle)
	requireLinkedTo(t, ack, pub.SpanContext)
	require.Equal(t, proc.SpanContext.SpanID(), ack.Parent.SpanID(), "the ack is part of the processing")
	w.span("queue.declare")
	w.span("confirm.select")

	var rm metricdata.ResourceMetrics
	require.NoError(t, w.reader.Collect(context.Background(), &rm))
	require.Equal(t, uint64(1), histogramCount(t, rm, "amqp.client.confirm.duration"))
	require.Equal(t, uint64(1), histogramCount(t, rm, "amqp.client.settle.delay"))
	require.Equal(t, int64(1), sum(t, rm, "messaging.client.sent.messages"))
	require.Equal(t, int64(1), sum(t, rm, "amqp.client.acked"))
	require.Equal(t, int64(1), sum(t, rm, "messaging.client.consumed.messages"))
}

func metricNamed(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return metricdata.Metrics{}
}

func histogramCount(t *testing.T, rm metricdata.ResourceMetrics, name string) uint64 {
	var n uint64
	for _, p := range metricNamed(t, rm, name).Data.(metricdata.Histogram[float64]).DataPoints {
		n += p.Count
	}
	return n
}

func sum(t *testing.T, rm metricdata.ResourceMetrics, name string) int64 {
	var n int64
	for _, p := range metricNamed(t, rm, name).Data.(metricdata.Sum[int64]).DataPoints {
		n += p.Value
	}
	return n
}

// pikaPublish publishes body to queue with pika, with a traceparent header.
const pikaPublish = `
import sys
import pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
ch.basic_publish(exchange="", routing_key=sys.argv[2], body=b"from pika",
    properties=pika.BasicProperties(headers={"traceparent": sys.argv[3]}, message_id="pika-1"))
conn.close()
`

// A message published by another client with a W3C traceparent header is
// linked to the span it names.
func TestPikaTraceparentIsLinked(t *testing.T) {
	w := newWorld(t)
	traceID, spanID := "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	testenv.RunPika(t, testenv.Get(t, "AMQP_URL"), pikaPublish, w.queue, "00-"+traceID+"-"+spanID+"-01")

	d, ok, err := w.ch.Get(ctx(t), w.queue, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "pika-1", d.MessageID)
	require.NoError(t, w.c.Close(ctx(t)))
	get := w.span("get amq.default")
	require.Len(t, get.Links, 1)
	require.Equal(t, traceID, get.Links[0].SpanContext.TraceID().String())
	require.Equal(t, spanID, get.Links[0].SpanContext.SpanID().String())
}
