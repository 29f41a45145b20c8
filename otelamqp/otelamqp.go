// Package otelamqp traces and measures github.com/amqproto/amqproto/amqp
// connections with OpenTelemetry. It is a module of its own, so that the
// client itself depends on no OpenTelemetry package.
//
// NewTracer returns an amqp.Tracer to put in amqp.Config.Tracer. It makes
// spans that follow the OpenTelemetry semantic conventions for messaging
// (RabbitMQ), as published in go.opentelemetry.io/otel/semconv/v1.43.0:
//
//   - "publish <exchange>" (producer, operation type send) for each
//     Publish. On a channel in confirm mode it ends when the broker
//     settles the message (an error status for a nack, a return or a lost
//     outcome), else when Publish returns. The W3C trace context (by
//     default: the global propagator) is injected into the message's
//     headers, without modifying the caller's Table.
//   - "deliver <exchange>" (consumer, operation type receive) when a
//     delivery is received, linked to the producer's span found in its
//     headers; "get <exchange>" for Get.
//   - "ack <exchange>", "nack ..." and "reject ..." (operation type settle)
//     for each settlement, linked to the producer's span.
//   - "<class.method>" (client) for each synchronous method, such as
//     "queue.declare".
//
// Tracer.StartProcess starts the "process" span of a delivery on the
// consumer's goroutine, linked to the producer's span. The Tracer also
// records two histograms: the time from Publish to the broker's confirm,
// and from a delivery's arrival to its settlement. RegisterStats exports a
// connection's amqp.Stats as instruments.
package otelamqp

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/amqproto/amqproto/amqp"
)

// ScopeName is the instrumentation scope of the spans and instruments.
const ScopeName = "github.com/amqproto/amqproto/otelamqp"

// defaultExchange names the default exchange ("") in span names and
// attributes, as the conventions ask.
const defaultExchange = "amq.default"

// Option configures NewTracer and RegisterStats.
type Option func(*config)

type config struct {
	tp   trace.TracerProvider
	mp   metric.MeterProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the TracerProvider; default: otel's global one.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithMeterProvider sets the MeterProvider; default: otel's global one.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithPropagator sets the propagator that writes the trace context into
// message headers and reads it back; default: otel's global one.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

func newConfig(opts []Option) config {
	c := config{tp: otel.GetTracerProvider(), mp: otel.GetMeterProvider(), prop: otel.GetTextMapPropagator()}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Tracer is an amqp.Tracer that makes OpenTelemetry spans and records
// latency histograms. It is safe for concurrent use, and may serve several
// connections.
type Tracer struct {
	tracer       trace.Tracer
	prop         propagation.TextMapPropagator
	confirmDelay metric.Float64Histogram
	settleDelay  metric.Float64Histogram
}

var _ amqp.Tracer = (*Tracer)(nil)

// NewTracer returns a Tracer for amqp.Config.Tracer.
func NewTracer(opts ...Option) (*Tracer, error) {
	cfg := newConfig(opts)
	meter := cfg.mp.Meter(ScopeName)
	confirm, err := meter.Float64Histogram("amqp.client.confirm.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from Publish to the broker's confirm"))
	if err != nil {
		return nil, err
	}
	settle, err := meter.Float64Histogram("amqp.client.settle.delay", metric.WithUnit("s"),
		metric.WithDescription("Time from a delivery's arrival to its ack, nack or reject"))
	if err != nil {
		return nil, err
	}
	return &Tracer{tracer: cfg.tp.Tracer(ScopeName), prop: cfg.prop, confirmDelay: confirm, settleDelay: settle}, nil
}

func exchangeName(exchange string) string {
	if exchange == "" {
		return defaultExchange
	}
	return exchange
}

// messageAttrs are the attributes every message span has.
func messageAttrs(op attribute.KeyValue, opName, exchange, routingKey, messageID, correlationID string, bodySize int) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemRabbitMQ, op, semconv.MessagingOperationName(opName),
		semconv.MessagingDestinationName(exchangeName(exchange)),
		semconv.MessagingRabbitMQDestinationRoutingKey(routingKey),
		semconv.MessagingMessageBodySize(bodySize),
	}
	if messageID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(messageID))
	}
	if correlationID != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(correlationID))
	}
	return attrs
}

// publishStarted is kept in a publish's context for TraceConfirm.
type publishStarted struct{ at time.Time }

type publishKey struct{}

// TracePublishStart starts the publish span and injects its context into
// the message's headers.
func (t *Tracer) TracePublishStart(ctx context.Context, _ *amqp.Channel, data *amqp.TracePublishStartData) context.Context {
	p := data.Publishing
	ctx, _ = t.tracer.Start(ctx, "publish "+exchangeName(p.Exchange), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(messageAttrs(semconv.MessagingOperationTypeSend, "publish", p.Exchange, p.RoutingKey,
			p.MessageID, p.CorrelationID, len(p.Body))...))
	t.prop.Inject(ctx, publishCarrier{data})
	return context.WithValue(ctx, publishKey{}, publishStarted{at: time.Now()})
}

// TracePublishEnd ends the publish span, unless a confirm is to come.
func (t *Tracer) TracePublishEnd(ctx context.Context, _ *amqp.Channel, data amqp.TracePublishEndData) {
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, data.Err.Error())
		span.End()
		return
	}
	if data.Confirmation == nil {
		span.End()
		return
	}
	span.AddEvent("handed over")
}

