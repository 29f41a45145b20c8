package sansio

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The server properties are kept as encoded and decoded at each call:
// every field type a broker may send comes back as it was sent, and each
// call returns tables of its own, which the caller may change.
func TestServerPropertiesComeBackWholeAndIndependent(t *testing.T) {
	sent := Table{
		"product": "RabbitMQ",
		"capabilities": Table{
			"publisher_confirms":           true,
			"authentication_failure_close": true,
		},
		"int8": int8(-1), "uint8": uint8(2), "int16": int16(-3), "uint16": uint16(4),
		"int32": int32(-5), "uint32": uint32(6), "int64": int64(-7),
		"float32": float32(1.5), "float64": 2.25,
		"decimal": Decimal{Scale: 2, Value: -314},
		"bytes":   []byte("raw"),
		"array":   []any{"a", int32(1), Table{"k": "v"}, []any{}},
		"time":    time.Unix(1700000000, 0).UTC(),
		"void":    nil,
		"empty":   Table{},
	}
	c, p := startConn(t, Config{Auth: []Auth{guest()}})
	start := rabbitStart()
	start.ServerProperties = sent
	require.Empty(t, drive(t, c, t0, p.method(0, start)))
	require.Equal(t, sent, c.ServerProperties())
	require.True(t, c.serverCapability("authentication_failure_close"))

	got := c.ServerProperties()
	got["product"] = "changed"
	got["capabilities"].(Table)["publisher_confirms"] = false
	got["bytes"].([]byte)[0] = 'X'
	got["array"].([]any)[0] = "changed"
	require.Equal(t, sent, c.ServerProperties(), "a caller's change reached the next call")
}

// Methods a client receives once in a while are decoded into values of
// their own: one decoded earlier is not overwritten by the next. Only the
// per-message methods (basic.deliver, ack, nack, return, get-ok,
// get-empty) reuse one value, valid until the next DecodeMethod.
func TestRareMethodsAreNotReusedByTheDecoder(t *testing.T) {
	var d Decoder
	decode := func(m Method) Method {
		t.Helper()
		frame, err := AppendMethodFrame(nil, 1, m)
		require.NoError(t, err)
		f, _, err := ParseFrame(frame, 0)
		require.NoError(t, err)
		got, err := d.DecodeMethod(f.Payload)
		require.NoError(t, err)
		return got
	}
	rare := []Method{
		&QueueDeclareOk{Queue: "q1", MessageCount: 1},
		&BasicConsumeOk{ConsumerTag: "c1"},
		&BasicCancel{ConsumerTag: "c1"},
		&ChannelClose{ReplyCode: 404, ReplyText: "NOT_FOUND"},
		&ConnectionClose{ReplyCode: 320, ReplyText: "CONNECTION_FORCED"},
		&ConnectionBlocked{Reason: "low on memory"},
	}
	for _, want := range rare {
		first := decode(want)
		second := decode(want)
		require.NotSame(t, first, second, "%s decoded into the same value twice", want.ID())
		require.Equal(t, want, first)
	}
	deliver := decode(&BasicDeliver{ConsumerTag: "c", DeliveryTag: 1})
	again := decode(&BasicDeliver{ConsumerTag: "c", DeliveryTag: 2})
	require.Same(t, deliver, again, "basic.deliver is decoded into one reused value")
}
