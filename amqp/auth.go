package amqp

import (
	"strconv"

	"github.com/amqproto/amqproto/internal/sansio"
)

// Auth is a SASL mechanism: its name, the initial response (challenge nil)
// and the response to each connection.secure challenge. PlainAuth,
// AMQPlainAuth and ExternalAuth are built in; any other mechanism needs only
// this interface. The connection calls it from its own goroutine, once per
// handshake.
type Auth interface {
	// Mechanism returns the SASL mechanism name, such as "PLAIN".
	Mechanism() string
	// Response returns the response to challenge; challenge is nil for
	// the initial response, sent in connection.start-ok.
	Response(challenge []byte) ([]byte, error)
}

// The built-in mechanisms have value receivers: a value and a pointer both
// satisfy Auth.
var (
	_ Auth = PlainAuth{}
	_ Auth = AMQPlainAuth{}
	_ Auth = ExternalAuth{}
)

// PlainAuth is the PLAIN mechanism (RFC 4616), the default: a user name and
// a password, sent in the clear (use TLS). Without Config.Auth, the URI's
// credentials are used, guest/guest when it has none.
type PlainAuth struct {
	// Username is the user to log in as.
	Username string
	// Password is the user's password (or token, such as an OAuth 2
	// access token with RabbitMQ's OAuth 2 plugin).
	Password string
}

// Mechanism returns "PLAIN".
func (PlainAuth) Mechanism() string { return "PLAIN" }

// Response returns "\x00username\x00password".
func (a PlainAuth) Response([]byte) ([]byte, error) {
	b := make([]byte, 0, 2+len(a.Username)+len(a.Password))
	b = append(b, 0)
	b = append(b, a.Username...)
	b = append(b, 0)
	return append(b, a.Password...), nil
}

// String hides the password.
func (a PlainAuth) String() string { return "PLAIN " + a.Username + ":xxxxx" }

// GoString hides the password from %#v.
func (a PlainAuth) GoString() string {
	return "amqp.PlainAuth{Username:" + strconv.Quote(a.Username) + ", Password:\"xxxxx\"}"
}

// AMQPlainAuth is RabbitMQ's AMQPLAIN mechanism: the user name and password
// as a field table. Prefer PlainAuth, unless a broker offers only this.
type AMQPlainAuth struct {
	// Username is the user to log in as.
	Username string
	// Password is the user's password.
	Password string
}

// Mechanism returns "AMQPLAIN".
func (AMQPlainAuth) Mechanism() string { return "AMQPLAIN" }

// Response returns the LOGIN and PASSWORD fields, in this order, as a field
// table without its length prefix.
func (a AMQPlainAuth) Response([]byte) ([]byte, error) {
	var b []byte
	for _, f := range []Table{{"LOGIN": a.Username}, {"PASSWORD": a.Password}} {
		enc, err := sansio.AppendTable(nil, f)
		if err != nil {
			return nil, err
		}
		b = append(b, enc[4:]...) // without the table's length
	}
	return b, nil
}

// String hides the password.
func (a AMQPlainAuth) String() string { return "AMQPLAIN " + a.Username + ":xxxxx" }

// GoString hides the password from %#v.
func (a AMQPlainAuth) GoString() string {
	return "amqp.AMQPlainAuth{Username:" + strconv.Quote(a.Username) + ", Password:\"xxxxx\"}"
}

// ExternalAuth is the EXTERNAL mechanism: the broker authenticates the
// client by something outside AMQP, such as its TLS client certificate
// (RabbitMQ's rabbitmq_auth_mechanism_ssl plugin).
type ExternalAuth struct{}

// Mechanism returns "EXTERNAL".
func (ExternalAuth) Mechanism() string { return "EXTERNAL" }

// Response returns an empty response.
func (ExternalAuth) Response([]byte) ([]byte, error) { return []byte{}, nil }
