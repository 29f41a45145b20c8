package sansio

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Byte vectors written by hand from the AMQP 0-9-1 specification (section
// 4.2, "AMQP Wire-Level Format", and the class and method definitions), not
// produced by the codec under test.

// codecBytes concatenates octets (ints 0-255), ASCII runes, strings and byte
// slices, so that a vector can be written one commented group at a time.
func codecBytes(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			if p < 0 || p > 0xff {
				panic("codecBytes: octet out of range")
			}
			b = append(b, byte(p))
		case rune: // a field type tag such as 'S'
			if p > 0x7f {
				panic("codecBytes: tag out of range")
			}
			b = append(b, byte(p))
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic("codecBytes: unsupported part")
		}
	}
	return b
}

func TestCodecVectorProtocolHeader(t *testing.T) {
	wire := codecBytes(
		"AMQP",  // literal protocol name
		0,       // protocol ID 0
		0, 9, 1, // version 0-9-1
	)
	require.Equal(t, wire, AppendProtocolHeader(nil))
	require.Equal(t, wire, ProtocolHeader[:])

	version, ok, need := ParseProtocolHeader(wire)
	require.True(t, ok)
	require.False(t, need)
	require.Equal(t, [4]byte{0, 0, 9, 1}, version)

	// A server that does not speak 0-9-1 answers with the header of the
	// version it does speak, here 1-0 (AMQP 1.0 with protocol ID 0).
	version, ok, need = ParseProtocolHeader(codecBytes("AMQP", 0, 1, 0, 0))
	require.True(t, ok)
	require.False(t, need)
	require.Equal(t, [4]byte{0, 1, 0, 0}, version)

	for i := range len(wire) {
		_, ok, need := ParseProtocolHeader(wire[:i])
		require.False(t, ok, "prefix of %d bytes", i)
		require.True(t, need, "prefix of %d bytes", i)
	}
	for _, p := range [][]byte{{1, 0, 0}, []byte("HTTP/1.1"), []byte("AMQ!")} {
		_, ok, need := ParseProtocolHeader(p)
		require.False(t, ok)
		require.False(t, need)
	}

	// A protocol header where a frame is expected is a frame error.
	_, _, err := ParseFrame(wire, 0)
	requireCodecError(t, err, FrameError)
}

func TestCodecVectorHeartbeat(t *testing.T) {
	wire := codecBytes(
		8,    // frame type: heartbeat
		0, 0, // channel 0
		0, 0, 0, 0, // payload size 0
		0xce, // frame end
	)
	require.Equal(t, wire, AppendHeartbeat(nil))
	f, n, err := ParseFrame(wire, 4096)
	require.NoError(t, err)
	require.Equal(t, 8, n)
	require.Equal(t, Frame{Type: FrameHeartbeat, Channel: 0, Payload: []byte{}}, f)
}

// codecMethodVector is a method frame and the method it carries.
type codecMethodVector struct {
	name    string
	wire    []byte // the whole frame
	channel uint16
	method  Method

	// anyTableOrder is set when a table has several entries, which the
	// encoder writes in map order: the encoding is then checked by length
	// and by decoding it, not byte for byte.
	anyTableOrder bool
}

