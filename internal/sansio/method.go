package sansio

import (
	"errors"
	"strconv"
)

//go:generate go run gen.go -o spec_gen.go spec/amqp0-9-1.stripped.extended.xml spec/rabbitmq-extensions.xml

// MethodID identifies a method: the class ID in the high 16 bits and the
// method ID within the class in the low 16 bits. Replies are matched by
// comparing IDs, never by reflection.
type MethodID uint32

// Class returns the class ID.
func (id MethodID) Class() uint16 { return uint16(id >> 16) }

// Method returns the method ID within the class.
func (id MethodID) Method() uint16 { return uint16(id) }

// String returns the spec's name, such as "basic.deliver", or the two
// numbers of an unknown method.
func (id MethodID) String() string {
	if name, ok := methodNames[id]; ok {
		return name
	}
	return "method(" + strconv.Itoa(int(id.Class())) + "," + strconv.Itoa(int(id.Method())) + ")"
}

// Method is implemented by the generated type of every AMQP method.
type Method interface {
	// ID returns the method's class and method IDs.
	ID() MethodID
	// Synchronous reports whether the method is a request that expects a
	// reply or is itself a reply.
	Synchronous() bool
	// HasContent reports whether a content header and body follow it.
	HasContent() bool
	// Responses lists the methods that may answer it.
	Responses() []MethodID
	// ClientReceives reports whether a server may send it to a client.
	ClientReceives() bool
}

// IsResponse reports whether reply answers req.
func IsResponse(req Method, reply MethodID) bool {
	for _, id := range req.Responses() {
		if id == reply {
			return true
		}
	}
	return false
}

// ReplyCode is a reply code from the specification, such as 404 NOT_FOUND.
type ReplyCode uint16

// String returns the spec's name of the code, such as "NOT_FOUND".
func (c ReplyCode) String() string {
	if name, ok := replyCodeNames[c]; ok {
		return name
	}
	return "REPLY_" + strconv.Itoa(int(c))
}

var errUnknownMethodType = errors.New("amqp: method type not known to the codec")

// ExpectsReply reports whether the server answers m: it has responses and
// its no-wait flag, if it has one, is not set.
func ExpectsReply(m Method) bool { return expectsReply(m) }

// CloneMethod returns a copy of m that later decoding does not overwrite.
func CloneMethod(m Method) Method { return cloneMethod(m) }
