package amqp

import "github.com/amqproto/amqproto/internal/sansio"

// Table is an AMQP field table, used for arguments and headers. Values have
// these Go types (the AMQP field type tag in brackets): bool (t), int8 (b),
// uint8 (B), int16 (s), uint16 (u), int32 (I), uint32 (i), int64 (l; int is
// accepted when encoding, and so are uint and uint64 up to math.MaxInt64), float32 (f), float64 (d), Decimal (D), string
// (S), []byte (x), []any (A), time.Time (T, whole seconds), Table (F) and
// nil (V). Any other type, or a larger unsigned value, is a *TableError
// when the table is sent.
type Table = map[string]any

// Decimal is an AMQP decimal value (field type D): Value × 10^-Scale. Its
// value is signed, as RabbitMQ and other clients encode it. It is defined in
// an internal package as
//
//	type Decimal struct {
//		Scale uint8 // digits after the decimal point
//		Value int32 // the unscaled value
//	}
type Decimal = sansio.Decimal
