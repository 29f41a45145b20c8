package sansio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireCodecError fails unless err is an *Error with the given code.
func requireCodecError(t testing.TB, err error, code ReplyCode) {
	t.Helper()
	require.Error(t, err)
	var e *Error
	require.True(t, errors.As(err, &e), "error %v (%T) is not an *Error", err, err)
	require.Equal(t, code, e.Code, "error: %v", err)
}

// codecSampleTable returns a table holding a little of everything, to fill
// the table arguments of methods and the headers property.
func codecSampleTable() Table {
	return Table{
		"bool":    true,
		"int8":    int8(-8),
		"uint8":   uint8(200),
		"int16":   int16(-1600),
		"uint16":  uint16(60000),
		"int32":   int32(-320000),
		"uint32":  uint32(4000000000),
		"int64":   int64(-1 << 40),
		"float32": float32(1.5),
		"float64": float64(-2.25),
		"decimal": Decimal{Scale: 2, Value: 12345},
		"string":  "héllo",
		"bytes":   []byte{0, 1, 0xfe, 0xff},
		"array":   []any{"a", int32(1), []any{}, Table{"x": false}},
		"time":    time.Unix(1700000000, 0).UTC(),
		"nested":  Table{"deeper": Table{"leaf": "yes"}},
		"empty":   Table{},
		"void":    nil,
	}
}

// fillMethod sets every exported field of the method struct m points to to a
// non-zero value that differs between fields, so that swapped or shifted
// fields show. The i-th bool field (counting bools only) is set to
// boolAt(i). It fails the test on a field type it does not know, so that a
// new type in the generator cannot go untested.
func fillMethod(t testing.TB, m Method, boolAt func(i int) bool) {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	bools := 0
	for i := range v.NumField() {
		f := v.Field(i)
		name := m.ID().String() + "." + v.Type().Field(i).Name
		switch f.Interface().(type) {
		case bool:
			f.SetBool(boolAt(bools))
			bools++
		case uint8:
			f.SetUint(0x80 + uint64(i))
		case uint16:
			f.SetUint(0xa100 + uint64(i))
		case uint32:
			f.SetUint(0xdead0000 + uint64(i))
		case uint64:
			f.SetUint(0xfeedface00000000 + uint64(i))
		case string:
			f.SetString(name)
		case []byte:
			f.SetBytes(append([]byte("bytes of "+name), 0, 0xff))
		case Table:
			tbl := codecSampleTable()
			tbl["field"] = name
			f.Set(reflect.ValueOf(tbl))
		case time.Time:
			f.Set(reflect.ValueOf(time.Unix(1700000000+int64(i), 0).UTC()))
		default:
			t.Fatalf("%s: no test value for field type %s", name, f.Type())
		}
	}
}

// countBools returns the number of bool fields of the method.
func countBools(m Method) int {
	v := reflect.ValueOf(m).Elem()
	n := 0
	for i := range v.NumField() {
		if v.Field(i).Kind() == reflect.Bool {
			n++
		}
	}
	return n
}

// encodeDecodeMethod encodes m in a method frame on channel, parses the
// frame and decodes the method with d. The returned method belongs to d.
func encodeDecodeMethod(t *testing.T, d *Decoder, channel uint16, m Method) (Method, []byte) {
	t.Helper()
	buf, err := AppendMethodFrame(nil, channel, m)
	require.NoError(t, err)
	f, n, err := ParseFrame(buf, 131072)
	require.NoError(t, err)
	require.Equal(t, len(buf), n)
	require.Equal(t, uint8(FrameMethod), f.Type)
	require.Equal(t, channel, f.Channel)
	got, err := d.DecodeMethod(f.Payload)
	require.NoError(t, err)
	return got, buf
}

