package sansio

import (
	"bytes"
	"encoding/binary"
)

// frameOverhead is the type, channel, size and frame-end octets around a
// frame's payload.
const frameOverhead = 8

// ProtocolHeader is what a client sends first, and what a server sends back
// before closing when it does not speak the client's version.
var ProtocolHeader = [8]byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}

// Frame is one frame as received. Payload borrows the input passed to
// ParseFrame and is valid only as long as that input is.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// ParseFrame parses the frame at the start of p. It returns the frame and the
// number of bytes it used, or n == 0 and a nil error when p holds only part
// of a frame ("need more"). frameMax, when not zero, is the negotiated
// maximum frame size including the 8 octets of framing; a larger size is
// rejected as soon as the 7-byte frame header has arrived, before the
// payload is buffered. The payload is not copied.
func ParseFrame(p []byte, frameMax uint32) (f Frame, n int, err error) {
	if len(p) == 0 {
		return Frame{}, 0, nil
	}
	switch p[0] {
	case FrameMethod, FrameHeader, FrameBody, FrameHeartbeat:
	case 'A':
		return Frame{}, 0, errorf(FrameError, "received a protocol header instead of a frame")
	default:
		return Frame{}, 0, errorf(FrameError, "unknown frame type %d", p[0])
	}
	if len(p) < 7 {
		return Frame{}, 0, nil
	}
	size := binary.BigEndian.Uint32(p[3:7])
	if frameMax != 0 && uint64(size)+frameOverhead > uint64(frameMax) {
		return Frame{}, 0, errorf(FrameError, "frame of %d bytes exceeds frame_max %d", uint64(size)+frameOverhead, frameMax)
	}
	total := uint64(size) + frameOverhead
	if uint64(len(p)) < total {
		return Frame{}, 0, nil
	}
	if p[total-1] != FrameEnd {
		return Frame{}, 0, errorf(FrameError, "frame end octet is 0x%02x, not 0xce", p[total-1])
	}
	f = Frame{Type: p[0], Channel: binary.BigEndian.Uint16(p[1:3]), Payload: p[7 : total-1]}
	if f.Type == FrameHeartbeat && (f.Channel != 0 || size != 0) {
		return Frame{}, 0, errorf(FrameError, "heartbeat frame on channel %d with %d payload bytes", f.Channel, size)
	}
	return f, int(total), nil
}

// ParseProtocolHeader checks whether p starts with a protocol header. It
// returns the header's version bytes and ok when p holds all 8 bytes of one,
// and need when p is a prefix of a protocol header too short to tell.
func ParseProtocolHeader(p []byte) (version [4]byte, ok, need bool) {
	n := min(len(p), 4)
	if !bytes.Equal(p[:n], ProtocolHeader[:n]) {
		return version, false, false
	}
	if len(p) < 8 {
		return version, false, true
	}
	copy(version[:], p[4:8])
	return version, true, false
}

// AppendProtocolHeader appends the client's protocol header for AMQP 0-9-1.
func AppendProtocolHeader(dst []byte) []byte {
	return append(dst, ProtocolHeader[:]...)
}

// AppendHeartbeat appends a heartbeat frame.
func AppendHeartbeat(dst []byte) []byte {
	return append(dst, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}

// beginFrame appends a frame header with a placeholder size and returns the
// offset of the frame's start; finishFrame fills in the size and appends the
// frame-end octet.
func beginFrame(dst []byte, typ uint8, channel uint16) ([]byte, int) {
	start := len(dst)
	dst = append(dst, typ, byte(channel>>8), byte(channel), 0, 0, 0, 0)
	return dst, start
}

func finishFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+3:], uint32(len(dst)-start-7))
	return append(dst, FrameEnd)
}

// AppendMethodFrame appends a method frame carrying m on the channel. On
// error, such as a short string over 255 bytes or a table value with no AMQP
// type, dst is returned unchanged.
func AppendMethodFrame(dst []byte, channel uint16, m Method) ([]byte, error) {
	buf, start := beginFrame(dst, FrameMethod, channel)
	id := m.ID()
	w := writer{buf: binary.BigEndian.AppendUint32(buf, uint32(id))}
	writeMethodArgs(&w, m)
	if w.err != nil {
		return dst[:start], w.err
	}
	return finishFrame(w.buf, start), nil
}

// AppendContentHeaderFrame appends a content header frame for a message of
// bodySize bytes with the given properties.
func AppendContentHeaderFrame(dst []byte, channel uint16, classID uint16, bodySize uint64, props *Properties) ([]byte, error) {
	buf, start := beginFrame(dst, FrameHeader, channel)
	w := writer{buf: buf}
	w.short(classID)
	w.short(0) // weight, unused
	w.longlong(bodySize)
	props.write(&w)
	if w.err != nil {
		return dst[:start], w.err
	}
	return finishFrame(w.buf, start), nil
}

// AppendBodyFrames appends body split into frames no larger than frameMax
// (including framing). An empty body gives no frames, as the spec requires.
// A frameMax of 0, or one too small to carry a body octet (which the spec's
// minimum of 4096 rules out), puts the whole body in one frame.
func AppendBodyFrames(dst []byte, channel uint16, body []byte, frameMax uint32) []byte {
	chunk := BodyChunk(len(body), frameMax)
	for len(body) > 0 {
		n := min(chunk, len(body))
		var start int
		dst, start = beginFrame(dst, FrameBody, channel)
		dst = append(dst, body[:n]...)
		dst = finishFrame(dst, start)
		body = body[n:]
	}
	return dst
}

