package amqp

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/amqproto/amqproto/internal/sansio"
)

// Recovery is the policy for automatic recovery: when a connection's
// socket ends for a reason that a new socket can cure (a network failure, a
// missed heartbeat, or the broker's connection.close with 320
// CONNECTION_FORCED, 506 RESOURCE_ERROR or 541 INTERNAL_ERROR), the Conn
// dials again, walking its addresses with a backoff, re-declares the
// topology it recorded, reopens its channels and re-registers their
// consumers. The zero value recovers forever with the default delays.
type Recovery struct {
	// Disable turns recovery off: the connection ends at the first loss,
	// as do its channels and consumers.
	Disable bool
	// MaxAttempts bounds the dial attempts of one recovery (0: no bound).
	// An attempt tries every address once.
	MaxAttempts int
	// MaxDuration bounds the time one recovery may take (0: no bound).
	MaxDuration time.Duration
	// InitialDelay is the wait before the first attempt (0: 1 s); it gives
	// a cluster time to move queue leaders, and keeps many clients from
	// reconnecting at the same instant. Each wait is jittered by ±25%.
	InitialDelay time.Duration
	// MaxDelay caps the wait between attempts, which doubles from
	// InitialDelay (0: 2 s, or InitialDelay when it is longer).
	MaxDelay time.Duration
	// Backoff, when set, replaces InitialDelay and MaxDelay: it returns the
	// wait before attempt n (starting at 0), used as it is.
	Backoff func(attempt int) time.Duration
	// RepublishUnconfirmed opts in to at-least-once publishing across a
	// recovery: a publish on a channel in confirm mode whose confirm had not
	// come when the connection was lost is published again on the recovered
	// channel, and its original Confirmation reports the new outcome. The
	// broker may then hold the message twice. Without it, such a
	// Confirmation fails with ErrOutcomeUnknown. With it, each publish in
	// confirm mode keeps a copy of its body until its confirm comes, and
	// that copy is what is sent: Publish never waits for a large body to
	// be written, and the caller's body is its own again once Publish
	// returns.
	RepublishUnconfirmed bool
	// Filter, when set, is asked before each recorded entity is re-declared
	// (exchanges, queues, bindings, consumers); false leaves it out (a
	// consumer left out ends with ErrConsumerNotRecovered). It runs on the
	// recovery's goroutine and must not call Conn.Close, which waits for
	// the recovery to stop.
	Filter func(TopologyEntity) bool
}

// EntityKind says what a TopologyEntity is.
type EntityKind uint8

// Kinds of recorded topology.
const (
	EntityExchange EntityKind = iota + 1
	EntityQueue
	EntityQueueBinding
	EntityExchangeBinding
	EntityConsumer
)

// String names the kind, such as "queue binding".
func (k EntityKind) String() string {
	switch k {
	case EntityExchange:
		return "exchange"
	case EntityQueue:
		return "queue"
	case EntityQueueBinding:
		return "queue binding"
	case EntityExchangeBinding:
		return "exchange binding"
	case EntityConsumer:
		return "consumer"
	}
	return fmt.Sprintf("EntityKind(%d)", uint8(k))
}

// TopologyEntity describes one recorded entity, for Recovery.Filter and
// for the events that report a failure to re-declare it.
type TopologyEntity struct {
	// Kind is what the entity is: an exchange, a queue, a binding or a
	// consumer.
	Kind EntityKind
	// Name is the exchange's or queue's name, or the consumer's tag.
	Name string
	// Source, Destination and RoutingKey describe a binding: Source is the
	// exchange, Destination the queue or exchange bound to it.
	Source, Destination, RoutingKey string
	// Queue is a consumer's queue.
	Queue string
	// ServerNamed is true for a queue whose name the broker chose.
	ServerNamed bool
}

// String describes the entity for logs, such as `queue "jobs"`.
func (e TopologyEntity) String() string {
	switch e.Kind {
	case EntityQueueBinding, EntityExchangeBinding:
		return fmt.Sprintf("%v %q -> %q (key %q)", e.Kind, e.Source, e.Destination, e.RoutingKey)
	case EntityConsumer:
		return fmt.Sprintf("consumer %q on queue %q", e.Name, e.Queue)
	}
	return fmt.Sprintf("%v %q", e.Kind, e.Name)
}

// RecoveryEventKind says what a RecoveryEvent reports.
type RecoveryEventKind uint8

// Kinds of recovery events.
const (
	// Recovering: the connection was lost (Err says why) and a recovery
	// starts.
	Recovering RecoveryEventKind = iota + 1
	// AttemptFailed: one attempt to reconnect and restore failed (Err).
	AttemptFailed
	// Recovered: the connection is back, on Addr, as generation
	// Generation; channels and consumers were restored.
	Recovered
	// TopologyFailed: Entity could not be re-declared (Err); the rest of
	// the recovery went on.
	TopologyFailed
	// QueueRenamed: a server-named queue was re-declared under a new name
	// (OldName, NewName); its bindings and consumers follow it.
	QueueRenamed
	// RecoveryFailed: the policy gave up (Err); the connection has ended.
	RecoveryFailed
)

// String names the kind, such as "recovered".
func (k RecoveryEventKind) String() string {
	switch k {
	case Recovering:
		return "recovering"
	case AttemptFailed:
		return "attempt failed"
	case Recovered:
		return "recovered"
	case TopologyFailed:
		return "topology failed"
	case QueueRenamed:
		return "queue renamed"
	case RecoveryFailed:
		return "recovery failed"
	}
	return fmt.Sprintf("RecoveryEventKind(%d)", uint8(k))
}

