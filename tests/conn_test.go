package tests

import (
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

func TestConnInformation(t *testing.T) {
	t.Parallel()
	c := dialURL(t, userURL(t, "guest", "guest")+"?heartbeat=7&channel_max=100", amqp.Config{ConnectionName: t.Name()})
	channelMax, frameMax, heartbeat := c.Tuning()
	require.Equal(t, uint16(100), channelMax)
	require.NotZero(t, frameMax)
	require.Equal(t, 7*time.Second, heartbeat)
	require.Equal(t, "RabbitMQ", c.ServerProperties()["product"])
	caps, ok := c.ServerProperties()["capabilities"].(amqp.Table)
	require.True(t, ok)
	require.Equal(t, true, caps["publisher_confirms"])
	require.Equal(t, "guest", c.URI().Username)
	require.NotContains(t, c.URI().String(), "guest:guest@", "String hides the password")
}

func TestUpdateSecret(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	err := c.UpdateSecret(ctxT(t), []byte("guest"), "rotation")
	t.Logf("update-secret: %v", err)
	require.NoError(t, err)
	tempQueue(t, channel(t, c))
}

// Every property and every field-table type survives the trip through the
// broker.
func TestPropertiesRoundTrip(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	q := tempQueue(t, ch)

	ts := time.Unix(1700000000, 0)
	props := amqp.Properties{
		ContentType:     "application/json",
		ContentEncoding: "gzip",
		Headers: amqp.Table{
			"bool":    true,
			"int8":    int8(-8),
			"int16":   int16(-16),
			"int32":   int32(-32),
			"int64":   int64(-64),
			"float32": float32(1.5),
			"float64": 2.25,
			"string":  "héllo",
			"bytes":   []byte{0, 1, 2},
			"time":    ts,
			"decimal": amqp.Decimal{Scale: 2, Value: 12345},
			"table":   amqp.Table{"nested": "yes"},
			"array":   []any{int32(1), "two", true},
			"void":    nil,
		},
		DeliveryMode:  amqp.Persistent,
		Priority:      5,
		CorrelationID: "corr",
		ReplyTo:       "reply",
		Expiration:    "60000",
		MessageID:     "msg",
		Timestamp:     ts,
		Type:          "kind",
		UserID:        "guest", // RabbitMQ checks it against the connection's user
		AppID:         "amqproto-tests",
	}
	conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Properties: props, Body: []byte("{}")})
	require.NoError(t, err)
	require.NoError(t, conf.Wait(ctx))

	d, ok, err := ch.Get(ctx, q, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, d.Timestamp.Equal(ts))
	require.True(t, d.Headers["time"].(time.Time).Equal(ts))
	d.Timestamp, props.Timestamp = time.Time{}, time.Time{}
	d.Headers["time"], props.Headers["time"] = nil, nil
	require.Equal(t, props, d.Properties)
	require.Equal(t, "{}", string(d.Body))
}
