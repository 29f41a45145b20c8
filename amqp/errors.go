package amqp

import (
	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// Error is why a channel or connection ended: the reply code, the text, the
// class and method that caused it, whether the broker or this client closed,
// and whether it ended the whole connection or one channel. errors.Is
// matches it against the code sentinels below, and against
// ErrChannelClosed or ErrConnectionClosed according to what it ended.
type Error = sansio.CloseError

// ReplyCode is an AMQP reply code, such as 404 NOT_FOUND.
type ReplyCode = sansio.ReplyCode

// Reply codes.
const (
	ReplySuccess                 = sansio.ReplySuccess
	ContentTooLarge              = sansio.ContentTooLarge
	NoRoute            ReplyCode = 312
	NoConsumers                  = sansio.NoConsumers
	ConnectionForced             = sansio.ConnectionForced
	InvalidPath                  = sansio.InvalidPath
	AccessRefused                = sansio.AccessRefused
	NotFound                     = sansio.NotFound
	ResourceLocked               = sansio.ResourceLocked
	PreconditionFailed           = sansio.PreconditionFailed
	FrameError                   = sansio.FrameError
	SyntaxError                  = sansio.SyntaxError
	CommandInvalid               = sansio.CommandInvalid
	ChannelError                 = sansio.ChannelError
	UnexpectedFrame              = sansio.UnexpectedFrame
	ResourceError                = sansio.ResourceError
	NotAllowed                   = sansio.NotAllowed
	NotImplemented               = sansio.NotImplemented
	InternalError                = sansio.InternalError
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
// authentication.
type HandshakeError = sansio.HandshakeError

// TableError is a field table value this client cannot encode, in a
// method's arguments or a message's headers: a Go type with no AMQP field
// type, or a uint or uint64 over math.MaxInt64. It names the field's key
// and the value's Go type, and is returned before anything is sent.
type TableError = sansio.TableError

// VersionError: the broker does not speak AMQP 0-9-1.
type VersionError = sansio.VersionError