func TestCodecRoundTripEveryMethod(t *testing.T) {
	var d Decoder // one decoder for all, so reuse of its values is tested too
	for _, id := range allMethodIDs {
		t.Run(id.String(), func(t *testing.T) {
			require.NotNil(t, newMethod(id))
			require.Equal(t, id, newMethod(id).ID())
			require.NotContains(t, id.String(), "method(")

			patterns := map[string]func(int) bool{
				"all false": func(int) bool { return false },
				"all true":  func(int) bool { return true },
				"even":      func(i int) bool { return i%2 == 0 },
				"odd":       func(i int) bool { return i%2 == 1 },
			}
			for j := range countBools(newMethod(id)) {
				patterns[fmt.Sprintf("only bit %d", j)] = func(i int) bool { return i == j }
			}
			for name, boolAt := range patterns {
				want := newMethod(id)
				fillMethod(t, want, boolAt)
				got, buf := encodeDecodeMethod(t, &d, 0x1234, want)
				require.Equal(t, want, got, "bools %s", name)

				// The decoded method must not borrow the input.
				for i := range buf {
					buf[i] = 0xaa
				}
				require.Equal(t, want, got, "bools %s, after overwriting the input", name)
			}

			// The zero value round-trips too, and decoding it into the
			// decoder's reused value leaves nothing of the previous one.
			// An empty long string decodes as an empty, non-nil slice.
			zero := newMethod(id)
			got, _ := encodeDecodeMethod(t, &d, 0, zero)
			gotValue := reflect.ValueOf(got).Elem()
			for i := range gotValue.NumField() {
				if b, ok := gotValue.Field(i).Interface().([]byte); ok {
					require.Empty(t, b)
					gotValue.Field(i).SetBytes(nil)
				}
			}
			require.Equal(t, zero, got)
		})
	}
}

func TestCodecTableRoundTripEveryType(t *testing.T) {
	want := Table{
		"t":  true,
		"t0": false,
		"b":  int8(math.MinInt8),
		"B":  uint8(math.MaxUint8),
		"s":  int16(math.MinInt16),
		"u":  uint16(math.MaxUint16),
		"I":  int32(math.MinInt32),
		"i":  uint32(math.MaxUint32),
		"l":  int64(math.MinInt64),
		"f":  float32(-math.MaxFloat32),
		"d":  math.SmallestNonzeroFloat64,
		"D":  Decimal{Scale: 255, Value: math.MinInt32},
		"S":  "long string \x00 with a NUL",
		"S0": "",
		"A": []any{
			true, int8(1), uint8(2), int16(3), uint16(4), int32(5), uint32(6), int64(7),
			float32(8), float64(9), Decimal{1, 10}, "eleven", []byte("twelve"),
			[]any{[]any{}}, time.Unix(13, 0).UTC(), Table{"fourteen": nil}, nil,
		},
		"A0": []any{},
		"T":  time.Unix(-1, 0).UTC(),
		"F": Table{
			"nested": Table{"deeper": []any{Table{"deepest": "yes"}}},
			"empty":  Table{},
		},
		"F0": Table{},
		"V":  nil,
		"x":  []byte{0, 0xce, 0xff},
		"x0": []byte{},
		"":   "empty key",
	}
	buf, err := AppendTable([]byte("prefix"), want)
	require.NoError(t, err)
	require.Equal(t, "prefix", string(buf[:6]))
	got, err := DecodeTable(buf[6:])
	require.NoError(t, err)
	require.Equal(t, want, got)

	// An empty top-level table decodes as nil, and nil encodes as empty.
	for _, empty := range []Table{nil, {}} {
		buf, err := AppendTable(nil, empty)
		require.NoError(t, err)
		require.Equal(t, []byte{0, 0, 0, 0}, buf)
		got, err := DecodeTable(buf)
		require.NoError(t, err)
		require.Nil(t, got)
	}
}

// TestCodecTableAcceptedGoTypes covers the Go types that encode but decode
// as another type.
func TestCodecTableAcceptedGoTypes(t *testing.T) {
	in := Table{
		"int":   int(-42),
		"map":   map[string]any{"k": int(7)},
		"array": []any{int(1), map[string]any{}},
		"local": time.Unix(1700000000, 999).In(time.FixedZone("X", 3600)),
	}
	buf, err := AppendTable(nil, in)
	require.NoError(t, err)
	got, err := DecodeTable(buf)
	require.NoError(t, err)
	require.Equal(t, Table{
		"int":   int64(-42),
		"map":   Table{"k": int64(7)},
		"array": []any{int64(1), Table{}},
		"local": time.Unix(1700000000, 0).UTC(), // whole seconds, UTC
	}, got)
}