// BodyChunk is the payload size of the body frames AppendBodyFrames makes
// for frameMax: the whole body (n) when frameMax leaves no room for a
// chunk.
func BodyChunk(n int, frameMax uint32) int {
	if frameMax > frameOverhead {
		return int(frameMax) - frameOverhead
	}
	return max(n, 1)
}

// AppendPublishFraming appends what AppendPublish would, except the body's
// own bytes, for a driver that writes the body from where it is rather
// than copying it: the method frame and content header (head bytes in
// all), then the 7-byte header of the first body frame, then for each
// later body frame the end octet of the one before and its own header (8
// bytes), and the last frame's end octet. Body chunk k, of BodyChunk
// bytes but the last, goes after the first head+7 bytes and then after
// each 8 bytes of framing. An empty body has no framing after the head.
func AppendPublishFraming(dst []byte, channel uint16, m *BasicPublish, props *Properties, bodySize int, frameMax uint32) (out []byte, head int, err error) {
	out, err = AppendPublishHead(dst, channel, m, props, bodySize)
	if err != nil {
		return dst, 0, err
	}
	if _, err := publishBodySize(out[len(dst):], frameMax); err != nil {
		return dst, 0, err
	}
	head = len(out) - len(dst)
	chunk := BodyChunk(bodySize, frameMax)
	for left := bodySize; left > 0; left -= chunk {
		if left < bodySize {
			out = append(out, FrameEnd)
		}
		out = append(out, FrameBody, byte(channel>>8), byte(channel))
		out = binary.BigEndian.AppendUint32(out, uint32(min(chunk, left)))
	}
	if bodySize > 0 {
		out = append(out, FrameEnd)
	}
	return out, head, nil
}

// AppendPublish appends a basic.publish method frame, its content header
// and its body frames for a connection with the given frame_max (0: no
// limit). A content header larger than frame_max (a large Headers table) is
// an error with code FrameError: the broker would close the connection. On
// error dst is returned unchanged.
func AppendPublish(dst []byte, channel uint16, m *BasicPublish, props *Properties, body []byte, frameMax uint32) ([]byte, error) {
	out, err := AppendPublishHead(dst, channel, m, props, len(body))
	if err != nil {
		return dst, err
	}
	if _, err := publishBodySize(out[len(dst):], frameMax); err != nil {
		return dst, err
	}
	return AppendBodyFrames(out, channel, body, frameMax), nil
}

// AppendPublishHead appends a basic.publish method frame and the content
// header for a body of bodySize bytes: everything but the body frames. On
// error dst is returned unchanged.
func AppendPublishHead(dst []byte, channel uint16, m *BasicPublish, props *Properties, bodySize int) ([]byte, error) {
	// The method is written without going through the Method interface, so
	// that m can stay on the caller's stack.
	buf, start := beginFrame(dst, FrameMethod, channel)
	w := writer{buf: binary.BigEndian.AppendUint32(buf, uint32(BasicPublishID))}
	m.write(&w)
	if w.err != nil {
		return dst, w.err
	}
	out, err := AppendContentHeaderFrame(finishFrame(w.buf, start), channel, ClassBasic, uint64(bodySize), props)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// Decoder decodes method frames and content headers. It reuses one value
// for each method that comes with every message (basic.deliver, ack, nack,
// return, get-ok, get-empty) and interns short strings, so steady-state
// decoding does not allocate; the other methods are decoded into new
// values. A decoded Method is valid until the next call to DecodeMethod;
// it never borrows the input. A Decoder is not safe for concurrent use.
type Decoder struct {
	methods methodSet
	strs    interner
}

// DecodeMethod decodes a method frame's payload. Errors are *Error: 540
// NOT_IMPLEMENTED for an unknown class or method, 502 SYNTAX_ERROR for a
// truncated or overlong payload or a bad field.
func (d *Decoder) DecodeMethod(payload []byte) (Method, error) {
	if len(payload) < 4 {
		return nil, errorf(SyntaxError, "method frame of %d bytes has no class and method IDs", len(payload))
	}
	id := MethodID(binary.BigEndian.Uint32(payload))
	r := reader{buf: payload, off: 4, strs: &d.strs}
	m := d.methods.read(id, &r)
	if m == nil {
		return nil, errorf(NotImplemented, "unknown method %s", id)
	}
	r.end(id.String())
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// ContentHeader is a decoded content header frame.
type ContentHeader struct {
	ClassID    uint16
	BodySize   uint64
	Properties Properties
}

// DecodeContentHeader decodes a content header frame's payload into h,
// reusing h's storage. Errors are *Error with code 502 SYNTAX_ERROR.
func (d *Decoder) DecodeContentHeader(payload []byte, h *ContentHeader) error {
	r := reader{buf: payload, strs: &d.strs}
	h.ClassID = r.short()
	r.short() // weight
	h.BodySize = r.longlong()
	h.Properties.read(&r)
	r.end("content header")
	return r.err
}
