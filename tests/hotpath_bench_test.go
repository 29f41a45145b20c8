package tests

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

// The hot paths without a Tracer, to compare allocations before and after
// a change: go test -run '^$' -bench HotPath -benchmem -benchtime 2000x ./tests
func BenchmarkHotPathPublish(b *testing.B) {
	c := dialURL(b, brokerURL(b), amqp.Config{})
	ch, err := c.Channel(ctxT(b))
	require.NoError(b, err)
	q, err := ch.QueueDeclare(ctxT(b), "", amqp.QueueOptions{Exclusive: true, Args: amqp.Table{"x-max-length": int32(1000)}})
	require.NoError(b, err)
	p := amqp.Publishing{RoutingKey: q.Name, Body: make([]byte, 64)}
	ctx := ctxT(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ch.Publish(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHotPathDelivery(b *testing.B) {
	c := dialURL(b, brokerURL(b), amqp.Config{})
	ch, err := c.Channel(ctxT(b))
	require.NoError(b, err)
	q, err := ch.QueueDeclare(ctxT(b), "", amqp.QueueOptions{Exclusive: true})
	require.NoError(b, err)
	cons, err := ch.Consume(ctxT(b), q.Name, amqp.ConsumeOptions{AutoAck: true})
	require.NoError(b, err)
	p := amqp.Publishing{RoutingKey: q.Name, Body: make([]byte, 64)}
	ctx := ctxT(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ch.Publish(ctx, p); err != nil {
			b.Fatal(err)
		}
		<-cons.Deliveries()
	}
}