func TestCodecTableUnsupportedGoTypes(t *testing.T) {
	values := map[string]struct {
		v        any
		key, typ string
	}{
		"struct":         {struct{ A int }{1}, "value", "struct { A int }"},
		"chan":           {make(chan int), "value", "chan int"},
		"uint64 too big": {uint64(math.MaxInt64) + 1, "value", "uint64"},
		"uint too big":   {uint(math.MaxUint), "value", "uint"},
		"uintptr":        {uintptr(1), "value", "uintptr"},
		"pointer":        {new(int), "value", "*int"},
		"func":           {func() {}, "value", "func()"},
		"complex":        {complex(1, 2), "value", "complex128"},
		"[]string":       {[]string{"a"}, "value", "[]string"},
		"map[string]s":   {map[string]string{"a": "b"}, "value", "map[string]string"},
		"time pointer":   {&time.Time{}, "value", "*time.Time"},
		"in an array":    {[]any{"ok", uint64(math.MaxUint64)}, "value[1]", "uint64"},
		"in a table":     {Table{"bad": struct{}{}}, "value.bad", "struct {}"},
		"deep":           {Table{"a": []any{Table{"b": []any{complex64(1)}}}}, "value.a[0].b[0]", "complex64"},
	}
	for name, tt := range values {
		t.Run(name, func(t *testing.T) {
			requireTableError := func(err error, key string) {
				t.Helper()
				var te *TableError
				require.ErrorAs(t, err, &te)
				require.Equal(t, key, te.Key)
				require.Equal(t, tt.typ, te.Type)
				var pe *Error
				require.False(t, errors.As(err, &pe), "a client-side encoding error, not a reply code")
			}
			dst := []byte("keep")
			got, err := AppendTable(dst, Table{"before": "fine", "value": tt.v})
			requireTableError(err, tt.key)
			require.Equal(t, "keep", string(got))

			// The same value in a method's arguments.
			got, err = AppendMethodFrame(dst, 1, &QueueDeclare{Queue: "q", Arguments: Table{"value": tt.v}})
			requireTableError(err, tt.key)
			require.Equal(t, "keep", string(got))

			// And in a message's headers.
			got, err = AppendContentHeaderFrame(dst, 1, ClassBasic, 0, &Properties{Headers: Table{"value": tt.v}})
			requireTableError(err, tt.key)
			require.Equal(t, "keep", string(got))
		})
	}
}

// Unsigned integers that fit in an int64 are encoded as 'l', which every
// broker and client reads.
func TestCodecTableUnsignedFitting(t *testing.T) {
	buf, err := AppendTable(nil, Table{"u": uint(7), "u64": uint64(math.MaxInt64), "in": []any{uint64(0)}})
	require.NoError(t, err)
	got, err := DecodeTable(buf)
	require.NoError(t, err)
	require.Equal(t, Table{"u": int64(7), "u64": int64(math.MaxInt64), "in": []any{int64(0)}}, got)
}

