// Package amqp is an AMQP 0-9-1 client for RabbitMQ.
//
// # The model
//
// Each Conn is run by one goroutine, its actor, which alone owns the
// protocol state (a pure state machine in internal/sansio). A reader
// goroutine only reads the socket. Frames queued together go out in one
// write: the actor makes it itself when the socket takes it at once (TCP
// and Unix sockets), and a writer goroutine otherwise, which waits for the
// socket so that the actor never does. Your goroutines talk to the
// actor through channels, so every method of Conn, Channel, Consumer,
// Delivery and Confirmation is safe for concurrent use, and the actor never
// waits for you: a slow consumer, an unread notification channel or a
// blocked socket stalls nothing but itself.
//
// Every call that can block takes a context.Context first and honours it at
// every stage: queued behind another synchronous call on the channel,
// waiting for the broker's reply, or waiting to publish while the broker
// blocks the connection (connection.blocked), pauses the channel
// (channel.flow), or the outgoing buffer is full. A call abandoned by its
// context leaves the channel consistent: a request still queued is
// withdrawn, and the broker's late reply to one already sent is matched and
// dropped.
//
// # What you receive, and when it closes
//
//   - Consumer.Deliveries: the messages of one consumer. Range over it; it
//     is closed when the consumer ends and Consumer.Err says why (cancelled
//     by you, by the broker, channel or connection closed).
//   - Confirmation (from Publish on a channel in confirm mode): the outcome
//     of one publish, to Wait on or select on Done. Channel.Confirmations
//     gives every outcome in one channel, closed when the channel ends.
//   - Channel.Returns: messages the broker returned, closed when the
//     channel ends. A mandatory publish's return is also attached to its
//     Confirmation.
//   - Conn.Blocked: connection.blocked and unblocked notifications, closed
//     when the connection ends.
//   - Conn.Context and Channel.Context: cancelled when the connection or
//     channel ends, with the reason as context.Cause.
//
// # What is bounded
//
// Outgoing bytes are bounded by Config.MaxOutgoing: publishers wait beyond
// it. A consumer's buffer is bounded by its channel's Qos prefetch count
// (set Qos before Consume), or else by Config.ConsumerBuffer, beyond which
// the consumer is cancelled with ErrConsumerOverflow, keeping every delivery
// it already received. Frames are checked against the negotiated frame_max
// before they are buffered, and message bodies against Config.MaxBodySize.
// Nothing is dropped silently.
//
// # Errors
//
// A broker's channel.close or connection.close becomes an *Error with the
// reply code, text, class and method. errors.Is matches it against the
// sentinels (ErrNotFound, ErrAccessRefused, ErrPreconditionFailed,
// ErrResourceLocked, ErrConnectionForced, ...) and against ErrChannelClosed
// or ErrConnectionClosed according to what it ended. A channel error ends
// that channel only.
//
// # Shutting down
//
// Cancel consumers (or close their channels) and wait for confirmations you
// care about, then call Conn.Close with a context: it closes every channel,
// runs the close handshake, and returns after all of the connection's
// goroutines have exited. Deliveries still buffered for a manual-ack
// consumer are dropped when its channel ends (the broker redelivers them);
// those of an auto-ack consumer are handed over until Close is called.
package amqp
