// Package amqp is an AMQP 0-9-1 client for RabbitMQ.
//
// Coming from rabbitmq/amqp091-go? MIGRATING.md at the root of the module
// maps every call, and lists the differences that compile silently (the
// argument order of QueueBind and ExchangeBind above all).
//
// # Connecting
//
// Dial connects to an AMQP URI; DialConfig takes a Config as well (TLS,
// credentials, heartbeat, a logger, limits). The context bounds dialing and
// the handshake only, not the connection's life. A Conn carries channels;
// open one per goroutine that declares, publishes or consumes, or share
// them: every method is safe for concurrent use.
//
//	conn, err := amqp.Dial(ctx, "amqp://guest:guest@localhost:5672/")
//	if err != nil {
//		return err // *URIError, *DialError, errors.Is(err, ErrAccessRefused), ...
//	}
//	defer conn.Close(ctx)
//	ch, err := conn.Channel(ctx)
//	if err != nil {
//		return err
//	}
//	q, err := ch.QueueDeclare(ctx, "jobs", amqp.QueueOptions{Durable: true})
//
// An amqps:// URI uses TLS, verified against the system roots or the URI's
// cacertfile; Config.TLS configures it in Go. Config.Auth chooses the SASL
// mechanism (PlainAuth with the URI's credentials by default,
// ExternalAuth for a client certificate).
//
// # Publishing with confirms
//
// Put the channel in confirm mode once with Channel.Confirm; from then on
// Publish returns a Confirmation per message, settled exactly once: acked,
// nacked (ErrNacked), returned when Mandatory and no queue took it
// (ErrReturned), or failed because the channel or connection ended first.
//
//	if err := ch.Confirm(ctx); err != nil {
//		return err
//	}
//	conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q.Name, Mandatory: true,
//		Properties: amqp.Properties{DeliveryMode: amqp.Persistent}, Body: body})
//	if err != nil {
//		return err // not sent
//	}
//	if err := conf.Wait(ctx); err != nil {
//		return err // nacked, returned, or the channel ended: publish again
//	}
//
// Publish returns as soon as the message is handed to the connection and
// the connection no longer needs the body: the caller may then reuse it. A
// body of 256 KiB or more, on a plain TCP or Unix socket (Linux, amd64 and
// arm64), is written to the socket from the caller's memory, not copied,
// and Publish returns once it is written; if its context ends first, it
// copies the part not yet written and returns nil: the message is still
// sent whole, since the frames before it are already on the wire. Smaller
// bodies, and every body over TLS, are copied, and Publish returns without
// waiting for the socket. Wait for many confirmations at once by
// publishing first and waiting after, or read Channel.Confirmations.
// Without confirm mode Publish returns a nil *Confirmation, whose methods
// report ErrNotConfirmMode.
//
// # Consuming
//
// Consume starts a consumer; range over its Deliveries and acknowledge
// each one (unless ConsumeOptions.AutoAck). The channel closes when the
// consumer ends, and Consumer.Err says why.
//
//	cons, err := ch.Consume(ctx, "jobs", amqp.ConsumeOptions{})
//	if err != nil {
//		return err
//	}
//	for d := range cons.Deliveries() {
//		process(d.Body)
//		if err := d.Ack(ctx, false); err != nil {
//			log.Print(err) // the channel ended; the broker redelivers it
//		}
//	}
//	log.Print("consumer ended: ", cons.Err())
//
// A manual-ack consumer is bounded by its prefetch: Channel.Qos before
// Consume sets it, and on a channel where Qos was never called Consume
// sets one of Config.ConsumerBuffer itself. Consume's ctx bounds the call
// only; ConsumeOptions.CancelWithContext also ends the consumer with it.
//
// # Errors
//
// A broker's channel.close or connection.close becomes an *Error with the
// reply code, text, class and method. errors.Is matches it against the
// sentinels (ErrNotFound, ErrAccessRefused, ErrPreconditionFailed,
// ErrResourceLocked, ErrConnectionForced, ...) and against ErrChannelClosed
// or ErrConnectionClosed according to what it ended. A channel error ends
// that channel only: open another to go on. Failures before the connection
// is open are a *URIError (the URI) or a *DialError wrapping the cause:
// network, TLS, or an *Error when the broker refused (such as 403 for
// wrong credentials, which errors.Is still matches). A header
// value that cannot be encoded is a *TableError, before anything is sent.
//
// # Contexts
//
// Every call that can block takes a context.Context first. The context
// bounds each stage of the call: waiting in line behind other synchronous
// calls on the same channel, waiting for room to send (the outgoing buffer
// is full, the broker blocked the connection with connection.blocked, or
// paused the channel with channel.flow), and waiting for the broker's
// reply.
//
// A call made with a context that is already done does nothing and returns
// the context's error, every time: nothing is sent, no channel is opened,
// Channel.Close leaves the channel open. (Conn.Close is the exception: it
// still closes, without waiting; see below.) When the context ends while
// the request is still waiting to be handed to the connection, the request
// is withdrawn and nothing is sent. When it ends after the hand-over, the
// call returns the context's error at once, and then:
//
//   - a synchronous call (a declare, a bind, Qos, Get, Consume, ...) still
//     waiting its turn behind an earlier one on its channel is withdrawn,
//     and nothing of it is sent. If that earlier call is one the broker has
//     not answered, the error is a *HeldError naming it (it wraps the
//     context's error);
//   - a synchronous call already sent to the broker may still take effect:
//     the broker may create the queue or register the consumer. Its late
//     reply is matched and dropped (a consumer nobody takes is
//     cancelled, and what it or a basic.get brings is given back to the
//     queue, unless taken with auto-ack: then the broker has let go of it,
//     and it is lost), so the channel stays consistent and usable;
//   - Ack, Nack, Reject and Publish take effect once they returned nil:
//     their context bounds only the wait to be handed over (and, for
//     Publish, for room to send, and for a large body to be written: one
//     not written when the context ends is copied and still sent). A
//     Confirmation still reports the outcome of a publish after Publish's
//     context has ended.
//
// The context never ends the channel: a broker that never answers leaves
// later synchronous calls on that channel held (each says so when its own
// context ends, with a *HeldError), while Channel.Err stays nil, since
// slow replies (a large queue.delete) are legitimate. Close such a
// channel, or the connection.
//
// # Shutting down gracefully
//
// The usual pattern, one signal.NotifyContext context passed everywhere,
// would make every Ack after SIGTERM fail, and the broker would redeliver
// work already done. Let the signal's context stop the loop, and give the
// Acks of finished work (and Close) a context that the signal does not
// cancel, built with context.WithoutCancel and bounded by a timeout:
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	...
//	for {
//		select {
//		case <-ctx.Done():
//			return // unprocessed deliveries go back to the queue
//		case d, ok := <-cons.Deliveries():
//			if !ok {
//				return
//			}
//			process(d.Body)
//			ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
//			err := d.Ack(ackCtx, false)
//			cancel()
//			...
//		}
//	}
//
// The package example gracefulShutdown is the whole program. Then: cancel
// consumers (or close their channels), wait for the confirmations you care
// about, and call Conn.Close with a bounded context: it closes every
// channel, runs the close handshake, and returns after all of the
// connection's goroutines have exited. If its context ends first, Close
// closes the socket at once, dropping what is still unsent, and returns
// the context's error within it. Close returns nil only when it ended the
// connection cleanly; after a loss (recovery off) or during a recovery, it
// returns the loss.
//
// # Concurrency
//
// Each Conn is run by one goroutine, its actor, which alone owns the
// protocol state (a pure state machine in internal/sansio). A reader
// goroutine only reads the socket. Frames queued together go out in one
// write: the actor makes it itself when the socket takes it at once (TCP
// and Unix sockets), and a writer goroutine otherwise, started the first
// time it is needed, which waits for the socket so that the actor never
// does. An idle connection holds no read buffer on TCP and Unix sockets:
// buffers come from a pool shared by all connections when data arrives. Your goroutines talk to the actor
// through channels, so every method of Conn, Channel, Consumer, Delivery
// and Confirmation is safe for concurrent use, and the actor never waits
// for you: a slow consumer, an unread notification channel or a blocked
// socket stalls nothing but itself. Synchronous calls on one channel from
// several goroutines are sent one at a time, in the order they were made,
// as the protocol requires; use several channels for parallel declares.
// Publishes from several goroutines on one channel are each sent whole,
// never interleaved.
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
//   - Conn.Blocked: whether the broker blocks the connection's
//     publishers (connection.blocked and unblocked), coalesced to the
//     latest state, the current one first; closed when the connection
//     ends. Conn.IsBlocked tells the state without waiting.
//   - Conn.Context and Channel.Context: cancelled when the connection or
//     channel ends, with the reason as context.Cause.
//
// # When a socket is lost: automatic recovery
//
// A Conn outlives its sockets. When the network fails, the broker stays
// silent for two heartbeat intervals (ErrHeartbeatTimeout), or the broker
// closes the connection with 320 CONNECTION_FORCED (an operator, a node
// shutting down), 506 RESOURCE_ERROR or 541 INTERNAL_ERROR, the Conn
// recovers: it waits (Recovery.InitialDelay, 1 s with ±25% jitter, then
// doubling up to Recovery.MaxDelay, 2 s), dials the broker again, walking
// the URL and Config.Addresses (or Config.Resolver's list) in turn,
// shuffled unless Config.KeepAddressOrder, and restores, in order:
//
//   - the topology declared through this Conn: exchanges, queues (a
//     server-named queue gets a new name, and its bindings and consumers
//     follow it; RecoveryEvents reports the new name) and bindings.
//     Deletions and unbindings remove entities from the record, and so
//     does what the broker deletes by itself: an auto-delete queue once
//     this Conn's last consumer of it is cancelled or its channel closed,
//     an auto-delete exchange once this Conn's last binding from it is
//     gone; Recovery.Filter leaves entities out. An entity the broker
//     refuses is reported (TopologyFailed) and the rest goes on. A named
//     exclusive queue refused with 405 RESOURCE_LOCKED is first declared
//     again until two heartbeat intervals and 5 s have passed since the
//     loss (half of Recovery.MaxDuration at most), over as many attempts
//     as that takes: after a silent failure (a partition) the broker keeps
//     the lost connection, and its exclusive queues, until it misses that
//     connection's heartbeats;
//   - every open Channel, with its Qos, confirm mode and transaction mode;
//   - every Consumer, with its tag, on its Channel. An empty queue name
//     is recorded as the queue it meant (the channel's last declared).
//
// The handles stay valid: the same *Conn, *Channel and *Consumer go on,
// and a consumer's Deliveries channel stays open. The model is one handle
// over a succession of generations, each the channel or consumer on one
// socket:
//
//   - a call made during a recovery waits for it, within its context, and
//     then runs on the new socket;
//   - a synchronous call in flight when the socket was lost (a declare, a
//     bind, a Get) fails with an error matching ErrConnectionClosed: it may
//     have taken effect, so it is not repeated;
//   - a publish refused because the socket had just been lost waits and
//     goes to the new socket. One handed over before the loss whose confirm
//     had not come settles its Confirmation with ErrOutcomeUnknown (which
//     also matches ErrConnectionClosed): the broker may or may not have the
//     message. It is never reported as acked or nacked, and never published
//     again, unless Recovery.RepublishUnconfirmed opts in to at-least-once
//     publishing. A Publish still writing its large body when the socket
//     is lost returns nil at once: it was handed over, and its
//     Confirmation reports as above;
//   - delivery tags keep growing across a recovery. A Delivery received
//     before it can no longer be acknowledged: Ack, Nack and Reject fail
//     with ErrStaleDelivery (matching ErrChannelClosed), never touching
//     another message, and the broker delivers the message again, with
//     Redelivered set (unless its queue was exclusive or auto-delete: such
//     a queue dies with the socket, and its messages with it). Deliveries
//     of a manual-ack consumer still buffered from the lost socket are
//     dropped rather than handed over;
//   - a server-named queue comes back under a new name: the name the
//     declare returned is dead. Conn.QueueName gives the current one, and
//     RecoveryEvents reports each rename (QueueRenamed);
//   - a transaction is lost with its socket: the next TxCommit or
//     TxRollback after a recovery fails with ErrTxLost (even when the
//     transaction held no work), and nothing of it is replayed;
//   - Conn.Context and Channel.Context stay alive: they end only when the
//     connection or channel ends for good. Conn.Generation counts sockets.
//
// Conn.RecoveryEvents reports each step (Recovering with the cause,
// AttemptFailed, Recovered with the address and generation,
// TopologyFailed, QueueRenamed, RecoveryFailed) on a bounded channel that
// recovery never waits for; the log gets a Warn for each loss and an Info
// for each recovery.
//
// What never starts a recovery: Close; a protocol error (501 to 505, 540),
// which a new socket would only repeat; and a channel's own error (404,
// 403, 406 on a channel), which ends that channel only, as without
// recovery. A refusal of the credentials or the vhost (403, 530) fails the
// first Dial at once, and counts as one failed attempt during a recovery.
// The policy (Recovery.MaxAttempts, Recovery.MaxDuration) bounds a
// recovery; when it gives up, the connection ends with a *RecoveryError.
// Recovery.Disable switches recovery off.
//
// # When a connection ends for good
//
// A connection ends for good when Close is called, when a recovery gives
// up or is switched off, or when the end is one no recovery follows (see
// above). Then every channel ends with it; calls waiting on it return an
// error matching ErrConnectionClosed (and, on a channel, ErrChannelClosed
// too, as do the channel's Err and the calls made on it afterwards);
// Conn.Err and IsClosed say so as soon as a call has returned that end;
// Conn.Context and every Channel.Context are cancelled with the cause;
// every pending Confirmation fails with ErrOutcomeUnknown; consumers end,
// and the deliveries still buffered for a manual-ack consumer are dropped,
// since they can no longer be acknowledged and the broker requeues them,
// while those of an auto-ack consumer are still handed over until Close is
// called.
//
// # Observability
//
// Conn.Stats returns the connection's counters and gauges (publishes,
// confirms, deliveries, buffered deliveries per consumer, bytes, frames,
// reads and writes, blocked time, missed heartbeats, recoveries), summed
// over every socket of a recovered connection. Config.Tracer takes hooks
// (Tracer) for publishes, confirms, deliveries, acknowledgements,
// synchronous methods and connection events; they run on the caller's
// goroutine or on a tracer goroutine, never on the connection's own. The
// module github.com/amqproto/amqproto/otelamqp implements them with
// OpenTelemetry. Config.Logger gets Warn for a broker-forced close, a lost
// connection, a consumer cancelled by the broker or for overflow, and
// missed heartbeats; Info for connection.blocked and unblocked and a
// completed recovery; Debug for the rest (Error when a recovery gives up).
// No password is ever logged.
//
// # Limits and defaults
//
// The zero Config takes every value from the URI, then from the broker or
// these defaults:
//
//   - Config.ConsumerBuffer (16384): the deliveries held for a consumer
//     that the broker does not bound. A manual-ack consumer is bounded by
//     its prefetch, which Consume sets to ConsumerBuffer (at most 65535) on
//     a channel where Qos was never called. An auto-ack consumer, or one on
//     a channel with an explicit Qos(0), that falls this far behind is
//     cancelled with ErrConsumerOverflow (logged at Warn), keeping every
//     delivery it already received.
//   - Config.MaxOutgoing (4 MiB): the bytes waiting to be written to the
//     socket; publishers wait beyond it, honouring their contexts.
//   - Config.MaxBodySize (512 MiB): a larger received message closes its
//     channel with 311 CONTENT_TOO_LARGE. Frames are checked against the
//     negotiated frame_max before they are buffered.
//   - Heartbeat, frame_max and channel_max: the broker's proposals
//     (RabbitMQ: 60 s, 128 KiB, 2047), unless the URI or Config set them.
//   - Config.ConnectionTimeout (DefaultConnectionTimeout, 30 s): dialing,
//     TLS and the handshake.
//
// Nothing is dropped silently.
package amqp
