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

// Property flag bits, from the most significant: the first property listed
// in the spec is bit 15. Bit 0 would announce a second flags word, which
// 0-9-1 never needs.
const (
	flagContentType uint16 = 1 << (15 - iota)
	flagContentEncoding
	flagHeaders
	flagDeliveryMode
	flagPriority
	flagCorrelationID
	flagReplyTo
	flagExpiration
	flagMessageID
	flagTimestamp
	flagType
	flagUserID
	flagAppID
	flagClusterID
)

func (p *Properties) flags() uint16 {
	var f uint16
	set := func(present bool, bit uint16) {
		if present {
			f |= bit
		}
	}
	set(p.ContentType != "", flagContentType)
	set(p.ContentEncoding != "", flagContentEncoding)
	set(p.Headers != nil, flagHeaders)
	set(p.DeliveryMode != 0, flagDeliveryMode)
	set(p.Priority != 0, flagPriority)
	set(p.CorrelationID != "", flagCorrelationID)
	set(p.ReplyTo != "", flagReplyTo)
	set(p.Expiration != "", flagExpiration)
	set(p.MessageID != "", flagMessageID)
	set(!p.Timestamp.IsZero(), flagTimestamp)
	set(p.Type != "", flagType)
	set(p.UserID != "", flagUserID)
	set(p.AppID != "", flagAppID)
	set(p.ClusterID != "", flagClusterID)
	return f
}

func (p *Properties) write(w *writer) {
	if p == nil {
		w.short(0)
		return
	}
	f := p.flags()
	w.short(f)
	if f&flagContentType != 0 {
		w.shortstr(p.ContentType)
	}
	if f&flagContentEncoding != 0 {
		w.shortstr(p.ContentEncoding)
	}
	if f&flagHeaders != 0 {
		w.table(p.Headers)
	}
	if f&flagDeliveryMode != 0 {
		w.octet(p.DeliveryMode)
	}
	if f&flagPriority != 0 {
		w.octet(p.Priority)
	}
	if f&flagCorrelationID != 0 {
		w.shortstr(p.CorrelationID)
	}
	if f&flagReplyTo != 0 {
		w.shortstr(p.ReplyTo)
	}
	if f&flagExpiration != 0 {
		w.shortstr(p.Expiration)
	}
	if f&flagMessageID != 0 {
		w.shortstr(p.MessageID)
	}
	if f&flagTimestamp != 0 {
		w.timestamp(p.Timestamp)
	}
	if f&flagType != 0 {
		w.shortstr(p.Type)
	}
	if f&flagUserID != 0 {
		w.shortstr(p.UserID)
	}
	if f&flagAppID != 0 {
		w.shortstr(p.AppID)
	}
	if f&flagClusterID != 0 {
		w.shortstr(p.ClusterID)
	}
}

func (p *Properties) read(r *reader) {
	*p = Properties{}
	f := r.short()
	if f&0x0003 != 0 {
		r.fail(errorf(SyntaxError, "property flags 0x%04x use bits 0-9-1 does not define", f))
		return
	}
	if f&flagContentType != 0 {
		p.ContentType = r.shortstr()
	}
	if f&flagContentEncoding != 0 {
		p.ContentEncoding = r.shortstr()
	}
	if f&flagHeaders != 0 {
		p.Headers = r.table()
		if p.Headers == nil && r.err == nil {
			p.Headers = Table{}
		}
	}
	if f&flagDeliveryMode != 0 {
		p.DeliveryMode = r.octet()
	}
	if f&flagPriority != 0 {
		p.Priority = r.octet()
	}
	if f&flagCorrelationID != 0 {
		p.CorrelationID = r.shortstr()
	}
	if f&flagReplyTo != 0 {
		p.ReplyTo = r.shortstr()
	}
	if f&flagExpiration != 0 {
		p.Expiration = r.shortstr()
	}
	if f&flagMessageID != 0 {
		p.MessageID = r.shortstr()
	}
	if f&flagTimestamp != 0 {
		p.Timestamp = r.timestamp()
	}
	if f&flagType != 0 {
		p.Type = r.shortstr()
	}
	if f&flagUserID != 0 {
		p.UserID = r.shortstr()
	}
	if f&flagAppID != 0 {
		p.AppID = r.shortstr()
	}
	if f&flagClusterID != 0 {
		p.ClusterID = r.shortstr()
	}
}
