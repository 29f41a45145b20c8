package sansio

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCodecMalformedFrames(t *testing.T) {
	cases := []struct {
		name     string
		input    []byte
		frameMax uint32
	}{
		{"bad frame end after a heartbeat", codecBytes(8, 0, 0, 0, 0, 0, 0, 0x00), 0},
		{"bad frame end after a method", codecBytes(1, 0, 0, 0, 0, 0, 4, 0, 90, 0, 10, 0xcf), 4096},
		{"frame end one octet early", codecBytes(3, 0, 1, 0, 0, 0, 2, 'h', 0xce, 'x'), 4096},
		{
			// 131065 + 8 octets of framing is one more than frameMax: it is
			// rejected as soon as the 7-byte frame header is in.
			"oversized frame, header only",
			codecBytes(3, 0, 1, 0x00, 0x01, 0xff, 0xf9), 131072,
		},
		{"oversized frame, whole", AppendBodyFrames(nil, 1, make([]byte, 4089), 0), 4096},
		{"size 0xffffffff, header only", codecBytes(1, 0, 0, 0xff, 0xff, 0xff, 0xff), 131072},
		{"unknown frame type 0", codecBytes(0), 0},
		{"unknown frame type 4", codecBytes(4, 0, 0, 0, 0, 0, 0, 0xce), 0},
		{"unknown frame type 0xce", codecBytes(0xce), 0},
		{"protocol header instead of a frame", codecBytes("AMQP", 0, 0, 9, 1), 0},
		{"protocol header, first octet only", codecBytes("A"), 0},
		{"heartbeat on channel 1", codecBytes(8, 0, 1, 0, 0, 0, 0, 0xce), 0},
		{"heartbeat with a payload", codecBytes(8, 0, 0, 0, 0, 0, 1, 0, 0xce), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, n, err := ParseFrame(c.input, c.frameMax)
			requireCodecError(t, err, FrameError)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, FrameError, e.Code) // FrameError is a ReplyCode like the others
			require.True(t, e.Code.IsHardError())
			require.Zero(t, n)
			require.Equal(t, Frame{}, f)
		})
	}

	// The largest frame frameMax allows is not rejected: with the header
	// alone, ParseFrame asks for more; with all of it, the frame parses.
	full := AppendBodyFrames(nil, 1, make([]byte, 4088), 0)
	require.Len(t, full, 4096)
	_, n, err := ParseFrame(full[:7], 4096)
	require.NoError(t, err)
	require.Zero(t, n)
	_, n, err = ParseFrame(full, 4096)
	require.NoError(t, err)
	require.Equal(t, 4096, n)
}

// codecFilledMethods returns every method with every field set.
func codecFilledMethods(t testing.TB) []Method {
	var ms []Method
	for _, id := range allMethodIDs {
		m := newMethod(id)
		fillMethod(t, m, func(i int) bool { return i%2 == 0 })
		ms = append(ms, m)
	}
	return ms
}

func TestCodecMalformedMethods(t *testing.T) {
	var d Decoder
	decode := func(payload []byte) error {
		m, err := d.DecodeMethod(payload)
		if err != nil {
			require.Nil(t, m)
		}
		return err
	}

	// Every method, cut anywhere after its IDs or followed by one more
	// octet, is a syntax error.
	for _, m := range codecFilledMethods(t) {
		buf, err := AppendMethodFrame(nil, 1, m)
		require.NoError(t, err)
		payload := buf[7 : len(buf)-1]
		for i := 4; i < len(payload); i++ {
			requireCodecError(t, decode(payload[:i]), SyntaxError)
		}
		requireCodecError(t, decode(append(payload[:len(payload):len(payload)], 0)), SyntaxError)
	}

	cases := []struct {
		name    string
		payload []byte
		code    ReplyCode
	}{
		{"empty", nil, SyntaxError},
		{"no method ID", codecBytes(0, 60, 0), SyntaxError},
		{"unknown class", codecBytes(0, 99, 0, 10), NotImplemented},
		{"unknown method of a known class", codecBytes(0, 60, 0, 255), NotImplemented},
		{"class and method 0", codecBytes(0, 0, 0, 0), NotImplemented},
		{"unknown class with arguments", codecBytes(0xff, 0xff, 0xff, 0xff, 1, 2, 3), NotImplemented},
		{"basic.ack without its bit octet", codecBytes(0, 60, 0, 80, 0, 0, 0, 0, 0, 0, 0, 1), SyntaxError},
		{"short string longer than the payload", codecBytes(0, 60, 0, 21, 200, "abc"), SyntaxError},
		{
			"unknown field type tag in arguments",
			codecBytes(
				0, 50, 0, 10, // queue.declare
				0, 0, 1, "q", 0, // ticket, queue, bits
				0, 0, 0, 3, 1, "k", 'Z', // arguments: {"k": <tag Z>}
			),
			SyntaxError,
		},
		{
			"table length beyond the payload",
			codecBytes(0, 50, 0, 10, 0, 0, 1, "q", 0, 0, 0, 0, 9, 1, "k", 'V'),
			SyntaxError,
		},
		{
			"trailing octet after connection.close-ok",
			codecBytes(0, 10, 0, 51, 0),
			SyntaxError,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			requireCodecError(t, decode(c.payload), c.code)
		})
	}
}

