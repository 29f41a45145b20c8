package amqp

import (
	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// Error is why a channel or connection ended, as carried by channel.close
// or connection.close, whichever side sent it. It is defined in an internal
// package, so its fields and methods are listed here:
//
//	type Error struct {
//		Code     ReplyCode // the reply code, such as 404 (NotFound)
//		Reason   string    // the reply text, such as "NOT_FOUND - no queue 'q' in vhost '/'"
//		ClassID  uint16    // the class of the method that caused it, 0 if none
//		MethodID uint16    // the method that caused it, 0 if none
//		// Server is true when the broker closed, false when this client
//		// did (for example after a protocol violation by the broker).
//		Server bool
//		// Connection is true when the error ended the whole connection,
//		// false when it ended one channel.
//		Connection bool
//	}
//
//	func (e *Error) Error() string
//	func (e *Error) Is(target error) bool
//
// errors.Is matches it against the code sentinels below (an *Error with the
// same Code), and against ErrChannelClosed or ErrConnectionClosed according
// to what it ended. Use errors.As to read the fields:
//
//	var amqpErr *amqp.Error
//	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound { ... }
type Error = sansio.CloseError

// ReplyCode is an AMQP reply code, such as 404 NOT_FOUND. It is defined in
// an internal package as
//
//	type ReplyCode uint16
//
//	// String returns the code's name in the specification, such as
//	// "NOT_FOUND", or "REPLY_n" for a code it does not name.
//	func (c ReplyCode) String() string
type ReplyCode = sansio.ReplyCode

// Reply codes, as the broker sends them in channel.close, connection.close
// and basic.return. Codes below 400 other than ReplySuccess concern one
// message; the others end a channel (soft errors: 403 to 406) or the
// connection (hard errors: 320, 402, 501 to 541).
const (
	ReplySuccess                 = sansio.ReplySuccess       // 200: a clean close
	ContentTooLarge              = sansio.ContentTooLarge    // 311: a message body over the limit
	NoRoute            ReplyCode = 312                       // 312: a mandatory message no queue took (basic.return)
	NoConsumers                  = sansio.NoConsumers        // 313: an immediate message no consumer took
	ConnectionForced             = sansio.ConnectionForced   // 320: closed by an operator, or the broker shut down
	InvalidPath                  = sansio.InvalidPath        // 402: an unknown virtual host
	AccessRefused                = sansio.AccessRefused      // 403: wrong credentials, or no permission
	NotFound                     = sansio.NotFound           // 404: no such queue or exchange
	ResourceLocked               = sansio.ResourceLocked     // 405: an exclusive queue of another connection
	PreconditionFailed           = sansio.PreconditionFailed // 406: redeclared with other arguments, unknown delivery tag, ...
	FrameError                   = sansio.FrameError         // 501: a malformed frame
	SyntaxError                  = sansio.SyntaxError        // 502: a malformed method or field
	CommandInvalid               = sansio.CommandInvalid     // 503: a method not allowed now
	ChannelError                 = sansio.ChannelError       // 504: a method on a channel not open
	UnexpectedFrame              = sansio.UnexpectedFrame    // 505: a frame out of order
	ResourceError                = sansio.ResourceError      // 506: the broker lacks the resources
	NotAllowed                   = sansio.NotAllowed         // 530: not permitted, such as a vhost the user may not open
	NotImplemented               = sansio.NotImplemented     // 540: a method the broker does not implement
	InternalError                = sansio.InternalError      // 541: the broker failed
)

// Sentinels for errors.Is. The code sentinels match any *Error with that
// code, for example errors.Is(err, ErrNotFound) after a passive declare of a
// missing queue.
var (
	ErrNotFound           = sansio.ErrNotFound           // 404
	ErrAccessRefused      = sansio.ErrAccessRefused      // 403: wrong credentials, or no permission
	ErrPreconditionFailed = sansio.ErrPreconditionFailed // 406: redeclared with other arguments
	ErrResourceLocked     = sansio.ErrResourceLocked     // 405: exclusive queue of another connection
	ErrConnectionForced   = sansio.ErrConnectionForced   // 320: closed by an operator or shutdown
	ErrNotAllowed         = sansio.ErrNotAllowed         // 530: vhost missing or not permitted
	ErrContentTooLarge    = sansio.ErrContentTooLarge    // 311
	ErrInternalError      = sansio.ErrInternalError      // 541

	// ErrChannelClosed matches every error that ended a channel, and is
	// returned by operations on an ended channel.
	ErrChannelClosed = sansio.ErrChannelClosed
	// ErrConnectionClosed matches every error that ended a connection,
	// and is returned by operations on an ended connection.
	ErrConnectionClosed = sansio.ErrConnectionClosed
	// ErrNoFreeChannel: Conn.Channel failed because as many channels are
	// open as the negotiated channel_max allows (see Conn.Tuning). The
	// connection stays usable; closing a channel frees its number.
	ErrNoFreeChannel = sansio.ErrNoFreeChannel
	// ErrHeartbeatTimeout: the broker sent nothing for two heartbeat
	// intervals. It matches ErrConnectionClosed.
	ErrHeartbeatTimeout = sansio.ErrHeartbeatTimeout

	// ErrConsumerCancelled ends a consumer cancelled with Consumer.Cancel.
	ErrConsumerCancelled = actor.ErrConsumerCancelled
	// ErrCancelledByBroker ends a consumer that the broker cancelled, for
	// example because its queue was deleted (consumer cancel notification).
	ErrCancelledByBroker = actor.ErrCancelledByBroker
	// ErrConsumerOverflow ends a consumer whose receiver fell
	// Config.ConsumerBuffer deliveries behind without a prefetch limit.
	ErrConsumerOverflow = actor.ErrConsumerOverflow
)

// HandshakeError is a failure of the connection handshake that the broker
// did not explain: no common SASL mechanism, or the socket closed during
// authentication by a broker without the authentication_failure_close
// capability (which is how such brokers refuse wrong credentials;
// RabbitMQ has the capability and answers them with 403 ACCESS_REFUSED, so
// there a closed socket is a lost connection instead). It comes in a
// *DialError. It is defined in an internal package as
//
//	type HandshakeError struct {
//		Text string // what failed
//	}
//
//	func (e *HandshakeError) Error() string
//	// Unwrap returns ErrConnectionClosed.
//	func (e *HandshakeError) Unwrap() error
type HandshakeError = sansio.HandshakeError

// HeldError is the error of a synchronous call (a declare, a bind, Qos,
// Tx, ...) whose context ended while it waited for its turn behind an
// earlier synchronous call on the same channel that the broker had not
// answered: the protocol allows one at a time per channel. Nothing of the
// held call was sent, and the channel stays open. Behind names the
// unanswered method; while the broker does not answer it, every later
// synchronous call on the channel is held the same way (a channel whose
// broker never answers is best closed). errors.Is matches the context's
// error through it. It is defined in an internal package as
//
//	type HeldError struct {
//		Behind string // the unanswered method, such as "tx.select"
//		Err    error  // the held call's context's error
//	}
//
//	func (e *HeldError) Error() string
//	// Unwrap returns Err.
//	func (e *HeldError) Unwrap() error
type HeldError = actor.HeldError

// TableError is a field table value this client cannot encode, in a
// method's arguments or a message's headers: a Go type with no AMQP field
// type, or a uint or uint64 over math.MaxInt64. It names the field's key
// and the value's Go type, and is returned before anything is sent. It is
// defined in an internal package as
//
//	type TableError struct {
//		// Key is the field's key; in nested tables and arrays, the path
//		// to it, keys joined by "." and array indexes in brackets ("a.b[2]").
//		Key  string
//		Type string // the value's Go type, as %T prints it
//		Text string // what is wrong with the value
//	}
//
//	func (e *TableError) Error() string
type TableError = sansio.TableError

// VersionError: the broker does not speak AMQP 0-9-1; it answered the
// protocol header with its own. It is defined in an internal package as
//
//	type VersionError struct {
//		Server [4]byte // the last 4 bytes of the broker's protocol header
//	}
//
//	func (e *VersionError) Error() string
//	// Unwrap returns ErrConnectionClosed.
//	func (e *VersionError) Unwrap() error
type VersionError = sansio.VersionError