func codecMethodVectors() []codecMethodVector {
	return []codecMethodVector{
		{
			name: "connection.start",
			wire: codecBytes(
				1,    // frame type: method
				0, 0, // channel 0
				0, 0, 0, 0x6e, // payload size 110
				0, 10, 0, 10, // class 10 connection, method 10 start
				0, // version-major 0
				9, // version-minor 9
				// server-properties: a table of 73 bytes
				0, 0, 0, 0x49,
				12, "capabilities", // key
				'F', 0, 0, 0, 0x22, // field table of 34 bytes
				18, "publisher_confirms", 't', 1, // key, boolean true
				10, "basic.nack", 't', 1, // key, boolean true
				7, "product", // key
				'S', 0, 0, 0, 8, "RabbitMQ", // long string of 8 bytes
				0, 0, 0, 14, "PLAIN AMQPLAIN", // mechanisms: long string
				0, 0, 0, 5, "en_US", // locales: long string
				0xce, // frame end
			),
			method: &ConnectionStart{
				VersionMajor: 0,
				VersionMinor: 9,
				ServerProperties: Table{
					"capabilities": Table{"publisher_confirms": true, "basic.nack": true},
					"product":      "RabbitMQ",
				},
				Mechanisms: []byte("PLAIN AMQPLAIN"),
				Locales:    []byte("en_US"),
			},
			anyTableOrder: true,
		},
		{
			name: "connection.start-ok",
			wire: codecBytes(
				1, 0, 0, // method frame, channel 0
				0, 0, 0, 0x39, // payload size 57
				0, 10, 0, 11, // class 10 connection, method 11 start-ok
				0, 0, 0, 0x15, // client-properties: a table of 21 bytes
				7, "product", 'S', 0, 0, 0, 8, "amqproto",
				5, "PLAIN", // mechanism: short string
				0, 0, 0, 12, "\x00guest\x00guest", // response: long string
				5, "en_US", // locale: short string
				0xce,
			),
			method: &ConnectionStartOk{
				ClientProperties: Table{"product": "amqproto"},
				Mechanism:        "PLAIN",
				Response:         []byte("\x00guest\x00guest"),
				Locale:           "en_US",
			},
		},
		{
			name: "connection.tune",
			wire: codecBytes(
				1, 0, 0, // method frame, channel 0
				0, 0, 0, 12, // payload size 12
				0, 10, 0, 30, // class 10 connection, method 30 tune
				0x07, 0xff, // channel-max 2047
				0, 2, 0, 0, // frame-max 131072
				0, 60, // heartbeat 60 s
				0xce,
			),
			method: &ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
		},
		{
			name: "connection.open",
			wire: codecBytes(
				1, 0, 0, // method frame, channel 0
				0, 0, 0, 8, // payload size 8
				0, 10, 0, 40, // class 10 connection, method 40 open
				1, "/", // virtual-host: short string
				0,    // reserved-1 (capabilities): empty short string
				0,    // reserved-2 (insist): bit, in an octet of its own
				0xce, //
			),
			method: &ConnectionOpen{VirtualHost: "/"},
		},
		{
			name: "connection.close",
			wire: codecBytes(
				1, 0, 0, // method frame, channel 0
				0, 0, 0, 28, // payload size 28
				0, 10, 0, 50, // class 10 connection, method 50 close
				0x01, 0x40, // reply-code 320
				17, "CONNECTION_FORCED", // reply-text
				0, 0, // class-id 0
				0, 0, // method-id 0
				0xce,
			),
			method: &ConnectionClose{ReplyCode: 320, ReplyText: "CONNECTION_FORCED"},
		},
		{
			name: "channel.open",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 5, // payload size 5
				0, 20, 0, 10, // class 20 channel, method 10 open
				0, // reserved-1 (out-of-band): empty short string
				0xce,
			),
			channel: 1,
			method:  &ChannelOpen{},
		},
		{
			name: "channel.open-ok",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 8, // payload size 8
				0, 20, 0, 11, // class 20 channel, method 11 open-ok
				0, 0, 0, 0, // reserved-1 (channel-id): empty long string
				0xce,
			),
			channel: 1,
			method:  &ChannelOpenOk{},
		},
		{
			name: "channel.close",
			wire: codecBytes(
				1, 0xff, 0xff, // method frame, channel 65535
				0, 0, 0, 30, // payload size 30
				0, 20, 0, 40, // class 20 channel, method 40 close
				0x01, 0x96, // reply-code 406
				19, "PRECONDITION_FAILED", // reply-text
				0, 50, // class-id 50 queue
				0, 10, // method-id 10 declare
				0xce,
			),
			channel: 65535,
			method:  &ChannelClose{ReplyCode: 406, ReplyText: "PRECONDITION_FAILED", ClassID: 50, MethodID: 10},
		},
		{
			name: "queue.declare with durable and auto-delete",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 41, // payload size 41
				0, 50, 0, 10, // class 50 queue, method 10 declare
				0, 0, // reserved-1 (ticket)
				5, "tasks", // queue
				// five bits packed from the least significant: passive (0),
				// durable (1), exclusive (0), auto-delete (1), no-wait (0)
				0x0a,
				0, 0, 0, 24, // arguments: a table of 24 bytes
				12, "x-queue-type", 'S', 0, 0, 0, 6, "quorum",
				0xce,
			),
			channel: 1,
			method: &QueueDeclare{
				Queue: "tasks", Durable: true, AutoDelete: true,
				Arguments: Table{"x-queue-type": "quorum"},
			},
		},
		{
			name: "queue.declare with all five bits",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 12, // payload size 12
				0, 50, 0, 10, // class 50 queue, method 10 declare
				0, 0, // reserved-1 (ticket)
				0,          // queue: empty, the server names it
				0x1f,       // passive, durable, exclusive, auto-delete, no-wait
				0, 0, 0, 0, // arguments: empty table
				0xce,
			),
			channel: 1,
			method: &QueueDeclare{
				Passive: true, Durable: true, Exclusive: true, AutoDelete: true, NoWait: true,
			},
		},
		{
			name: "basic.qos",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 11, // payload size 11
				0, 60, 0, 10, // class 60 basic, method 10 qos
				0, 0, 0, 0, // prefetch-size 0
				0, 10, // prefetch-count 10
				0, // global false
				0xce,
			),
			channel: 1,
			method:  &BasicQos{PrefetchCount: 10},
		},
		{
			name: "basic.publish",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 21, // payload size 21
				0, 60, 0, 40, // class 60 basic, method 40 publish
				0, 0, // reserved-1 (ticket)
				10, "amq.direct", // exchange
				2, "rk", // routing-key
				0x01, // mandatory (bit 0) true, immediate (bit 1) false
				0xce,
			),
			channel: 1,
			method:  &BasicPublish{Exchange: "amq.direct", RoutingKey: "rk", Mandatory: true},
		},
		{
			name: "basic.deliver",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 28, // payload size 28
				0, 60, 0, 60, // class 60 basic, method 60 deliver
				6, "ctag-1", // consumer-tag
				0, 0, 0, 0, 0, 0, 0, 42, // delivery-tag 42
				0x01,        // redelivered true
				0,           // exchange: the default exchange
				6, "orders", // routing-key
				0xce,
			),
			channel: 1,
			method: &BasicDeliver{
				ConsumerTag: "ctag-1", DeliveryTag: 42, Redelivered: true, RoutingKey: "orders",
			},
		},
		{
			name: "basic.ack with multiple",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 13, // payload size 13
				0, 60, 0, 80, // class 60 basic, method 80 ack
				0, 0, 0, 0, 0, 0, 0, 7, // delivery-tag 7
				0x01, // multiple true
				0xce,
			),
			channel: 1,
			method:  &BasicAck{DeliveryTag: 7, Multiple: true},
		},
		{
			name: "basic.nack with multiple and requeue",
			wire: codecBytes(
				1, 0, 2, // method frame, channel 2
				0, 0, 0, 13, // payload size 13
				0, 60, 0, 120, // class 60 basic, method 120 nack
				1, 2, 3, 4, 5, 6, 7, 8, // delivery-tag
				0x03, // multiple (bit 0) and requeue (bit 1)
				0xce,
			),
			channel: 2,
			method:  &BasicNack{DeliveryTag: 0x0102030405060708, Multiple: true, Requeue: true},
		},
		{
			name: "confirm.select",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 5, // payload size 5
				0, 85, 0, 10, // class 85 confirm, method 10 select
				0, // nowait false
				0xce,
			),
			channel: 1,
			method:  &ConfirmSelect{},
		},
		{
			name: "tx.commit-ok",
			wire: codecBytes(
				1, 0, 1, // method frame, channel 1
				0, 0, 0, 4, // payload size 4
				0, 90, 0, 21, // class 90 tx, method 21 commit-ok; no arguments
				0xce,
			),
			channel: 1,
			method:  &TxCommitOk{},
		},
	}
}