func TestCodecMalformedContentHeaders(t *testing.T) {
	var d Decoder
	var h ContentHeader
	header := func(flags uint16, props ...any) []byte {
		return codecBytes(append([]any{
			0, 60, 0, 0, // class 60, weight 0
			0, 0, 0, 0, 0, 0, 0, 5, // body size 5
			int(flags >> 8), int(flags & 0xff),
		}, props...)...)
	}
	require.NoError(t, d.DecodeContentHeader(header(0), &h))
	require.NoError(t, d.DecodeContentHeader(header(0x8000, 1, "x"), &h))
	require.Equal(t, "x", h.Properties.ContentType)

	cases := map[string][]byte{
		"continuation bit":            header(0x0001),
		"continuation bit and a word": header(0x8001, 1, "x", 0x80, 0x00, 1, "y"),
		"undefined bit 1":             header(0x0002),
		"empty":                       nil,
		"no flags":                    header(0)[:12],
		"property missing":            header(0x8000),
		"property cut short":          header(0x8000, 5, "abc"),
		"trailing octet":              header(0x1000, 2, 0),
		"trailing octet, no props":    header(0, 0),
		"unknown tag in headers":      header(0x2000, 0, 0, 0, 3, 1, "k", '!'),
		"headers length 0xffffffff":   header(0x2000, 0xff, 0xff, 0xff, 0xff, 1, "k", 'V'),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			requireCodecError(t, d.DecodeContentHeader(payload, &h), SyntaxError)
		})
	}

	// Every cut of a header with every property set fails.
	props := &Properties{
		ContentType: "a", ContentEncoding: "b", Headers: Table{"c": "d"}, DeliveryMode: 1,
		Priority: 2, CorrelationID: "e", ReplyTo: "f", Expiration: "g", MessageID: "h",
		Timestamp: time.Unix(1, 0), Type: "i", UserID: "j", AppID: "k", ClusterID: "l",
	}
	buf, err := AppendContentHeaderFrame(nil, 1, ClassBasic, 5, props)
	require.NoError(t, err)
	payload := buf[7 : len(buf)-1]
	for i := range len(payload) {
		requireCodecError(t, d.DecodeContentHeader(payload[:i], &h), SyntaxError)
	}
}

func TestCodecMalformedTables(t *testing.T) {
	for _, tag := range []byte{0, 'Z', 'U', 'L', 'a', 'c', 'e', 'g', 0xff} {
		_, err := DecodeTable(codecBytes(0, 0, 0, 3, 1, "k", int(tag)))
		requireCodecError(t, err, SyntaxError)
		_, err = DecodeTable(codecBytes(0, 0, 0, 8, 1, "k", 'A', 0, 0, 0, 1, int(tag)))
		requireCodecError(t, err, SyntaxError)
	}

	// Every cut of a table holding every type fails, and so does every
	// table whose length prefix is one short or includes an extra octet.
	buf, err := AppendTable(nil, Table{
		"t": true, "b": int8(1), "B": uint8(1), "s": int16(1), "u": uint16(1),
		"I": int32(1), "i": uint32(1), "l": int64(1), "f": float32(1), "d": float64(1),
		"D": Decimal{1, 1}, "S": "s", "A": []any{int8(1), "s"}, "T": time.Unix(1, 0),
		"F": Table{"k": "v"}, "V": nil, "x": []byte{1},
	})
	require.NoError(t, err)
	for i := range len(buf) {
		_, err := DecodeTable(buf[:i])
		requireCodecError(t, err, SyntaxError)
	}
	_, err = DecodeTable(append(buf[:len(buf):len(buf)], 0))
	requireCodecError(t, err, SyntaxError)
	for _, delta := range []int{-1, 1} {
		bad := append([]byte{}, buf...)
		binary.BigEndian.PutUint32(bad, uint32(len(buf)-4+delta)) // length off by delta
		_, err := DecodeTable(bad)
		requireCodecError(t, err, SyntaxError)
	}
}