// TestCodecTableNesting checks that tables nested too deep for the decoder
// to accept, or nested in a cycle, fail to encode rather than overflow the
// stack.
func TestCodecTableNesting(t *testing.T) {
	nest := func(depth int) Table {
		tbl := Table{"leaf": "x"}
		for range depth {
			tbl = Table{"t": tbl}
		}
		return tbl
	}
	ok := nest(maxDepth - 1) // maxDepth tables in all
	buf, err := AppendTable(nil, ok)
	require.NoError(t, err)
	got, err := DecodeTable(buf)
	require.NoError(t, err)
	require.Equal(t, ok, got)

	_, err = AppendTable(nil, nest(maxDepth))
	requireCodecError(t, err, SyntaxError)

	cyclic := Table{}
	cyclic["self"] = cyclic
	_, err = AppendTable(nil, cyclic)
	requireCodecError(t, err, SyntaxError)

	arr := []any{nil}
	arr[0] = arr
	_, err = AppendTable(nil, Table{"a": arr})
	requireCodecError(t, err, SyntaxError)

	// The decoder accepts and rejects the same depths, built by hand from
	// the inside out: the innermost table is {"k": void}, each level
	// around it is {"t": table}.
	wire := func(tables int) []byte {
		p := []byte{0, 0, 0, 3, 1, 'k', 'V'}
		for range tables - 1 {
			entry := append([]byte{1, 't', 'F'}, p...)
			p = append(binary.BigEndian.AppendUint32(nil, uint32(len(entry))), entry...)
		}
		return p
	}
	_, err = DecodeTable(wire(maxDepth))
	require.NoError(t, err)
	_, err = DecodeTable(wire(maxDepth + 1))
	requireCodecError(t, err, SyntaxError)
	_, err = DecodeTable(wire(2000))
	requireCodecError(t, err, SyntaxError)

	// An empty innermost table counts as a level too: what decodes
	// encodes again.
	emptyWire := func(tables int) []byte {
		p := []byte{0, 0, 0, 0}
		for range tables - 1 {
			entry := append([]byte{1, 't', 'F'}, p...)
			p = append(binary.BigEndian.AppendUint32(nil, uint32(len(entry))), entry...)
		}
		return p
	}
	deepest, err := DecodeTable(emptyWire(maxDepth))
	require.NoError(t, err)
	_, err = AppendTable(nil, deepest)
	require.NoError(t, err)
	_, err = DecodeTable(emptyWire(maxDepth + 1))
	requireCodecError(t, err, SyntaxError)
}

func TestCodecContentHeaderRoundTrip(t *testing.T) {
	want := ContentHeader{
		ClassID:  ClassBasic,
		BodySize: 1<<40 + 7,
		Properties: Properties{
			ContentType:     "application/json",
			ContentEncoding: "gzip",
			Headers:         codecSampleTable(),
			DeliveryMode:    2,
			Priority:        9,
			CorrelationID:   "corr-1",
			ReplyTo:         "amq.rabbitmq.reply-to",
			Expiration:      "60000",
			MessageID:       "msg-1",
			Timestamp:       time.Unix(1700000000, 0).UTC(),
			Type:            "order.created",
			UserID:          "guest",
			AppID:           "amqproto",
			ClusterID:       "cluster-1",
		},
	}
	// Every field is set, so a property added later must be added here.
	pv := reflect.ValueOf(want.Properties)
	for i := range pv.NumField() {
		require.False(t, pv.Field(i).IsZero(), "property %s not set", pv.Type().Field(i).Name)
	}
	require.Equal(t, 0xfffc, int(want.Properties.flags()))

	buf, err := AppendContentHeaderFrame(nil, 7, want.ClassID, want.BodySize, &want.Properties)
	require.NoError(t, err)
	f, n, err := ParseFrame(buf, 131072)
	require.NoError(t, err)
	require.Equal(t, len(buf), n)
	require.Equal(t, uint8(FrameHeader), f.Type)
	require.Equal(t, uint16(7), f.Channel)

	var d Decoder
	var got ContentHeader
	require.NoError(t, d.DecodeContentHeader(f.Payload, &got))
	require.Equal(t, want, got)

	// Each property alone, into the same reused header: nothing of the
	// previous decode is left.
	for i := range pv.NumField() {
		var one Properties
		reflect.ValueOf(&one).Elem().Field(i).Set(pv.Field(i))
		buf, err := AppendContentHeaderFrame(nil, 1, ClassBasic, 0, &one)
		require.NoError(t, err)
		f, _, err := ParseFrame(buf, 0)
		require.NoError(t, err)
		require.NoError(t, d.DecodeContentHeader(f.Payload, &got))
		require.Equal(t, ContentHeader{ClassID: ClassBasic, Properties: one}, got)
	}

	// Nil properties: flags 0, and an empty Headers table is present.
	for _, props := range []*Properties{nil, {}, {Headers: Table{}}} {
		buf, err := AppendContentHeaderFrame(nil, 1, ClassBasic, 3, props)
		require.NoError(t, err)
		f, _, err := ParseFrame(buf, 0)
		require.NoError(t, err)
		require.NoError(t, d.DecodeContentHeader(f.Payload, &got))
		wantProps := Properties{}
		if props != nil {
			wantProps = *props
		}
		require.Equal(t, ContentHeader{ClassID: ClassBasic, BodySize: 3, Properties: wantProps}, got)
	}
}

