package tests

// Interoperability with pika (Python), the other client RabbitMQ's own
// tutorials use, for encodings the broker passes through untouched.

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/testenv"
)

const pikaDecimals = `
import decimal, sys
import pika

conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
# Read what the Go client sent...
method, props, body = ch.basic_get(sys.argv[2], auto_ack=True)
print(props.headers["neg"], props.headers["pos"])
# ...and send the same values back.
ch.basic_publish("", sys.argv[2], b"", pika.BasicProperties(headers={
    "neg": decimal.Decimal("-1.23"), "pos": decimal.Decimal("45.6")}))
conn.close()
`

// A decimal's value is a signed 32-bit integer for RabbitMQ and pika: a
// negative decimal goes both ways unchanged.
func TestInteropPikaDecimal(t *testing.T) {
	c := dial(t, amqp.Config{})
	ch := confirmChannel(t, c)
	q := uniqueName(t, "q") // not exclusive: pika reads it on its own connection
	_, err := ch.QueueDeclare(ctxT(t), q, amqp.QueueOptions{})
	require.NoError(t, err)
	cleanupQueue(t, c, q)
	conf, err := ch.Publish(ctxT(t), amqp.Publishing{RoutingKey: q, Properties: amqp.Properties{Headers: amqp.Table{
		"neg": amqp.Decimal{Scale: 2, Value: -123}, "pos": amqp.Decimal{Scale: 1, Value: 456}}}})
	require.NoError(t, err)
	require.NoError(t, conf.Wait(ctxT(t)))

	out := testenv.RunPika(t, brokerURL(t), pikaDecimals, q)
	require.Equal(t, "-1.23 45.6\n", out)

	d, ok, err := ch.Get(ctxT(t), q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, amqp.Decimal{Scale: 2, Value: -123}, d.Headers["neg"])
	require.Equal(t, amqp.Decimal{Scale: 1, Value: 456}, d.Headers["pos"])
}
