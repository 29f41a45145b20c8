// Package sansio is AMQP 0-9-1, as RabbitMQ speaks it, without I/O: a wire
// codec generated from the specification and a client connection as a pure
// state machine. Bytes and the current time go in; events and bytes to send
// come out. Nothing here starts a goroutine, touches the network or reads
// the clock, so any driver can run it: the actor in internal/actor is one, a
// test feeding byte transcripts is another.
//
// # Driving a Conn
//
// A driver owns one Conn and calls it from one goroutine; a Conn is not safe
// for concurrent use. The cycle is:
//
//  1. NewConn(cfg), then Start(now) queues the protocol header.
//  2. Whenever bytes arrive, Receive(now, buf) consumes every complete frame
//     in buf and returns how many bytes it used; the driver keeps the rest
//     and appends the next read to it. Frames are checked against frame_max
//     before they are buffered, so buf never needs to grow beyond
//     frame_max. When the socket fails or reaches EOF, ConnectionLost(err).
//  3. After every call, drain NextEvent until it returns false. Events own
//     their data: message bodies, methods and errors stay valid forever.
//  4. Send what TakeOutgoing(now, spare) returns. It hands over the pending
//     bytes and takes spare as the buffer for later frames, so two buffers
//     can alternate between the driver and its writer without copying.
//  5. Arm a timer for Deadline() (the zero time means none) and call
//     HandleTimeout(now) when it fires: heartbeats are sent when the
//     connection has been idle for half an interval, and the broker is
//     declared dead (EventConnectionClosed with ErrHeartbeatTimeout) when
//     nothing arrived for two intervals.
//
// Operations are calls: OpenChannel, Call (any method; those that expect a
// reply wait in order behind the channel's earlier requests, and their
// EventReply carries the caller's token), Publish (of frames encoded with
// AppendPublish), CloseChannel, Close and UpdateSecret. They only queue
// bytes; the results arrive as events.
//
// # Ownership
//
//   - A Conn belongs to the one goroutine that drives it; it is not safe
//     for concurrent use. The Append functions (AppendPublish and the
//     methods' AppendTo) are pure and may run on any goroutine: that is
//     how a driver encodes publishes outside its loop.
//   - Receive's buf and Publish's frames are borrowed for the call only
//     (the driver keeps buf's unused rest; frames are copied), except a
//     publish Publish reports borrowed: the driver writes its frames
//     itself, in the place Publish says. A method passed to Call is kept
//     until it is sent and must not change meanwhile.
//   - What comes out is handed over: events own their data, TakeOutgoing's
//     bytes are the driver's until it passes them back as a later spare.
//
// # Errors
//
// A protocol violation by the broker (a malformed frame, an unexpected
// method) closes the connection with the reply code the spec assigns to it,
// queued in the outgoing bytes, and ends the Conn at once with a
// *CloseError. A channel.close or connection.close from the broker ends the
// channel or connection with a *CloseError whose Server field is set. Every
// request waiting on an ended channel gets an EventReply with the error, and
// every unconfirmed publish an EventConfirm with ConfirmFailed, so each
// publish has exactly one outcome.
package sansio
