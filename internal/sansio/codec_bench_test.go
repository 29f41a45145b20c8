package sansio

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// codecEncodePublish returns a function that encodes a message as a
// publisher does: basic.publish, a content header with a few properties and
// a 1 KiB body, into a reused buffer; and the size of what it encodes.
func codecEncodePublish(tb testing.TB) (encode func(), size int) {
	pub := &BasicPublish{Exchange: "amq.direct", RoutingKey: "orders.created"}
	props := &Properties{ContentType: "application/json", DeliveryMode: 2}
	body := make([]byte, 1024)
	buf := make([]byte, 0, 2048)
	encode = func() {
		var err error
		buf = buf[:0]
		buf, err = AppendMethodFrame(buf, 1, pub)
		if err != nil {
			tb.Fatal(err)
		}
		buf, err = AppendContentHeaderFrame(buf, 1, ClassBasic, uint64(len(body)), props)
		if err != nil {
			tb.Fatal(err)
		}
		buf = AppendBodyFrames(buf, 1, body, 131072)
	}
	encode()
	return encode, len(buf)
}

// codecDecodeDeliver returns a function that decodes a delivery as a
// consumer does: the basic.deliver frame, its content header and its body
// frame, reusing one Decoder and one ContentHeader; and the size of what it
// decodes.
func codecDecodeDeliver(tb testing.TB) (decode func(), size int) {
	in, err := AppendMethodFrame(nil, 1, &BasicDeliver{
		ConsumerTag: "amq.ctag-K2f8dX3M1lYzV0Vx0cQ4ZQ", DeliveryTag: 12345,
		Exchange: "amq.direct", RoutingKey: "orders.created",
	})
	require.NoError(tb, err)
	in, err = AppendContentHeaderFrame(in, 1, ClassBasic, 1024, &Properties{ContentType: "application/json", DeliveryMode: 2})
	require.NoError(tb, err)
	in = AppendBodyFrames(in, 1, make([]byte, 1024), 131072)

	var d Decoder
	var h ContentHeader
	decode = func() {
		p := in
		f, n, err := ParseFrame(p, 131072)
		if err != nil || n == 0 {
			tb.Fatal(n, err)
		}
		m, err := d.DecodeMethod(f.Payload)
		if err != nil || m.(*BasicDeliver).DeliveryTag != 12345 {
			tb.Fatal(m, err)
		}
		p = p[n:]
		f, n, err = ParseFrame(p, 131072)
		if err != nil || n == 0 {
			tb.Fatal(n, err)
		}
		if err := d.DecodeContentHeader(f.Payload, &h); err != nil {
			tb.Fatal(err)
		}
		p = p[n:]
		f, n, err = ParseFrame(p, 131072)
		if err != nil || n != len(p) || uint64(len(f.Payload)) != h.BodySize {
			tb.Fatal(n, err)
		}
	}
	decode() // the first decode fills the decoder's string interner
	return decode, len(in)
}

func BenchmarkEncodePublish(b *testing.B) {
	encode, size := codecEncodePublish(b)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		encode()
	}
}

func BenchmarkDecodeDeliver(b *testing.B) {
	decode, size := codecDecodeDeliver(b)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		decode()
	}
}

// TestCodecHotPathsDoNotAllocate checks in every go test what the benchmarks
// report.
func TestCodecHotPathsDoNotAllocate(t *testing.T) {
	encode, _ := codecEncodePublish(t)
	require.Zero(t, testing.AllocsPerRun(100, encode), "allocations to encode a publish")
	decode, _ := codecDecodeDeliver(t)
	require.Zero(t, testing.AllocsPerRun(100, decode), "allocations to decode a delivery")
}
