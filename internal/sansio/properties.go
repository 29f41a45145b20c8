package sansio

import "time"

// Properties are the 14 properties of a basic-class content header. A zero
// field is absent on the wire: encoding sets a property's flag only when its
// value is not the zero value, and decoding leaves absent ones zero.
type Properties struct {
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8 // 1 transient, 2 persistent
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	Timestamp       time.Time
	Type            string
	UserID          string
	AppID           string
	ClusterID       string // "reserved" in 0-9-1; kept for round trips
}

// The flag bits and the code that encodes and decodes Properties are
// generated from the spec, in spec_gen.go.
