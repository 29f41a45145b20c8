package sansio

import "strings"

// Auth is a SASL mechanism. The core asks it for the initial response, sent
// in connection.start-ok, and for the answer to every connection.secure
// challenge. A custom mechanism needs only this interface.
type Auth interface {
	// Mechanism returns the SASL mechanism name, such as "PLAIN".
	Mechanism() string
	// Response returns the response to challenge; the challenge is nil for
	// the initial response.
	Response(challenge []byte) ([]byte, error)
}

// PlainAuth is the PLAIN mechanism (RFC 4616) with a user name and password.
type PlainAuth struct {
	Username, Password string
}

// Mechanism returns "PLAIN".
func (*PlainAuth) Mechanism() string { return "PLAIN" }

// Response returns "\x00username\x00password".
func (a *PlainAuth) Response([]byte) ([]byte, error) {
	b := make([]byte, 0, 2+len(a.Username)+len(a.Password))
	b = append(b, 0)
	b = append(b, a.Username...)
	b = append(b, 0)
	return append(b, a.Password...), nil
}

// String hides the password.
func (a *PlainAuth) String() string { return "PLAIN " + a.Username + ":xxxxx" }

// AMQPlainAuth is RabbitMQ's AMQPLAIN mechanism: the credentials as a field
// table without its length prefix.
type AMQPlainAuth struct {
	Username, Password string
}

// Mechanism returns "AMQPLAIN".
func (*AMQPlainAuth) Mechanism() string { return "AMQPLAIN" }

// Response returns the LOGIN and PASSWORD fields in a fixed order.
func (a *AMQPlainAuth) Response([]byte) ([]byte, error) {
	w := writer{}
	w.shortstr("LOGIN")
	w.field(a.Username)
	w.shortstr("PASSWORD")
	w.field(a.Password)
	return w.buf, w.err
}

// String hides the password.
func (a *AMQPlainAuth) String() string { return "AMQPLAIN " + a.Username + ":xxxxx" }

// ExternalAuth is the EXTERNAL mechanism: the broker authenticates the client
// by something outside AMQP, such as its TLS client certificate.
type ExternalAuth struct{}

// Mechanism returns "EXTERNAL".
func (ExternalAuth) Mechanism() string { return "EXTERNAL" }

// Response returns an empty response.
func (ExternalAuth) Response([]byte) ([]byte, error) { return []byte{}, nil }

// chooseAuth returns the first of the client's mechanisms that the server
// offers in its space-separated list.
func chooseAuth(client []Auth, server string) Auth {
	offered := strings.Fields(server)
	for _, a := range client {
		for _, name := range offered {
			if a.Mechanism() == name {
				return a
			}
		}
	}
	return nil
}