func TestCodecVectorMethods(t *testing.T) {
	var d Decoder
	for _, v := range codecMethodVectors() {
		t.Run(v.name, func(t *testing.T) {
			f, n, err := ParseFrame(v.wire, 131072)
			require.NoError(t, err)
			require.Equal(t, len(v.wire), n)
			require.Equal(t, uint8(FrameMethod), f.Type)
			require.Equal(t, v.channel, f.Channel)
			got, err := d.DecodeMethod(f.Payload)
			require.NoError(t, err)
			require.Equal(t, v.method, got)

			enc, err := AppendMethodFrame(nil, v.channel, v.method)
			require.NoError(t, err)
			if !v.anyTableOrder {
				require.Equal(t, v.wire, enc)
				return
			}
			require.Len(t, enc, len(v.wire))
			require.Equal(t, v.wire[:7], enc[:7], "frame header")
			f, _, err = ParseFrame(enc, 131072)
			require.NoError(t, err)
			got, err = d.DecodeMethod(f.Payload)
			require.NoError(t, err)
			require.Equal(t, v.method, got)
		})
	}
}

func TestCodecVectorContentHeaderAndBody(t *testing.T) {
	header := codecBytes(
		2,    // frame type: header
		0, 1, // channel 1
		0, 0, 0, 0x69, // payload size 105
		0, 60, // class-id 60 basic
		0, 0, // weight 0
		0, 0, 0, 0, 0, 0, 0, 11, // body size 11
		0xff, 0xfc, // property flags: all 14 properties, no continuation
		10, "text/plain", // content-type
		5, "utf-8", // content-encoding
		0, 0, 0, 8, 1, "k", 'S', 0, 0, 0, 1, "v", // headers: {"k": "v"}
		2,         // delivery-mode: persistent
		5,         // priority
		4, "corr", // correlation-id
		7, "replies", // reply-to
		5, "60000", // expiration
		5, "msg-1", // message-id
		0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, // timestamp 1700000000
		13, "order.created", // type
		5, "guest", // user-id
		3, "app", // app-id
		2, "c1", // cluster-id (reserved in 0-9-1)
		0xce,
	)
	body := codecBytes(
		3,    // frame type: body
		0, 1, // channel 1
		0, 0, 0, 11, // payload size 11
		"hello world",
		0xce,
	)
	want := ContentHeader{
		ClassID:  ClassBasic,
		BodySize: 11,
		Properties: Properties{
			ContentType:     "text/plain",
			ContentEncoding: "utf-8",
			Headers:         Table{"k": "v"},
			DeliveryMode:    2,
			Priority:        5,
			CorrelationID:   "corr",
			ReplyTo:         "replies",
			Expiration:      "60000",
			MessageID:       "msg-1",
			Timestamp:       time.Unix(1700000000, 0).UTC(),
			Type:            "order.created",
			UserID:          "guest",
			AppID:           "app",
			ClusterID:       "c1",
		},
	}

	stream := append(append([]byte{}, header...), body...)
	f, n, err := ParseFrame(stream, 4096)
	require.NoError(t, err)
	require.Equal(t, len(header), n)
	require.Equal(t, uint8(FrameHeader), f.Type)
	require.Equal(t, uint16(1), f.Channel)
	var d Decoder
	var got ContentHeader
	require.NoError(t, d.DecodeContentHeader(f.Payload, &got))
	require.Equal(t, want, got)

	f, n, err = ParseFrame(stream[n:], 4096)
	require.NoError(t, err)
	require.Equal(t, len(body), n)
	require.Equal(t, Frame{Type: FrameBody, Channel: 1, Payload: []byte("hello world")}, f)

	enc, err := AppendContentHeaderFrame(nil, 1, ClassBasic, 11, &want.Properties)
	require.NoError(t, err)
	require.Equal(t, header, enc)
	require.Equal(t, body, AppendBodyFrames(nil, 1, []byte("hello world"), 4096))

	// A message with only delivery-mode, as most publishers send.
	header = codecBytes(
		2, 0, 1, // header frame, channel 1
		0, 0, 0, 15, // payload size 15
		0, 60, 0, 0, // class-id 60, weight 0
		0, 0, 0, 0, 0, 0, 0x04, 0x00, // body size 1024
		0x10, 0x00, // property flags: delivery-mode (bit 12) only
		1, // delivery-mode: transient
		0xce,
	)
	enc, err = AppendContentHeaderFrame(nil, 1, ClassBasic, 1024, &Properties{DeliveryMode: 1})
	require.NoError(t, err)
	require.Equal(t, header, enc)
	require.NoError(t, d.DecodeContentHeader(header[7:len(header)-1], &got))
	require.Equal(t, ContentHeader{ClassID: ClassBasic, BodySize: 1024, Properties: Properties{DeliveryMode: 1}}, got)
}

