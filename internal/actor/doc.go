// Package actor runs a sansio.Conn over a net.Conn. One goroutine, the
// loop, owns the state machine; a reader and a writer goroutine only move
// bytes. The loop makes a write itself when the socket takes it without
// waiting (see tryWriter, vecWriter), and hands the writer, which it starts the first
// time, whatever the socket would make it wait for. The reader's buffers
// come from a pool shared by all connections (see reader.go). Callers talk to the loop through channels and never
// share its state; the loop never blocks on a caller, a consumer or the
// socket, but for the moment a channel ends and while a publisher giving
// up copies its lent body (see below).
//
// # Ownership
//
//   - The loop owns the sansio.Conn and everything in the loop struct,
//     loopChannel and the Consumer fields marked so. Nothing else touches
//     them; in race-enabled builds (the tests) the loop's entry points
//     check that they run on the loop goroutine.
//   - Callers reach the loop with a request queued on Conn.reqs (one
//     reply channel each, capacity 1) or a publishReq queued on Conn.pubs:
//     two inboxes, which never make a caller wait and hold no storage
//     while empty. They read what the loop publishes for them: Channel and
//     Conn contexts, gates, atomics, and Mailboxes, whose one consumer is
//     the amqp layer.
//   - A publish racing its channel's end is settled by one lock per
//     channel: a publisher checks Channel.pubsClosed and queues on
//     Conn.pubs under the read lock; the loop, ending the channel (also
//     when the connection ends), cancels its context, sets pubsClosed
//     under the write lock, fails the publishes still queued and only then
//     closes Outcomes. So every publish Publish accepted gets an outcome.
//   - A body of lendMin bytes or more is lent, not copied, on a socket
//     that takes vectored writes without blocking (see loan, vecWriter):
//     the write refers to the caller's memory and Publish waits until the
//     loop repays the loan (written, copied or dropped; once per loan).
//     Conn.lendMu settles a publisher giving up against the write: the
//     writes hold it around each system call only, and the publisher,
//     holding it, copies what is left of its body and points the write at
//     the copy.
//   - A Mailbox belongs to the loop on the pushing side and to one
//     consumer on the taking side; its lock is held only to move a batch.
package actor