func TestCodecBodyFrames(t *testing.T) {
	body := []byte(strings.Repeat("0123456789", 10))
	for _, frameMax := range []uint32{0, 9, 10, 17, 108, 109, 4096} {
		buf := AppendBodyFrames([]byte{0xee}, 5, body, frameMax)
		require.Equal(t, byte(0xee), buf[0])
		p := buf[1:]
		var got []byte
		for len(p) > 0 {
			f, n, err := ParseFrame(p, frameMax)
			require.NoError(t, err, "frameMax %d", frameMax)
			require.NotZero(t, n)
			require.Equal(t, uint8(FrameBody), f.Type)
			require.Equal(t, uint16(5), f.Channel)
			require.NotEmpty(t, f.Payload)
			if frameMax != 0 {
				require.LessOrEqual(t, n, int(frameMax))
				if len(got)+len(f.Payload) < len(body) {
					require.Equal(t, int(frameMax), n, "only the last frame is short")
				}
			}
			got = append(got, f.Payload...)
			p = p[n:]
		}
		require.Equal(t, body, got, "frameMax %d", frameMax)
	}
	require.Empty(t, AppendBodyFrames(nil, 1, nil, 4096), "an empty body has no frames")

	// A frameMax that cannot carry a body octet, which tune negotiation
	// should never produce, puts the body in one frame rather than loop
	// forever (8) or panic (1-7).
	for frameMax := range uint32(frameOverhead + 1) {
		buf := AppendBodyFrames(nil, 1, body, frameMax)
		f, n, err := ParseFrame(buf, 0)
		require.NoError(t, err)
		require.Equal(t, len(buf), n)
		require.Equal(t, body, f.Payload)
	}
}

// The framing of a publish, with the body's chunks put between its pieces
// as AppendPublishFraming documents, is exactly what AppendPublish encodes.
func TestCodecPublishFramingAroundTheBody(t *testing.T) {
	m := &BasicPublish{Exchange: "x", RoutingKey: "k"}
	props := &Properties{ContentType: "text/plain"}
	for _, frameMax := range []uint32{0, 4096, 4097, 131072} {
		for _, size := range []int{0, 1, 4087, 4088, 4089, 3 * 4088, 300 << 10} {
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			want, err := AppendPublish([]byte{0xee}, 3, m, props, body, frameMax)
			require.NoError(t, err)
			framing, head, err := AppendPublishFraming([]byte{0xee}, 3, m, props, size, frameMax)
			require.NoError(t, err)
			chunk := BodyChunk(size, frameMax)
			got := append([]byte(nil), framing[:1+head]...)
			rest := framing[1+head:]
			for b := body; len(b) > 0; {
				n := min(chunk, len(b))
				got = append(got, rest[:7]...)
				got = append(got, b[:n]...)
				rest, b = rest[7:], b[n:]
				got = append(got, rest[0])
				rest = rest[1:]
			}
			require.Empty(t, rest, "frameMax %d, body %d", frameMax, size)
			require.Equal(t, want, got, "frameMax %d, body %d", frameMax, size)
		}
	}
	_, _, err := AppendPublishFraming(nil, 3, m, &Properties{Headers: Table{"h": strings.Repeat("x", 5000)}}, 1, 4096)
	requireCodecError(t, err, FrameError)
}