// TestCodecVectorTableEveryType decodes a table holding every field type,
// and encodes each entry alone (the encoder writes several entries in map
// order).
func TestCodecVectorTableEveryType(t *testing.T) {
	entries := []struct {
		key   string
		value any
		wire  []byte
	}{
		{"t", true, codecBytes(1, "t", 't', 1)},
		{"b", int8(-2), codecBytes(1, "b", 'b', 0xfe)},
		{"B", uint8(254), codecBytes(1, "B", 'B', 0xfe)},
		{"s", int16(-200), codecBytes(1, "s", 's', 0xff, 0x38)},
		{"u", uint16(65336), codecBytes(1, "u", 'u', 0xff, 0x38)},
		{"I", int32(-200), codecBytes(1, "I", 'I', 0xff, 0xff, 0xff, 0x38)},
		{"i", uint32(4294967096), codecBytes(1, "i", 'i', 0xff, 0xff, 0xff, 0x38)},
		{"l", int64(-200), codecBytes(1, "l", 'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x38)},
		{"f", float32(1.5), codecBytes(1, "f", 'f', 0x3f, 0xc0, 0, 0)},               // IEEE 754 single
		{"d", float64(-2.25), codecBytes(1, "d", 'd', 0xc0, 0x02, 0, 0, 0, 0, 0, 0)}, // IEEE 754 double
		{"D", Decimal{Scale: 2, Value: 12345}, codecBytes(1, "D", 'D', 2, 0, 0, 0x30, 0x39)},
		// Signed, as RabbitMQ and pika encode it: pika sends Decimal('-1.23') so.
		{"n", Decimal{Scale: 2, Value: -123}, codecBytes(1, "n", 'D', 2, 0xff, 0xff, 0xff, 0x85)},
		{"S", "hi", codecBytes(1, "S", 'S', 0, 0, 0, 2, "hi")},
		{"A", []any{int8(1), ""}, codecBytes(1, "A", 'A', 0, 0, 0, 7, 'b', 1, 'S', 0, 0, 0, 0)},
		{"T", time.Unix(1700000000, 0).UTC(), codecBytes(1, "T", 'T', 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0)},
		{"F", Table{"e": Table{}}, codecBytes(1, "F", 'F', 0, 0, 0, 7, 1, "e", 'F', 0, 0, 0, 0)},
		{"V", nil, codecBytes(1, "V", 'V')},
		{"x", []byte{0, 0xff}, codecBytes(1, "x", 'x', 0, 0, 0, 2, 0, 0xff)},
	}
	var content []byte
	want := Table{}
	for _, e := range entries {
		content = append(content, e.wire...)
		want[e.key] = e.value

		enc, err := AppendTable(nil, Table{e.key: e.value})
		require.NoError(t, err)
		require.Equal(t, append(binary.BigEndian.AppendUint32(nil, uint32(len(e.wire))), e.wire...), enc, "entry %q", e.key)
	}
	wire := append(binary.BigEndian.AppendUint32(nil, uint32(len(content))), content...)
	got, err := DecodeTable(wire)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// A key that appears twice keeps its last value.
	got, err = DecodeTable(codecBytes(0, 0, 0, 8, 1, "k", 't', 0, 1, "k", 't', 1))
	require.NoError(t, err)
	require.Equal(t, Table{"k": true}, got)
}

// TestCodecVectorConsecutiveBits tests the bit packing of the writer and
// reader directly: no method of 0-9-1 has eight or nine consecutive bits.
// Bits fill an octet from its least significant bit; a ninth bit starts a
// new octet, and so does a bit after any other field.
func TestCodecVectorConsecutiveBits(t *testing.T) {
	pattern := []bool{true, false, true, true, false, false, false, true, true}
	cases := []struct {
		name string
		bits []bool
		wire []byte
	}{
		{"one", pattern[:1], codecBytes(0x01, 0x42)},
		{"eight", pattern[:8], codecBytes(
			0x8d, // 1000_1101: bits 0, 2, 3 and 7 set
			0x42, // the octet after the bits
		)},
		{"nine", pattern, codecBytes(
			0x8d, // bits 1-8 as above
			0x01, // the ninth bit, alone in the next octet
			0x42,
		)},
		{"eight true", []bool{true, true, true, true, true, true, true, true}, codecBytes(0xff, 0x42)},
		{"nine true", []bool{true, true, true, true, true, true, true, true, true}, codecBytes(0xff, 0x01, 0x42)},
		{"nine false", make([]bool, 9), codecBytes(0, 0, 0x42)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := writer{buf: []byte{}}
			for _, b := range c.bits {
				w.bit(b)
			}
			w.octet(0x42)
			require.NoError(t, w.err)
			require.Equal(t, c.wire, w.buf)

			r := reader{buf: c.wire}
			var got []bool
			for range c.bits {
				got = append(got, r.bit())
			}
			require.Equal(t, uint8(0x42), r.octet())
			r.end("bits")
			require.NoError(t, r.err)
			require.Equal(t, c.bits, got)
		})
	}

	// Any other field ends a run of bits: bit, short, bit, bit is three
	// octets, not one.
	w := writer{}
	w.bit(true)
	w.short(0x0102)
	w.bit(false)
	w.bit(true)
	require.Equal(t, codecBytes(0x01, 0x01, 0x02, 0x02), w.buf)
	r := reader{buf: w.buf}
	require.True(t, r.bit())
	require.Equal(t, uint16(0x0102), r.short())
	require.False(t, r.bit())
	require.True(t, r.bit())
	r.end("bits")
	require.NoError(t, r.err)
}