// RecoveryEvent is one step of a recovery; see Conn.RecoveryEvents.
type RecoveryEvent struct {
	// Kind is the step the event reports.
	Kind RecoveryEventKind
	// Err is the loss (Recovering), the attempt's error (AttemptFailed),
	// the entity's error (TopologyFailed) or the final error
	// (RecoveryFailed).
	Err error
	// Addr is the broker address connected to (Recovered) or tried
	// (AttemptFailed).
	Addr string
	// Generation counts the sockets the connection has had: 1 for the
	// first, 2 after the first recovery, and so on. Events before
	// Recovered (Recovering, AttemptFailed, TopologyFailed, QueueRenamed)
	// carry the lost socket's generation; Recovered carries the new one.
	Generation uint64
	// Attempt numbers the attempts of this recovery, from 1.
	Attempt int
	// Entity is what failed to be re-declared (TopologyFailed).
	Entity TopologyEntity
	// OldName and NewName are a renamed server-named queue's names.
	OldName, NewName string
}

var (
	// ErrStaleDelivery is the error of Ack, Nack and Reject on a delivery
	// received on a channel that has since been recovered: its delivery
	// tag belongs to a channel that no longer exists, and the broker
	// redelivers the message. It matches ErrChannelClosed.
	ErrStaleDelivery error = &staleError{}
	// ErrOutcomeUnknown is the error of a Confirmation whose channel or
	// connection ended after the message was handed over but before the
	// broker confirmed it: the broker may or may not have it. It matches
	// the error that ended the channel or connection as well (for a
	// connection loss, ErrConnectionClosed).
	ErrOutcomeUnknown = errors.New("amqp: publish outcome unknown: the connection or channel ended before the broker confirmed it")
	// ErrTxLost is the error of TxCommit and TxRollback after the channel
	// was recovered in the middle of a transaction: the transaction was
	// lost with its connection and nothing of it was replayed.
	ErrTxLost = errors.New("amqp: transaction lost: the connection was recovered; publish and acknowledge again, then commit")
	// ErrConsumerNotRecovered ends a consumer that recovery could not
	// re-register (Recovery.Filter left it out, or its queue is gone).
	ErrConsumerNotRecovered = errors.New("amqp: consumer not recovered")
)

type staleError struct{}

func (*staleError) Error() string {
	return "amqp: stale delivery: its channel was recovered since it was received; the broker redelivers it"
}

// Is makes a stale delivery's error match ErrChannelClosed too.
func (*staleError) Is(target error) bool { return target == ErrChannelClosed }

// outcomeUnknownError wraps the end that left a publish unconfirmed.
type outcomeUnknownError struct{ cause error }

func (e *outcomeUnknownError) Error() string {
	return ErrOutcomeUnknown.Error() + ": " + e.cause.Error()
}
func (e *outcomeUnknownError) Unwrap() []error { return []error{ErrOutcomeUnknown, e.cause} }

// RecoveryError is why a recovery gave up: the policy's bound was reached
// after Attempts attempts. It matches ErrConnectionClosed, and its Unwrap
// gives both the loss that started the recovery and the last attempt's
// error.
type RecoveryError struct {
	Attempts int           // the attempts made before giving up
	Elapsed  time.Duration // from the loss to giving up
	Loss     error         // why the connection was lost
	Last     error         // the last attempt's error, if any
}

// Error says how many attempts were made, for how long, and why.
func (e *RecoveryError) Error() string {
	s := fmt.Sprintf("amqp: recovery gave up after %d attempts in %v: lost: %v", e.Attempts, e.Elapsed.Round(time.Millisecond), e.Loss)
	if e.Last != nil {
		s += "; last attempt: " + e.Last.Error()
	}
	return s
}

// Unwrap gives ErrConnectionClosed, the loss and the last attempt's error.
func (e *RecoveryError) Unwrap() []error {
	errs := []error{ErrConnectionClosed, e.Loss}
	if e.Last != nil {
		errs = append(errs, e.Last)
	}
	return errs
}

// recoverable reports whether a new socket can cure the end of a
// connection: network failures, missed heartbeats and the broker's
// forced, resource and internal-error closes can; protocol errors,
// refusals and the user's own Close cannot.
func recoverable(cause error) bool {
	var ce *sansio.CloseError
	if errors.As(cause, &ce) {
		if !ce.Connection || !ce.Server {
			return false // a channel's error, or a protocol error found here
		}
		switch ce.Code {
		case sansio.ConnectionForced, sansio.ResourceError, sansio.InternalError:
			return true
		}
		return false
	}
	var he *sansio.HandshakeError
	var ve *sansio.VersionError
	if errors.As(cause, &he) || errors.As(cause, &ve) {
		return false
	}
	return errors.Is(cause, ErrConnectionClosed)
}

// connectionLevel reports whether an error that ended a channel came from
// its connection's end rather than from the channel itself.
func connectionLevel(cause error) bool {
	return errors.Is(cause, ErrConnectionClosed)
}

// delay returns the wait before attempt n (from 0).
func (r *Recovery) delay(n int) time.Duration {
	if r.Backoff != nil {
		return r.Backoff(n)
	}
	initial, maxDelay := r.InitialDelay, r.MaxDelay
	if initial <= 0 {
		initial = time.Second
	}
	if maxDelay <= 0 {
		maxDelay = max(2*time.Second, initial) // the default cap never cuts InitialDelay
	}
	d := initial
	for i := 0; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.75 + rand.Float64()/2))
	return min(d, maxDelay)
}
