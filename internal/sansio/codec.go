package sansio

import (
	"encoding/binary"
	"math"
	"time"
)

// writer appends AMQP primitives to buf. The first error sticks: later calls
// do nothing, so generated code can write every field and check once.
type writer struct {
	buf []byte
	err error

	// bitIndex is the offset of the octet that collects consecutive bit
	// fields, and bitCount how many bits it holds; any other field ends the
	// run, as the specification requires.
	bitIndex int
	bitCount uint8

	depth int // nesting of tables and arrays, bounded by maxDepth as in reader
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) bit(v bool) {
	if w.bitCount == 0 || w.bitCount == 8 {
		w.buf = append(w.buf, 0)
		w.bitIndex = len(w.buf) - 1
		w.bitCount = 0
	}
	if v {
		w.buf[w.bitIndex] |= 1 << w.bitCount
	}
	w.bitCount++
}

func (w *writer) octet(v uint8) {
	w.bitCount = 0
	w.buf = append(w.buf, v)
}

func (w *writer) short(v uint16) {
	w.bitCount = 0
	w.buf = binary.BigEndian.AppendUint16(w.buf, v)
}

func (w *writer) long(v uint32) {
	w.bitCount = 0
	w.buf = binary.BigEndian.AppendUint32(w.buf, v)
}

func (w *writer) longlong(v uint64) {
	w.bitCount = 0
	w.buf = binary.BigEndian.AppendUint64(w.buf, v)
}

func (w *writer) shortstr(s string) {
	w.bitCount = 0
	if len(s) > math.MaxUint8 {
		w.fail(errorf(SyntaxError, "short string of %d bytes exceeds 255", len(s)))
		return
	}
	w.buf = append(w.buf, uint8(len(s)))
	w.buf = append(w.buf, s...)
}

func (w *writer) longstr(b []byte) {
	w.bitCount = 0
	if uint64(len(b)) > math.MaxUint32 {
		w.fail(errorf(SyntaxError, "long string of %d bytes exceeds 4 GiB", len(b)))
		return
	}
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(b)))
	w.buf = append(w.buf, b...)
}

func (w *writer) longstrString(s string) {
	w.bitCount = 0
	if uint64(len(s)) > math.MaxUint32 {
		w.fail(errorf(SyntaxError, "long string of %d bytes exceeds 4 GiB", len(s)))
		return
	}
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(s)))
	w.buf = append(w.buf, s...)
}

func (w *writer) timestamp(t time.Time) {
	w.longlong(uint64(t.Unix()))
}

func (w *writer) table(t Table) {
	w.bitCount = 0
	if !w.nest() {
		return
	}
	start := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0)
	for k, v := range t {
		w.shortstr(k)
		w.field(v)
		if w.err != nil {
			w.inField(k)
			return
		}
	}
	w.patchLength(start)
	w.depth--
}

// nest enters a table or array. It fails, rather than overflow the stack on
// a table that contains itself, at the depth the reader would reject.
func (w *writer) nest() bool {
	if w.depth >= maxDepth {
		w.fail(errorf(SyntaxError, "field tables or arrays nested deeper than %d", maxDepth))
		return false
	}
	w.depth++
	return true
}

// patchLength writes the length of what follows the 4-byte length field at
// start into that field.
func (w *writer) patchLength(start int) {
	n := len(w.buf) - start - 4
	if uint64(n) > math.MaxUint32 {
		w.fail(errorf(SyntaxError, "table or array of %d bytes exceeds 4 GiB", n))
		return
	}
	binary.BigEndian.PutUint32(w.buf[start:], uint32(n))
}

// reader decodes AMQP primitives from buf. The first error sticks and every
// later read returns a zero value, so generated code can read every field and
// check once. Decoded strings are copies (interned when strs is set); the
// reader never allocates a size announced by the peer.
type reader struct {
	buf []byte
	off int
	err error

	bits     uint8 // the octet holding the current run of bit fields
	bitCount uint8 // how many of its bits were consumed; 0 means none loaded

	strs  *interner
	depth int // nesting of tables and arrays, bounded by maxDepth
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) truncated(what string) {
	r.fail(errorf(SyntaxError, "truncated %s at offset %d", what, r.off))
}

// take returns the next n bytes, borrowed from the input.
func (r *reader) take(n int, what string) []byte {
	r.bitCount = 0
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.buf)-r.off < n {
		r.truncated(what)
		r.off = len(r.buf)
		return nil
	}
	p := r.buf[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) bit() bool {
	if r.bitCount == 0 || r.bitCount == 8 {
		p := r.take(1, "bit field")
		if p == nil {
			return false
		}
		r.bits = p[0]
	}
	v := r.bits&(1<<r.bitCount) != 0
	r.bitCount++
	return v
}

func (r *reader) octet() uint8 {
	if p := r.take(1, "octet"); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) short() uint16 {
	if p := r.take(2, "short"); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) long() uint32 {
	if p := r.take(4, "long"); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) longlong() uint64 {
	if p := r.take(8, "long long"); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) shortstrBytes() []byte {
	n := int(r.octet())
	return r.take(n, "short string")
}

func (r *reader) shortstr() string {
	p := r.shortstrBytes()
	if len(p) == 0 {
		return ""
	}
	if r.strs != nil {
		return r.strs.intern(p)
	}
	return string(p)
}

// longstrBytes returns a long string borrowed from the input.
func (r *reader) longstrBytes() []byte {
	n := r.long()
	if uint64(n) > uint64(len(r.buf)-r.off) {
		r.truncated("long string")
		return nil
	}
	return r.take(int(n), "long string")
}

// longstr returns a copy of a long string.
func (r *reader) longstr() []byte {
	p := r.longstrBytes()
	if p == nil {
		return nil
	}
	return append([]byte{}, p...)
}

func (r *reader) timestamp() time.Time {
	v := r.longlong()
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(int64(v), 0).UTC()
}

func (r *reader) skipBit()      { r.bit() }
func (r *reader) skipShort()    { r.short() }
func (r *reader) skipShortstr() { r.shortstrBytes() }
func (r *reader) skipLongstr()  { r.longstrBytes() }

// end reports trailing bytes after the last field as a syntax error.
func (r *reader) end(what string) {
	if r.err == nil && r.off != len(r.buf) {
		r.fail(errorf(SyntaxError, "%d unexpected bytes after %s", len(r.buf)-r.off, what))
	}
}

// interner turns the short strings of a connection's deliveries (consumer
// tags, exchanges, routing keys, content types) into Go strings without
// allocating once a value has been seen. Its size is bounded: when full it
// starts over.
type interner struct {
	m map[string]string
}

const maxInterned = 1024

func (in *interner) intern(p []byte) string {
	if s, ok := in.m[string(p)]; ok { // this lookup does not allocate
		return s
	}
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) >= maxInterned {
		clear(in.m)
	}
	s := string(p)
	in.m[s] = s
	return s
}