// TestCodecHugeLengthPrefix checks that a long string, table or array that
// announces 4 GiB in a small frame fails without allocating what it
// announces.
func TestCodecHugeLengthPrefix(t *testing.T) {
	huge := []any{0xff, 0xff, 0xff, 0xff}
	framed := func(payload []byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{1, 0, 0}, uint32(len(payload))), append(payload, 0xce)...)
	}
	methods := map[string][]byte{
		"connection.secure challenge": codecBytes(append([]any{0, 10, 0, 20}, append(huge, "ab")...)...),
		"connection.start properties": codecBytes(append([]any{0, 10, 0, 10, 0, 9}, append(huge, "ab")...)...),
		"string in a table":           codecBytes(append([]any{0, 10, 0, 10, 0, 9, 0, 0, 0, 7, 1, "k", 'S'}, huge...)...),
		"bytes in a table":            codecBytes(append([]any{0, 10, 0, 10, 0, 9, 0, 0, 0, 7, 1, "k", 'x'}, huge...)...),
		"array in a table":            codecBytes(append([]any{0, 10, 0, 10, 0, 9, 0, 0, 0, 7, 1, "k", 'A'}, huge...)...),
		"table in a table":            codecBytes(append([]any{0, 10, 0, 10, 0, 9, 0, 0, 0, 7, 1, "k", 'F'}, huge...)...),
	}
	var d Decoder
	for name, payload := range methods {
		t.Run(name, func(t *testing.T) {
			frame := framed(payload)
			decode := func() {
				f, n, err := ParseFrame(frame, 4096)
				require.NoError(t, err)
				require.Equal(t, len(frame), n)
				_, err = d.DecodeMethod(f.Payload)
				requireCodecError(t, err, SyntaxError)
			}
			decode()
			allocs := testing.AllocsPerRun(100, decode)
			require.LessOrEqual(t, allocs, 10.0, "allocations per decode (the error and its text)")

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 100 {
				decode()
			}
			runtime.ReadMemStats(&after)
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "bytes allocated by 100 decodes")
		})
	}
	_, err := DecodeTable(codecBytes(huge...))
	requireCodecError(t, err, SyntaxError)
}

func TestCodecEncodeErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	prefix := []byte("existing frames")
	dst := append(make([]byte, 0, 1024), prefix...)

	// Every short string field of every method: 255 octets encode, 256 fail
	// and leave dst as it was.
	for _, id := range allMethodIDs {
		v := reflect.ValueOf(newMethod(id)).Elem()
		for i := range v.NumField() {
			if v.Field(i).Kind() != reflect.String {
				continue
			}
			name := fmt.Sprintf("%s.%s", id, v.Type().Field(i).Name)
			m := newMethod(id)
			reflect.ValueOf(m).Elem().Field(i).SetString(long[:255])
			got, err := AppendMethodFrame(dst, 1, m)
			require.NoError(t, err, name)
			require.Equal(t, prefix, got[:len(prefix)], name)

			reflect.ValueOf(m).Elem().Field(i).SetString(long)
			got, err = AppendMethodFrame(dst, 1, m)
			requireCodecError(t, err, SyntaxError)
			require.Equal(t, prefix, got, name)
		}
	}

	// A table key over 255 octets.
	got, err := AppendMethodFrame(dst, 1, &QueueDeclare{Arguments: Table{long: true}})
	requireCodecError(t, err, SyntaxError)
	require.Equal(t, prefix, got)
	got, err = AppendTable(dst, Table{"ok": Table{long: 1}})
	requireCodecError(t, err, SyntaxError)
	require.Equal(t, prefix, got)

	// A short string property over 255 octets.
	got, err = AppendContentHeaderFrame(dst, 1, ClassBasic, 0, &Properties{DeliveryMode: 2, AppID: long})
	requireCodecError(t, err, SyntaxError)
	require.Equal(t, prefix, got)

	// A method type the codec does not know.
	got, err = AppendMethodFrame(dst, 1, &codecForeignMethod{})
	require.Error(t, err)
	require.Equal(t, prefix, got)
}

