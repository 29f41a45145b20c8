package sansio

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a violation of the protocol found in received or outgoing data. It
// carries the reply code that the specification assigns to the violation,
// which is also the code to close the connection or channel with.
type Error struct {
	Code ReplyCode
	Text string
}

func (e *Error) Error() string {
	return fmt.Sprintf("amqp: %s (%d): %s", e.Code, uint16(e.Code), e.Text)
}

func errorf(code ReplyCode, format string, args ...any) *Error {
	return &Error{Code: code, Text: fmt.Sprintf(format, args...)}
}

// CloseError is why a channel or connection ended: the reply code, text, and
// the class and method that caused it, as carried by channel.close or
// connection.close, whichever side sent it.
//
// errors.Is matches it against a *CloseError with the same Code (so against
// the exported sentinels such as ErrNotFound), against ErrChannelClosed when
// it ended a channel, and against ErrConnectionClosed when it ended the
// connection.
type CloseError struct {
	Code     ReplyCode
	Reason   string
	ClassID  uint16
	MethodID uint16
	// Server is true when the broker closed, false when this client did
	// (for example after a protocol violation by the broker).
	Server bool
	// Connection is true when the error ended the whole connection, false
	// when it ended one channel.
	Connection bool
}

func (e *CloseError) Error() string {
	scope := "channel"
	if e.Connection {
		scope = "connection"
	}
	by := "client"
	if e.Server {
		by = "server"
	}
	s := fmt.Sprintf("amqp: %s closed by %s: %d ", scope, by, uint16(e.Code))
	switch name := e.Code.String(); {
	case e.Reason == "":
		s += name
	case strings.HasPrefix(e.Reason, name):
		// RabbitMQ's reasons start with the code's name
		// ("ACCESS_REFUSED - Login was refused ..."): say it once.
		s += e.Reason
	default:
		s += name + ": " + e.Reason
	}
	if e.ClassID != 0 || e.MethodID != 0 {
		s += " (in " + MethodID(uint32(e.ClassID)<<16|uint32(e.MethodID)).String() + ")"
	}
	return s
}

// Is reports whether target is a *CloseError with the same code, or the
// sentinel for the scope this error ended.
func (e *CloseError) Is(target error) bool {
	switch target {
	case ErrChannelClosed:
		return !e.Connection
	case ErrConnectionClosed:
		return e.Connection
	}
	t, ok := target.(*CloseError)
	return ok && t.Code == e.Code && t.Reason == "" && t.ClassID == 0 && t.MethodID == 0
}

// Sentinels for errors.Is. The code sentinels match any *CloseError with
// that code.
var (
	ErrContentTooLarge    = &CloseError{Code: ContentTooLarge}
	ErrNoConsumers        = &CloseError{Code: NoConsumers}
	ErrConnectionForced   = &CloseError{Code: ConnectionForced}
	ErrInvalidPath        = &CloseError{Code: InvalidPath}
	ErrAccessRefused      = &CloseError{Code: AccessRefused}
	ErrNotFound           = &CloseError{Code: NotFound}
	ErrResourceLocked     = &CloseError{Code: ResourceLocked}
	ErrPreconditionFailed = &CloseError{Code: PreconditionFailed}
	ErrNotAllowed         = &CloseError{Code: NotAllowed}
	ErrFrameError         = &CloseError{Code: FrameError}
	ErrNotImplemented     = &CloseError{Code: NotImplemented}
	ErrInternalError      = &CloseError{Code: InternalError}

	// ErrChannelClosed matches every error that ended a channel, and is
	// returned by operations on a channel that is already closed.
	ErrChannelClosed = errors.New("amqp: channel closed")
	// ErrConnectionClosed matches every error that ended a connection, and
	// is returned by operations on a connection that is already closed.
	ErrConnectionClosed = errors.New("amqp: connection closed")
	// ErrNoFreeChannel: opening a channel failed because the connection
	// has as many open as the negotiated channel_max allows. The
	// connection stays open; a channel can be opened once one is closed.
	ErrNoFreeChannel = errors.New("amqp: no free channel number")
	// ErrHeartbeatTimeout: nothing arrived from the broker for two heartbeat
	// intervals.
	ErrHeartbeatTimeout = fmt.Errorf("amqp: no heartbeat from the broker for two intervals: %w", ErrConnectionClosed)
)

// ChannelEnd returns err, the end of a connection, as the end of one of
// its channels: an error that matches ErrChannelClosed as well as what err
// matches (ErrConnectionClosed, ErrHeartbeatTimeout, a reply code), with
// err's text. Other errors, nil among them, are returned as they are.
func ChannelEnd(err error) error {
	if err == nil || !errors.Is(err, ErrConnectionClosed) || errors.Is(err, ErrChannelClosed) {
		return err
	}
	return &channelEndError{err}
}

// channelEndError is a connection's end as the end of one of its channels.
type channelEndError struct{ err error }

func (e *channelEndError) Error() string        { return e.err.Error() }
func (e *channelEndError) Unwrap() error        { return e.err }
func (e *channelEndError) Is(target error) bool { return target == ErrChannelClosed }

// VersionError is returned when the server answers the protocol header with
// its own, because it does not speak AMQP 0-9-1.
type VersionError struct {
	Server [4]byte // the last 4 bytes of the server's protocol header
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("amqp: server does not support AMQP 0-9-1; it offers protocol %d, version %d-%d-%d",
		e.Server[0], e.Server[1], e.Server[2], e.Server[3])
}

// Unwrap lets errors.Is(err, ErrConnectionClosed) match.
func (e *VersionError) Unwrap() error { return ErrConnectionClosed }

// HandshakeError is a failure of the connection handshake that the server
// did not explain with connection.close: no common SASL mechanism, an
// unsupported version in connection.start, or the socket closed during
// authentication by a server without the authentication_failure_close
// capability (such servers close the socket on wrong credentials; with
// the capability, as RabbitMQ has, wrong credentials are a 403
// ACCESS_REFUSED and a closed socket is only a lost connection).
type HandshakeError struct {
	Text string
}

func (e *HandshakeError) Error() string { return "amqp: handshake failed: " + e.Text }

// Unwrap lets errors.Is(err, ErrConnectionClosed) match.
func (e *HandshakeError) Unwrap() error { return ErrConnectionClosed }
