package sansio

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Table is an AMQP field table. Decoding gives, and encoding accepts, these
// Go types for the field type tags RabbitMQ sends or accepts:
//
//	tag  AMQP type            Go type
//	t    boolean              bool
//	b    short-short-int      int8
//	B    short-short-uint     uint8
//	s    short-int            int16
//	u    short-uint           uint16
//	I    long-int             int32
//	i    long-uint            uint32
//	l    long-long-int        int64 (encoding also accepts int, and uint
//	                          and uint64 up to math.MaxInt64)
//	f    float                float32
//	d    double               float64
//	D    decimal-value        Decimal
//	S    long-string          string
//	x    byte array           []byte
//	A    field-array          []any
//	T    timestamp            time.Time (whole seconds, UTC)
//	F    field-table          Table (map[string]any)
//	V    void                 nil
//
// Any other Go type, or a uint or uint64 over math.MaxInt64, is a
// *TableError naming the field. Tables nest at most 64 deep.
type Table = map[string]any

// Decimal is an AMQP decimal: Value × 10^-Scale. The value is signed, as
// RabbitMQ and the other clients (pika, the Java client) encode it.
type Decimal struct {
	Scale uint8
	Value int32
}

const maxDepth = 64

func (w *writer) array(a []any) {
	if !w.nest() {
		return
	}
	start := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0)
	for i, v := range a {
		w.field(v)
		if w.err != nil {
			w.inField(fmt.Sprintf("[%d]", i))
			return
		}
	}
	w.patchLength(start)
	w.depth--
}

// field appends a tag and value.
func (w *writer) field(v any) {
	if w.err != nil {
		return
	}
	b := w.buf
	switch v := v.(type) {
	case bool:
		x := uint8(0)
		if v {
			x = 1
		}
		w.buf = append(b, 't', x)
	case int8:
		w.buf = append(b, 'b', uint8(v))
	case uint8:
		w.buf = append(b, 'B', v)
	case int16:
		w.buf = binary.BigEndian.AppendUint16(append(b, 's'), uint16(v))
	case uint16:
		w.buf = binary.BigEndian.AppendUint16(append(b, 'u'), v)
	case int32:
		w.buf = binary.BigEndian.AppendUint32(append(b, 'I'), uint32(v))
	case uint32:
		w.buf = binary.BigEndian.AppendUint32(append(b, 'i'), v)
	case int64:
		w.buf = binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v))
	case int:
		w.buf = binary.BigEndian.AppendUint64(append(b, 'l'), uint64(v))
	case uint:
		w.unsigned(uint64(v), v)
	case uint64:
		w.unsigned(v, v)
	case float32:
		w.buf = binary.BigEndian.AppendUint32(append(b, 'f'), math.Float32bits(v))
	case float64:
		w.buf = binary.BigEndian.AppendUint64(append(b, 'd'), math.Float64bits(v))
	case Decimal:
		w.buf = binary.BigEndian.AppendUint32(append(b, 'D', v.Scale), uint32(v.Value))
	case string:
		w.buf = append(b, 'S')
		w.longstrString(v)
	case []byte:
		w.buf = append(b, 'x')
		w.longstr(v)
	case []any:
		w.buf = append(b, 'A')
		w.array(v)
	case time.Time:
		w.buf = binary.BigEndian.AppendUint64(append(b, 'T'), uint64(v.Unix()))
	case Table:
		w.buf = append(b, 'F')
		w.table(v)
	case nil:
		w.buf = append(b, 'V')
	default:
		w.fail(&TableError{Type: fmt.Sprintf("%T", v), Text: "no AMQP field type for this Go type"})
	}
}

// unsigned encodes a uint or uint64 as a long-long-int ('l'), the type
// every broker and client reads; AMQP 0-9-1 as RabbitMQ speaks it has no
// unsigned 64-bit field. orig is the value as given, for the error.
func (w *writer) unsigned(v uint64, orig any) {
	if v > math.MaxInt64 {
		w.fail(&TableError{Type: fmt.Sprintf("%T", orig), Text: "value over math.MaxInt64, the largest integer a field table carries"})
		return
	}
	w.buf = binary.BigEndian.AppendUint64(append(w.buf, 'l'), v)
}

