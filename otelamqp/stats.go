package otelamqp

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/amqproto/amqproto/amqp"
)

// RegisterStats exports c.Stats() as asynchronous instruments, read at
// each collection (one Stats call per collection). Counters are
// cumulative over the connection's sockets; the gauges are
// amqp.client.channels, amqp.client.awaiting_confirm and
// amqp.client.consumer.buffered (per consumer tag). Unregister the
// returned Registration when the connection is closed.
func RegisterStats(c *amqp.Conn, opts ...Option) (metric.Registration, error) {
	meter := newConfig(opts).mp.Meter(ScopeName)
	var counters []statCounter
	add := func(name, unit, desc string, get func(*amqp.Stats) int64) error {
		inst, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		counters = append(counters, statCounter{inst, get})
		return err
	}
	for _, s := range []struct {
		name, unit, desc string
		get              func(*amqp.Stats) int64
	}{
		{"messaging.client.sent.messages", "{message}", "Messages published", func(s *amqp.Stats) int64 { return int64(s.Published) }},
		{"messaging.client.consumed.messages", "{message}", "Deliveries received", func(s *amqp.Stats) int64 { return int64(s.Delivered) }},
		{"amqp.client.acked", "{message}", "Publishes acked by the broker", func(s *amqp.Stats) int64 { return int64(s.Acked) }},
		{"amqp.client.nacked", "{message}", "Publishes nacked by the broker", func(s *amqp.Stats) int64 { return int64(s.Nacked) }},
		{"amqp.client.returned", "{message}", "Messages returned by the broker", func(s *amqp.Stats) int64 { return int64(s.Returned) }},
		{"amqp.client.bytes.in", "By", "Bytes read from the socket", func(s *amqp.Stats) int64 { return int64(s.BytesIn) }},
		{"amqp.client.bytes.out", "By", "Bytes written to the socket", func(s *amqp.Stats) int64 { return int64(s.BytesOut) }},
		{"amqp.client.frames.in", "{frame}", "Frames received", func(s *amqp.Stats) int64 { return int64(s.FramesIn) }},
		{"amqp.client.frames.out", "{frame}", "Frames sent", func(s *amqp.Stats) int64 { return int64(s.FramesOut) }},
		{"amqp.client.reads", "{read}", "Socket reads", func(s *amqp.Stats) int64 { return int64(s.Reads) }},
		{"amqp.client.writes", "{write}", "Socket writes", func(s *amqp.Stats) int64 { return int64(s.Writes) }},
		{"amqp.client.blocked", "{block}", "Times the broker blocked the connection", func(s *amqp.Stats) int64 { return int64(s.Blocked) }},
		{"amqp.client.blocked.time", "ms", "Time spent blocked", func(s *amqp.Stats) int64 { return s.BlockedFor.Milliseconds() }},
		{"amqp.client.heartbeats.missed", "{socket}", "Sockets lost to missed heartbeats", func(s *amqp.Stats) int64 { return int64(s.HeartbeatsMissed) }},
		{"amqp.client.recoveries", "{recovery}", "Sockets that replaced a lost one", func(s *amqp.Stats) int64 { return int64(s.Recoveries) }},
	} {
		if err := add(s.name, s.unit, s.desc, s.get); err != nil {
			return nil, err
		}
	}
	channels, err := meter.Int64ObservableGauge("amqp.client.channels", metric.WithUnit("{channel}"), metric.WithDescription("Open channels"))
	if err != nil {
		return nil, err
	}
	awaiting, err := meter.Int64ObservableGauge("amqp.client.awaiting_confirm", metric.WithUnit("{message}"),
		metric.WithDescription("Publishes awaiting the broker's confirm"))
	if err != nil {
		return nil, err
	}
	buffered, err := meter.Int64ObservableGauge("amqp.client.consumer.buffered", metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries received and not yet taken, per consumer"))
	if err != nil {
		return nil, err
	}
	insts := []metric.Observable{channels, awaiting, buffered}
	for _, k := range counters {
		insts = append(insts, k.inst)
	}
	system := metric.WithAttributes(semconv.MessagingSystemRabbitMQ)
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := c.Stats()
		for _, k := range counters {
			o.ObserveInt64(k.inst, k.get(&s), system)
		}
		o.ObserveInt64(channels, int64(s.Channels), system)
		o.ObserveInt64(awaiting, int64(s.AwaitingConfirm), system)
		for _, ch := range s.ChannelStats {
			for _, cs := range ch.Consumers {
				o.ObserveInt64(buffered, int64(cs.Buffered), metric.WithAttributes(semconv.MessagingSystemRabbitMQ,
					attribute.String("amqp.consumer.tag", cs.Tag), attribute.String("amqp.queue", cs.Queue)))
			}
		}
		return nil
	}, insts...)
}

type statCounter struct {
	inst metric.Int64ObservableCounter
	get  func(*amqp.Stats) int64
}
