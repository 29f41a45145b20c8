package amqp

import (
	"math"
	"time"
)

// Int64 returns an integer header or argument value as an int64, whatever
// width the sender chose: other clients send a number as int8 to int64 or
// uint8 to uint32 (and a Go int, uint or uint64 that fits is accepted too).
// ok is false for any other type, and for a uint64 beyond math.MaxInt64.
//
//	if n, ok := amqp.Int64(d.Headers["x-delivery-count"]); ok && n > 3 { ... }
func Int64(v any) (n int64, ok bool) {
	switch v := v.(type) {
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case int:
		return int64(v), true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint:
		return int64(v), uint64(v) <= math.MaxInt64
	case uint64:
		return int64(v), v <= math.MaxInt64
	}
	return 0, false
}

// Death is one entry of the x-death header that RabbitMQ adds to a
// dead-lettered message: one per queue and reason, the most recent first.
type Death struct {
	// Queue is the queue the message was dead-lettered from.
	Queue string
	// Reason is why: "rejected" (nacked or rejected without requeue),
	// "expired" (message TTL), "maxlen" (queue length limit) or
	// "delivery_limit" (a quorum queue's delivery limit).
	Reason string
	// Count is how many times the message was dead-lettered from Queue for
	// Reason.
	Count int64
	// Exchange is the exchange the message had been published to (for
	// the first time it was dead-lettered from Queue for Reason).
	Exchange string
	// RoutingKeys are the message's routing keys then, including the CC
	// and BCC headers'.
	RoutingKeys []string
	// Time is when the message was first dead-lettered from Queue for
	// Reason (whole seconds).
	Time time.Time
	// OriginalExpiration is the message's expiration property before it
	// was dead-lettered (RabbitMQ removes it), or empty.
	OriginalExpiration string
}

// Deaths reads the x-death header of a dead-lettered message's headers
// (Delivery.Headers): its history of dead-lettering, the most recent first.
// It returns nil when there is none. Fields of an unexpected type are left
// zero.
func Deaths(headers Table) []Death {
	entries, _ := headers["x-death"].([]any)
	var deaths []Death
	for _, e := range entries {
		t, ok := e.(Table)
		if !ok {
			continue
		}
		d := Death{
			Queue:              text(t["queue"]),
			Reason:             text(t["reason"]),
			Exchange:           text(t["exchange"]),
			OriginalExpiration: text(t["original-expiration"]),
		}
		d.Count, _ = Int64(t["count"])
		d.Time, _ = t["time"].(time.Time)
		keys, _ := t["routing-keys"].([]any)
		for _, k := range keys {
			d.RoutingKeys = append(d.RoutingKeys, text(k))
		}
		deaths = append(deaths, d)
	}
	return deaths
}

// text returns a string field, which other clients may send as a byte
// array.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