// TraceConfirm ends the publish span of a message in confirm mode with
// its outcome, and records the confirm's latency.
func (t *Tracer) TraceConfirm(ctx context.Context, _ *amqp.Channel, data amqp.TraceConfirmData) {
	span := trace.SpanFromContext(ctx)
	if started, ok := ctx.Value(publishKey{}).(publishStarted); ok {
		outcome := "ack"
		switch {
		case data.Confirmation.Returned() != nil:
			outcome = "return"
		case data.Err != nil && !data.Confirmation.Acked():
			outcome = "nack"
			if !isNack(data.Err) {
				outcome = "unknown"
			}
		}
		t.confirmDelay.Record(context.WithoutCancel(ctx), time.Since(started.at).Seconds(),
			metric.WithAttributes(semconv.MessagingSystemRabbitMQ, attribute.String("amqp.confirm.outcome", outcome)))
	}
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, data.Err.Error())
	}
	span.End()
}

// TraceDelivery makes the receive span of a delivery, linked to its
// producer's span.
func (t *Tracer) TraceDelivery(ctx context.Context, d *amqp.Delivery) {
	name := "deliver"
	if d.ConsumerTag == "" {
		name = "get"
	}
	_, span := t.tracer.Start(ctx, name+" "+exchangeName(d.Exchange), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(t.producerLink(d)),
		trace.WithAttributes(append(messageAttrs(semconv.MessagingOperationTypeReceive, name, d.Exchange, d.RoutingKey,
			d.MessageID, d.CorrelationID, len(d.Body)), semconv.MessagingRabbitMQMessageDeliveryTag(int(d.DeliveryTag)))...))
	span.End()
}

// StartProcess starts the span of processing d, on the caller's
// goroutine, as a child of ctx and linked to the producer's span. End it
// when done.
func (t *Tracer) StartProcess(ctx context.Context, d *amqp.Delivery) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, "process "+exchangeName(d.Exchange), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(t.producerLink(d)),
		trace.WithAttributes(append(messageAttrs(semconv.MessagingOperationTypeProcess, "process", d.Exchange, d.RoutingKey,
			d.MessageID, d.CorrelationID, len(d.Body)), semconv.MessagingRabbitMQMessageDeliveryTag(int(d.DeliveryTag)))...))
}

// ProducerContext returns the producer's span context carried by d's
// headers; it is not valid when they carry none.
func (t *Tracer) ProducerContext(d *amqp.Delivery) trace.SpanContext {
	return trace.SpanContextFromContext(t.prop.Extract(context.Background(), headerCarrier(d.Headers)))
}

func (t *Tracer) producerLink(d *amqp.Delivery) trace.Link {
	return trace.Link{SpanContext: t.ProducerContext(d)}
}

// TraceSettle makes the settle span of an ack, nack or reject, and records
// the time since the delivery arrived.
func (t *Tracer) TraceSettle(ctx context.Context, d *amqp.Delivery, data amqp.TraceSettleData) {
	name := map[amqp.SettleOp]string{amqp.SettleAck: "ack", amqp.SettleNack: "nack", amqp.SettleReject: "reject"}[data.Op]
	_, span := t.tracer.Start(ctx, name+" "+exchangeName(d.Exchange), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(t.producerLink(d)),
		trace.WithAttributes(semconv.MessagingSystemRabbitMQ, semconv.MessagingOperationTypeSettle,
			semconv.MessagingOperationName(name), semconv.MessagingDestinationName(exchangeName(d.Exchange)),
			semconv.MessagingRabbitMQMessageDeliveryTag(int(d.DeliveryTag))))
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, data.Err.Error())
	}
	span.End()
	if !data.Received.IsZero() {
		t.settleDelay.Record(context.WithoutCancel(ctx), time.Since(data.Received).Seconds(),
			metric.WithAttributes(semconv.MessagingSystemRabbitMQ, semconv.MessagingOperationName(name)))
	}
}

// TraceCallStart starts the span of a synchronous method.
func (t *Tracer) TraceCallStart(ctx context.Context, _ *amqp.Channel, data amqp.TraceCallStartData) context.Context {
	ctx, _ = t.tracer.Start(ctx, data.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.MessagingSystemRabbitMQ, semconv.MessagingOperationName(data.Method)))
	return ctx
}

// TraceCallEnd ends it.
func (t *Tracer) TraceCallEnd(ctx context.Context, _ *amqp.Channel, data amqp.TraceCallEndData) {
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, data.Err.Error())
	}
	span.End()
}

// TraceConn does nothing: a connection's life is not a span, and
// RegisterStats exports its blocked time and recoveries.
func (t *Tracer) TraceConn(*amqp.Conn, amqp.TraceConnEvent) {}

// publishCarrier writes the trace context into a message about to be
// published, through SetHeader, which leaves the caller's Table alone.
type publishCarrier struct{ data *amqp.TracePublishStartData }

func (c publishCarrier) Get(key string) string {
	s, _ := c.data.Publishing.Headers[key].(string)
	return s
}

func (c publishCarrier) Set(key, value string) { c.data.SetHeader(key, value) }

func (c publishCarrier) Keys() []string { return headerCarrier(c.data.Publishing.Headers).Keys() }

// headerCarrier reads the trace context from a delivery's headers. Other
// clients may send the values as byte arrays (long strings without a
// type): both are read.
type headerCarrier amqp.Table

func (h headerCarrier) Get(key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[key] = value }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

func isNack(err error) bool { return errors.Is(err, amqp.ErrNacked) }