// codecForeignMethod implements Method but is not a generated type.
type codecForeignMethod struct{ BasicAck }

func (*codecForeignMethod) ID() MethodID { return BasicAckID }

// codecStream is a stream of frames as a broker sends them, and the frames.
func codecStream(t testing.TB) ([]byte, []Frame) {
	var buf []byte
	var ends []int
	add := func(b []byte, err error) {
		require.NoError(t, err)
		buf = b
		ends = append(ends, len(buf))
	}
	add(AppendMethodFrame(buf, 0, &ConnectionStart{
		VersionMinor:     9,
		ServerProperties: Table{"product": "RabbitMQ", "capabilities": Table{"basic.nack": true}},
		Mechanisms:       []byte("PLAIN AMQPLAIN"),
		Locales:          []byte("en_US"),
	}))
	add(AppendMethodFrame(buf, 0, &ConnectionTune{ChannelMax: 2047, FrameMax: 128, Heartbeat: 60}))
	add(AppendHeartbeat(buf), nil)
	add(AppendMethodFrame(buf, 1, &ChannelOpenOk{}))
	add(AppendMethodFrame(buf, 1, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1, RoutingKey: "k"}))
	body := []byte(strings.Repeat("body ", 60)) // 300 bytes: three frames of at most 128
	add(AppendContentHeaderFrame(buf, 1, ClassBasic, uint64(len(body)), &Properties{ContentType: "text/plain"}))
	for len(body) > 0 {
		n := min(len(body), 120)
		add(AppendBodyFrames(buf, 1, body[:n], 128), nil)
		body = body[n:]
	}
	add(AppendMethodFrame(buf, 1, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 2, RoutingKey: "k"}))
	add(AppendContentHeaderFrame(buf, 1, ClassBasic, 0, nil)) // an empty body has no body frames
	add(AppendHeartbeat(buf), nil)

	var frames []Frame
	start := 0
	for _, end := range ends {
		p := buf[start:end]
		frames = append(frames, Frame{Type: p[0], Channel: binary.BigEndian.Uint16(p[1:]), Payload: p[7 : len(p)-1]})
		start = end
	}
	return buf, frames
}

// TestCodecTruncatedStream checks that every prefix of a stream of frames
// parses into the frames it holds whole, and that ParseFrame then says
// "need more": n == 0 and no error.
func TestCodecTruncatedStream(t *testing.T) {
	stream, want := codecStream(t)
	for i := range len(stream) + 1 {
		p := stream[:i]
		got := []Frame{}
		for {
			f, n, err := ParseFrame(p, 128)
			require.NoError(t, err, "prefix of %d bytes", i)
			if n == 0 {
				break
			}
			got = append(got, f)
			p = p[n:]
		}
		require.Equal(t, want[:len(got)], got, "prefix of %d bytes", i)
		if len(got) < len(want) {
			// What is left is a proper prefix of the next frame.
			require.Less(t, len(p), 8+len(want[len(got)].Payload), "prefix of %d bytes", i)
		} else {
			require.Empty(t, p)
		}
	}
}

// TestCodecStreamSplitAtEveryOffset feeds a stream in two reads, split at
// every offset, through a buffer the way a connection does, and checks that
// the frames are the same.
func TestCodecStreamSplitAtEveryOffset(t *testing.T) {
	stream, want := codecStream(t)
	var d Decoder
	for split := range len(stream) + 1 {
		var pending []byte
		var got []Frame
		for _, read := range [][]byte{stream[:split], stream[split:]} {
			pending = append(pending, read...)
			for {
				f, n, err := ParseFrame(pending, 128)
				require.NoError(t, err)
				if n == 0 {
					break
				}
				if f.Type == FrameMethod {
					_, err := d.DecodeMethod(f.Payload)
					require.NoError(t, err)
				}
				f.Payload = append([]byte{}, f.Payload...) // pending is reused
				got = append(got, f)
				pending = pending[n:]
			}
			pending = append([]byte{}, pending...)
		}
		require.Empty(t, pending)
		require.Equal(t, want, got, "split at %d", split)
	}
}