// TableError is a value this client cannot encode in a field table (the
// arguments of a method, or a message's headers): a Go type without an
// AMQP field type, or an unsigned integer too large for one. It is found
// before anything is sent.
type TableError struct {
	// Key is the field's key; in nested tables and arrays, the path to it,
	// keys joined by "." and array indexes in brackets ("a.b[2]").
	Key  string
	Type string // the value's Go type, as %T prints it
	Text string // what is wrong with the value
}

func (e *TableError) Error() string {
	return fmt.Sprintf("amqp: field table key %q (Go type %s): %s", e.Key, e.Type, e.Text)
}

// inField prefixes the key of a TableError raised by the field just
// written with step, the key or array index of that field.
func (w *writer) inField(step string) {
	te, ok := w.err.(*TableError)
	if !ok {
		return
	}
	switch {
	case te.Key == "":
		te.Key = step
	case te.Key[0] == '[':
		te.Key = step + te.Key
	default:
		te.Key = step + "." + te.Key
	}
}

// table decodes a field table. An empty table decodes as nil.
func (r *reader) table() Table {
	p := r.longstrBytes()
	if r.err != nil {
		return nil
	}
	// An empty table counts too: the writer refuses the same depths, so
	// whatever decodes encodes again (the server properties rely on it).
	if r.depth >= maxDepth {
		r.fail(errorf(SyntaxError, "field tables nested deeper than %d", maxDepth))
		return nil
	}
	if len(p) == 0 {
		return nil
	}
	sub := reader{buf: p, depth: r.depth + 1}
	t := make(Table)
	for sub.off < len(sub.buf) && sub.err == nil {
		key := string(sub.shortstrBytes())
		v := sub.field()
		if sub.err == nil {
			t[key] = v
		}
	}
	if sub.err != nil {
		r.fail(sub.err)
		return nil
	}
	return t
}

func (r *reader) array() []any {
	p := r.longstrBytes()
	if r.err != nil {
		return nil
	}
	if r.depth >= maxDepth {
		r.fail(errorf(SyntaxError, "field arrays nested deeper than %d", maxDepth))
		return nil
	}
	sub := reader{buf: p, depth: r.depth + 1}
	a := []any{}
	for sub.off < len(sub.buf) && sub.err == nil {
		v := sub.field()
		if sub.err == nil {
			a = append(a, v)
		}
	}
	if sub.err != nil {
		r.fail(sub.err)
		return nil
	}
	return a
}

// field decodes a tag and value.
func (r *reader) field() any {
	tag := r.octet()
	if r.err != nil {
		return nil
	}
	switch tag {
	case 't':
		return r.octet() != 0
	case 'b':
		return int8(r.octet())
	case 'B':
		return r.octet()
	case 's':
		return int16(r.short())
	case 'u':
		return r.short()
	case 'I':
		return int32(r.long())
	case 'i':
		return r.long()
	case 'l':
		return int64(r.longlong())
	case 'f':
		return math.Float32frombits(r.long())
	case 'd':
		return math.Float64frombits(r.longlong())
	case 'D':
		return Decimal{Scale: r.octet(), Value: int32(r.long())}
	case 'S':
		return string(r.longstrBytes())
	case 'x':
		return r.longstr()
	case 'A':
		return r.array()
	case 'T':
		return r.timestamp()
	case 'F':
		t := r.table()
		if t == nil && r.err == nil {
			t = Table{}
		}
		return t
	case 'V':
		return nil
	}
	r.fail(errorf(SyntaxError, "unknown field type tag %q at offset %d", tag, r.off-1))
	return nil
}

// DecodeTable decodes a field table including its 4-byte length prefix, as it
// appears on the wire. Errors are *Error with code SyntaxError.
func DecodeTable(p []byte) (Table, error) {
	r := reader{buf: p}
	t := r.table()
	r.end("field table")
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}

// AppendTable appends t with its 4-byte length prefix to dst. It fails, and
// leaves dst unchanged, when a value has no AMQP field type.
func AppendTable(dst []byte, t Table) ([]byte, error) {
	w := writer{buf: dst}
	w.table(t)
	if w.err != nil {
		return dst, w.err
	}
	return w.buf, nil
}
