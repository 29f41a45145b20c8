package sansio

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Run the fuzzers with, for example:
//
//	go test -run '^$' -fuzz FuzzParseFrame -fuzztime 70s -parallel 1 ./internal/sansio
//	go test -run '^$' -fuzz FuzzDecodeTable -fuzztime 70s -parallel 1 ./internal/sansio
//
// The seeds below, and any crashers saved under testdata/fuzz, run in every
// go test.

// requireIsCodecError fails unless err is an *Error.
func requireIsCodecError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	require.True(t, errors.As(err, &e), "error %v (%T) is not an *Error", err, err)
}

// hasNaN reports whether v holds a float NaN anywhere, which makes a decoded
// value unequal to itself.
func hasNaN(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.IsNaN(v.Float())
	case reflect.Interface, reflect.Pointer:
		return !v.IsNil() && hasNaN(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return false
		}
		for i := range v.NumField() {
			if hasNaN(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if hasNaN(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if hasNaN(it.Value()) {
				return true
			}
		}
	}
	return false
}

func FuzzParseFrame(f *testing.F) {
	stream, _ := codecStream(f)
	f.Add(stream)
	for _, v := range codecMethodVectors() {
		f.Add(v.wire)
	}
	for _, m := range codecFilledMethods(f) {
		buf, err := AppendMethodFrame(nil, 1, m)
		require.NoError(f, err)
		f.Add(buf)
	}
	deliver, err := AppendMethodFrame(nil, 1, &BasicDeliver{
		ConsumerTag: "amq.ctag-1", DeliveryTag: 1, Exchange: "amq.topic", RoutingKey: "a.b",
	})
	require.NoError(f, err)
	deliver, err = AppendContentHeaderFrame(deliver, 1, ClassBasic, 5, &Properties{
		ContentType: "text/plain", Headers: codecSampleTable(), DeliveryMode: 2,
		Timestamp: time.Unix(1700000000, 0), MessageID: "m",
	})
	require.NoError(f, err)
	f.Add(AppendBodyFrames(deliver, 1, []byte("hello"), 131072))
	f.Add(AppendHeartbeat(nil))
	f.Add(AppendProtocolHeader(nil))
	f.Add([]byte{2, 0, 1, 0, 0, 0, 14, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0xce}) // continuation flag
	f.Add([]byte{1, 0, 0, 0, 0, 0, 8, 0, 10, 0, 20, 0xff, 0xff, 0xff, 0xff, 0xce})             // huge long string

	f.Fuzz(func(t *testing.T, data []byte) {
		var d, again Decoder
		var h, h2 ContentHeader
		for p := data; len(p) > 0; {
			fr, n, err := ParseFrame(p, 131072)
			if err != nil {
				requireIsCodecError(t, err)
				require.Zero(t, n)
				return
			}
			if n == 0 {
				return // need more
			}
			require.LessOrEqual(t, n, len(p))
			require.LessOrEqual(t, n, 131072)
			require.Equal(t, n, len(fr.Payload)+8)

			switch fr.Type {
			case FrameMethod:
				m, err := d.DecodeMethod(fr.Payload)
				if err != nil {
					requireIsCodecError(t, err)
					break
				}
				// What decodes encodes, and decodes the same.
				enc, err := AppendMethodFrame(nil, fr.Channel, m)
				require.NoError(t, err)
				fr2, n2, err := ParseFrame(enc, 0)
				require.NoError(t, err)
				require.Equal(t, len(enc), n2)
				require.LessOrEqual(t, len(fr2.Payload), len(fr.Payload))
				m2, err := again.DecodeMethod(fr2.Payload)
				require.NoError(t, err)
				if !hasNaN(reflect.ValueOf(m)) {
					require.Equal(t, m, m2)
				}
			case FrameHeader:
				if err := d.DecodeContentHeader(fr.Payload, &h); err != nil {
					requireIsCodecError(t, err)
					break
				}
				enc, err := AppendContentHeaderFrame(nil, fr.Channel, h.ClassID, h.BodySize, &h.Properties)
				require.NoError(t, err)
				fr2, _, err := ParseFrame(enc, 0)
				require.NoError(t, err)
				require.NoError(t, again.DecodeContentHeader(fr2.Payload, &h2))
				if !hasNaN(reflect.ValueOf(h)) {
					require.Equal(t, h, h2)
				}
			}
			p = p[n:]
		}
	})
}

func FuzzDecodeTable(f *testing.F) {
	for _, tbl := range []Table{
		nil,
		codecSampleTable(),
		{"capabilities": Table{"publisher_confirms": true, "consumer_cancel_notify": true}, "product": "RabbitMQ"},
		{"x-queue-type": "quorum", "x-max-length": int64(1000), "x-dead-letter-exchange": ""},
		{"a": []any{[]any{[]any{}}, Table{"b": Table{}}}},
		{"nan": math.NaN(), "inf": math.Inf(-1), "f": float32(math.NaN())},
	} {
		buf, err := AppendTable(nil, tbl)
		require.NoError(f, err)
		f.Add(buf)
	}
	f.Add([]byte{0, 0, 0, 3, 1, 'k', 'Z'})                         // unknown tag
	f.Add([]byte{0, 0, 0, 7, 1, 'k', 'S', 0xff, 0xff, 0xff, 0xff}) // huge long string
	f.Add([]byte{0, 0, 0, 8, 1, 'k', 't', 0, 1, 'k', 't', 2})      // duplicate key

	f.Fuzz(func(t *testing.T, data []byte) {
		tbl, err := DecodeTable(data)
		if err != nil {
			requireIsCodecError(t, err)
			require.Nil(t, tbl)
			return
		}
		enc, err := AppendTable(nil, tbl)
		require.NoError(t, err)
		require.LessOrEqual(t, len(enc), len(data)) // duplicate keys shrink it
		again, err := DecodeTable(enc)
		require.NoError(t, err)
		if !hasNaN(reflect.ValueOf(tbl)) {
			require.Equal(t, tbl, again)
		}
	})
}
