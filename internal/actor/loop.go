package actor

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"time"

	"github.com/amqproto/amqproto/internal/sansio"
)

// waiter is a caller waiting for the reply to the request with its token.
type waiter struct {
	req       request
	abandoned bool  // the caller gave up; clean up when the reply comes
	reason    error // why the loop itself cancelled a consumer
}

// loopChannel is the loop's view of one channel, owned by the loop.
type loopChannel struct {
	ch        *Channel
	consumers map[string]*Consumer
	prefetch  uint16
}

// loop is the state owned by the loop goroutine. Nothing else touches it;
// the functions other goroutines could be tempted to call check so (in
// race-enabled builds).
type loop struct {
	owner owner
	c     *Conn
	core  *sansio.Conn

	waiters  map[uint64]*waiter
	channels map[uint16]*loopChannel
	inbuf    []byte
	finished bool
	cause    error
	// writeErr is a write failure held back during the handshake while
	// the reader may still hand over the peer's reason (see writeFailed).
	writeErr error

	// What callers queued: requests, and publishes, those before takenAt
	// handled. Each slice takes turns with its inbox's storage.
	reqSpare []request
	taken    []publishReq
	takenAt  int
	owed     int64 // of c.queued, held for publishes taken past MaxOutgoing

	// I/O goroutines.
	readCh   chan readResult  // reader → loop: bytes read, then the error that ended the reading
	writeCh  chan *writeBatch // loop → writer: bytes to write; at most one outstanding
	wrote    chan *writeBatch // made with the writer, like writeCh
	stop     chan struct{}    // closed by the loop when it ends
	ioDone   chan struct{}    // each I/O goroutine sends once as it exits
	writerUp bool             // the writer goroutine was started
	trimming bool             // a heartbeat tick's step: keep no large buffer
	writing  bool
	inFlight int // bytes of the write in progress not yet written

	// next collects, in order, what the next write sends: the core's
	// outgoing bytes and, without a copy, the frames of large publishes
	// and the bodies lent by their publishers. Two batches take turns, one
	// being written while the other fills: spare is the one last written,
	// emptied, while no write is in progress.
	next       *writeBatch
	spare      *writeBatch
	batches    [2]writeBatch // what next and spare point to
	nextBytes  int
	coreSpares [][]byte // the core's written buffers, to append to again
	// timer signals tick at the core's deadline. It is a function timer:
	// a channel timer is put back in the runtime's timer heap each time
	// the loop blocks on it, and that wakes the thread sleeping in the
	// network poller.
	timer  *time.Timer
	tick   chan struct{}
	armed  time.Time  // when timer fires; zero when it is not set
	direct *tryWriter // nil: the socket cannot be written without blocking, or vec writes it
	vec    *vecWriter // nil: no vectored writes without blocking; nothing is lent
	// sock reads without holding a buffer while it waits, taking buffers
	// from recycle first; nil: the reader reads with nc.Read.
	sock    *sockReader
	recycle recycler
}

// writeBatch is one vectored write. pooled are the publish buffers among
// bufs, returned to their pool once written; core are the core's buffers,
// reused for its later frames; loans are the lent bodies among bufs, repaid
// once written. While a batch holding loans is written, bufs is guarded by
// Conn.lendMu (see loan).
type writeBatch struct {
	bufs   net.Buffers
	cur    int // with vecWriter: bufs[:cur] are written, bufs[cur] is what is left of its buffer
	pooled []*[]byte
	core   [][]byte
	loans  []*loan
	err    error
}

// written reports whether vecWriter has written all of b.
func (b *writeBatch) written() bool { return b.cur == len(b.bufs) }

// advance moves b past n bytes written.
func (b *writeBatch) advance(n int) {
	for b.cur < len(b.bufs) && n >= len(b.bufs[b.cur]) {
		n -= len(b.bufs[b.cur])
		b.cur++
	}
	if n > 0 {
		b.bufs[b.cur] = b.bufs[b.cur][n:]
	}
}

// zeroCopyMin is the size from which a publish's frames are written from
// their own buffer rather than copied into the core's: below it, one
// contiguous buffer makes cheaper writes than many small vectors.
const zeroCopyMin = 16 << 10

func newLoop(c *Conn) *loop {
	vec := newVecWriter(c.nc, &c.lendMu)
	c.lends = vec != nil
	l := &loop{
		c:        c,
		core:     sansio.NewConn(c.cfg.Core),
		waiters:  make(map[uint64]*waiter),
		channels: make(map[uint16]*loopChannel),
		readCh:   make(chan readResult),
		stop:     make(chan struct{}),
		ioDone:   make(chan struct{}, 2),
		vec:      vec,
	}
	l.sock = newSockReader(c.nc, &l.recycle)
	if vec == nil {
		l.direct = newTryWriter(c.nc)
	}
	l.next, l.spare = &l.batches[0], &l.batches[1]
	return l
}

func (l *loop) run() {
	l.owner.claim()
	// The reader and writer goroutines are owned by the loop. The reader
	// exits when a read fails (the loop closes the socket to make it) or
	// l.stop closes; the writer, started by the first write the loop cannot
	// make itself (see flush), exits when l.writeCh closes. The loop waits
	// for both before closing c.done.
	go l.reader()
	l.tick = make(chan struct{}, 1)
	// The timer's function runs in a goroutine of its own each time it
	// fires; it never blocks, so it ends at once, also after shutdown.
	l.timer = time.AfterFunc(time.Hour, func() {
		select {
		case l.tick <- struct{}{}:
		default:
		}
	})
	l.timer.Stop()
	l.core.Start(now())
	l.afterEach()
	for !l.finished {
		l.step()
		l.afterEach()
	}
	l.shutdown()
}

// step waits for one thing to happen and handles it.
func (l *loop) step() {
	c := l.c
	var pubs <-chan struct{}
	if l.core.IsOpen() && l.outgoing() < c.cfg.MaxOutgoing {
		pubs = c.pubs.signal
		if l.publishesTaken() {
			pubs = closedDone // ready at once: publishes taken wait
		}
	}
	select {
	case r := <-l.readCh:
		l.handleRead(r)
	case <-c.reqs.signal:
		l.handleRequests()
	case <-pubs:
		l.publishSome()
	case res := <-l.wrote:
		l.c.stats.writes.Add(1)
		l.writeDone(res)
	case <-l.tick:
		l.armed = time.Time{}
		l.trimming = true // until the end of this step; see trimBuffers
		l.trimBuffers()
		// Bytes the reader already holds came in time, even when the
		// loop, slowed down, sees the timer first: select picks at
		// random among ready cases, and a missed heartbeat ends the
		// connection.
		select {
		case r := <-l.readCh:
			l.handleRead(r)
		default:
		}
		if !l.core.Closed() {
			l.core.HandleTimeout(now())
		}
	case <-c.ctx.Done():
		l.core.ConnectionLost(context.Cause(c.ctx))
	}
}

// handleRead gives the core what the reader read, or the error that ended
// the reading.
func (l *loop) handleRead(r readResult) {
	if r.rb == nil {
		l.core.ConnectionLost(l.readLost(r.err))
		return
	}
	l.receive(r.rb.b[:r.rb.n])
	l.doneReading(r.rb) // the core keeps no reference to it
}

// doneReading returns a read buffer once its bytes are received.
func (l *loop) doneReading(rb *readBuf) {
	if l.sock != nil {
		l.recycle.give(rb)
		return
	}
	putReadBuf(rb)
}

// handleRequests handles every request queued, in order.
func (l *loop) handleRequests() {
	reqs := l.c.reqs.take(l.reqSpare)
	l.c.sends.leave(countSent(reqs))
	for _, req := range reqs {
		l.handle(req)
	}
	clear(reqs) // an idle connection keeps no reply channel or method alive
	l.reqSpare = reqs
}

// countSent is the number of reqs queued by Channel.Send.
func countSent(reqs []request) int64 {
	var n int64
	for _, req := range reqs {
		if req.sent {
			n++
		}
	}
	return n
}

// publishBatch is the most publishes a step handles: a burst costs one pass
// over events and one write per batch, and a long one still lets reads and
// requests in between.
const publishBatch = 256

// publishSome handles publishes taken from c.pubs, up to publishBatch and
// while the outgoing bytes are under their bound. The rest wait in
// l.taken for the next steps.
func (l *loop) publishSome() {
	if !l.publishesTaken() {
		l.taken, l.takenAt = l.c.pubs.take(l.taken), 0
	}
	for n := 0; n < publishBatch && l.publishesTaken() && l.outgoing() < l.c.cfg.MaxOutgoing; n++ {
		l.publishTaken()
	}
}

// publishesTaken reports whether publishes taken from c.pubs wait.
func (l *loop) publishesTaken() bool { return l.takenAt < len(l.taken) }

// publishTaken handles the next publish of l.taken.
func (l *loop) publishTaken() {
	req := l.taken[l.takenAt]
	l.taken[l.takenAt] = publishReq{}
	l.takenAt++
	l.publish(req)
}

// afterEach runs after every step: hand events to their receivers, start
// a write if none is in progress, and arm the heartbeat timer. A write the
// loop makes itself can fail and end the connection: the events that
// produces are handed over at once too, not after the next step, which
// might never come (a socket whose peer stopped reading gives the reader
// nothing to report).
func (l *loop) afterEach() {
	for {
		if l.core.Closed() {
			l.markEnded()
		}
		l.dispatch()
		l.flush()
		if !l.core.HasEvents() {
			break
		}
	}
	l.releaseOwed()
	l.armTimer()
	l.publishFrameCounts()
	l.trimming = false
}

// keepBuffer is the largest buffer the loop keeps across a heartbeat tick.
const keepBuffer = maxReadSize

// keepVectors is the most vectors an empty write batch keeps across a
// heartbeat tick: a lent body takes two per body frame.
const keepVectors = 256

// trimBuffers lets go of buffers grown by bulk traffic, so that a
// connection that once moved a burst does not hold its high-water mark
// while idle: the core's outgoing buffers grow to MaxOutgoing under a
// burst of publishes, inbuf to a frame, a write batch's vectors to the
// frames of the large bodies it wrote. It runs at each heartbeat tick,
// which comes at least every half heartbeat interval while the connection
// is open; a busy connection pays a buffer grown again per tick. During
// the tick's step, writeDone keeps no large buffer either: the core's
// current one goes out with the heartbeat.
func (l *loop) trimBuffers() {
	l.coreSpares = slices.DeleteFunc(l.coreSpares, func(b []byte) bool { return cap(b) > keepBuffer })
	if len(l.inbuf) == 0 && cap(l.inbuf) > keepBuffer {
		l.inbuf = nil
	}
	for _, b := range [...]*writeBatch{l.next, l.spare} { // spare is nil while written
		if b != nil && len(b.bufs) == 0 && cap(b.bufs) > keepVectors {
			b.bufs = nil
		}
	}
	l.reqSpare = nil
	l.c.reqs.trim()
	if !l.publishesTaken() {
		l.taken, l.takenAt = nil, 0
		l.c.pubs.trim()
	}
}

// markEnded publishes the end of the connection before the events that
// fail channels and wake their callers: a caller who got the connection's
// end must find it ended (Context, and a Close called after that reports
// the end rather than a clean close).
func (l *loop) markEnded() {
	c := l.c
	if c.ended.Load() {
		return
	}
	c.ended.Store(true)
	cause := l.core.Err()
	if cause == nil {
		cause = sansio.ErrConnectionClosed
	}
	c.cancel(cause)
}

// armTimer makes sure the timer fires by the core's deadline. The deadline
// moves later with almost every frame, and moving a timer wakes the thread
// that sleeps in the network poller: a context switch per step. So the
// timer only ever moves earlier; when it fires before the deadline,
// HandleTimeout finds nothing due and the timer is armed again.
func (l *loop) armTimer() {
	d := l.core.Deadline()
	if d.IsZero() || (!l.armed.IsZero() && !d.Before(l.armed)) {
		return
	}
	l.armed = d
	l.timer.Reset(max(time.Until(d), 0))
}

func (l *loop) receive(p []byte) {
	t := now()
	l.c.stats.reads.Add(1)
	l.c.stats.bytesIn.Add(uint64(len(p)))
	if len(l.inbuf) == 0 {
		n := l.core.Receive(t, p)
		l.inbuf = append(l.inbuf, p[n:]...)
	} else {
		l.inbuf = append(l.inbuf, p...)
		n := l.core.Receive(t, l.inbuf)
		l.inbuf = l.inbuf[:copy(l.inbuf, l.inbuf[n:])]
	}
}

// outgoing returns the bytes queued for the socket and not yet written.
func (l *loop) outgoing() int { return l.core.OutgoingLen() + l.nextBytes + l.inFlight }

// cutCore moves the core's outgoing bytes into the next write, so that what
// is appended after them keeps its place.
func (l *loop) cutCore() {
	if !l.core.HasOutgoing() {
		return
	}
	var spare []byte
	if n := len(l.coreSpares); n > 0 {
		spare, l.coreSpares = l.coreSpares[n-1], l.coreSpares[:n-1]
	}
	b := l.core.TakeOutgoing(now(), spare)
	l.next.bufs = append(l.next.bufs, b)
	l.next.core = append(l.next.core, b)
	l.nextBytes += len(b)
}

// queueFrames adds a large publish's own buffer to the next write.
func (l *loop) queueFrames(frames *[]byte) {
	l.cutCore()
	l.next.bufs = append(l.next.bufs, *frames)
	l.next.pooled = append(l.next.pooled, frames)
	l.nextBytes += len(*frames)
}

// flush writes everything queued, if no write is in progress: itself when
// the socket takes it all at once, else through the writer, which waits
// for the socket.
func (l *loop) flush() {
	if l.writing {
		return
	}
	l.cutCore()
	if len(l.next.bufs) == 0 {
		return
	}
	batch := l.next
	l.next, l.spare = l.spare, nil
	l.writing = true
	l.c.stats.bytesOut.Add(uint64(l.nextBytes))
	l.inFlight, l.nextBytes = l.nextBytes, 0
	l.lend(batch)
	switch {
	case l.vec != nil:
		l.c.stats.writes.Add(1)
		n, err := l.vec.try(batch)
		if batch.written() || err != nil {
			batch.err = err
			l.writeDone(batch)
			return
		}
		l.inFlight -= n
	case l.direct != nil && len(batch.bufs) == 1:
		l.c.stats.writes.Add(1)
		n, err := l.direct.write(batch.bufs[0])
		if n == len(batch.bufs[0]) || err != nil {
			batch.err = err
			l.writeDone(batch)
			return
		}
		batch.bufs[0] = batch.bufs[0][n:]
		l.inFlight -= n
	}
	if !l.writerUp {
		// Started on demand: on a TCP socket an idle connection, or one
		// whose writes the socket always takes at once, never needs it.
		l.writerUp = true
		l.writeCh = make(chan *writeBatch, 1)
		l.wrote = make(chan *writeBatch, 1)
		go l.writer()
	}
	l.writeCh <- batch // never blocks: capacity 1 and at most one write outstanding
}

func (l *loop) writeDone(res *writeBatch) {
	l.writing = false
	l.inFlight = 0
	if len(res.loans) > 0 {
		// Let go of the lent bodies before their publishers return:
		// their callers may count on nothing keeping them alive then.
		// Under lendMu: a publisher giving up meanwhile reads bufs.
		l.c.lendMu.Lock()
		clear(res.bufs[:cap(res.bufs)])
		l.c.lendMu.Unlock()
	}
	l.c.repay(res.loans...)
	for _, p := range res.pooled {
		l.c.putFrames(p)
	}
	for _, b := range res.core {
		if len(l.coreSpares) < 2 && (!l.trimming || cap(b) <= keepBuffer) {
			l.coreSpares = append(l.coreSpares, b[:0])
		}
	}
	// Keep the batch's slices for a later one, emptied: two sets take
	// turns, one being written while the other fills.
	clear(res.bufs[:cap(res.bufs)])
	clear(res.pooled)
	clear(res.core)
	clear(res.loans)
	err := res.err
	*res = writeBatch{bufs: res.bufs[:0], pooled: res.pooled[:0], core: res.core[:0], loans: res.loans[:0]}
	l.spare = res
	if err != nil {
		l.writeFailed(err)
	}
}

// writeErrGrace is how long a write failure during the handshake waits
// for the reader's error, which is normally there at once.
const writeErrGrace = 500 * time.Millisecond

// writeFailed ends the connection with a failed write's error. During the
// handshake it first gives the reader a moment, bounded by a read
// deadline: a peer that refuses the connection says why before it drops
// the socket (a TLS 1.3 alert such as "unknown certificate authority"),
// and our write of the protocol header can fail with "connection reset by
// peer" before the reader has handed that over.
func (l *loop) writeFailed(err error) {
	select {
	case <-l.c.connected:
		l.core.ConnectionLost(err)
		return
	default:
	}
	if l.writeErr != nil {
		return // already waiting for the reader
	}
	l.writeErr = err
	if l.c.nc.SetReadDeadline(now().Add(writeErrGrace)) != nil {
		l.core.ConnectionLost(err)
	}
}

// readLost is the cause of the read failure err: the reader's own error,
// unless it is the deadline writeFailed set, which means the reader had
// nothing better than the failed write.
func (l *loop) readLost(err error) error {
	if l.writeErr != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return l.writeErr
	}
	return err
}

// writer only writes: one batch at a time, as one vectored write, waiting
// for the socket as long as it takes. It gets the batches the loop could
// not write at once itself: those holding large publishes in their own
// buffers, and the rest of a write the socket took only in part.
func (l *loop) writer() {
	defer func() { l.ioDone <- struct{}{} }()
	// bufs outlives the iterations: WriteTo consumes its receiver, which
	// would otherwise escape to the heap on every write.
	var bufs net.Buffers
	for batch := range l.writeCh {
		switch {
		case l.vec != nil:
			batch.err = l.vec.writeAll(batch)
		case len(batch.bufs) == 1:
			_, batch.err = l.c.nc.Write(batch.bufs[0])
		default:
			bufs = batch.bufs
			_, batch.err = bufs.WriteTo(l.c.nc)
			bufs = nil
		}
		l.wrote <- batch // capacity 1: never blocks
	}
}

// shutdown runs once the Conn has ended: it flushes the last frames (a
// close or close-ok) briefly, closes the socket, waits for the I/O
// goroutines, and fails everything still waiting.
func (l *loop) shutdown() {
	l.owner.check()
	c := l.c
	deadline := now().Add(time.Second)
	_ = c.nc.SetWriteDeadline(deadline)
	// A stuck socket ends the writes in progress at the deadline; one whose
	// net.Conn ignores deadlines is closed a little later to end them.
	stuck := time.AfterFunc(time.Until(deadline)+100*time.Millisecond, func() { _ = c.nc.Close() })
	if l.writing {
		l.writeDone(<-l.wrote)
	}
	l.flush()
	if l.writing {
		l.writeDone(<-l.wrote)
	}
	stuck.Stop()
	l.blockedChanged(false, now()) // a blocked period ends with the socket
	for _, p := range l.next.pooled {
		l.c.putFrames(p)
	}
	l.c.repay(l.next.loans...)
	if l.writerUp {
		close(l.writeCh)
	}
	close(l.stop)
	_ = c.nc.Close()
	<-l.ioDone // the reader
	if l.writerUp {
		<-l.ioDone
	}
	l.timer.Stop()

	closeErr := l.cause
	if closeErr == nil {
		closeErr = sansio.ErrConnectionClosed
	}
	for token, w := range l.waiters {
		l.reply(w, Result{Err: closeErr})
		delete(l.waiters, token)
	}
	c.blocking.end()
	c.err = l.cause
	c.cancel(closeErr)
	// The core ended every channel before the connection, so none is left
	// here but by mistake; ending it still keeps Publish from handing
	// anything over once the queued publishes are drained below.
	for _, st := range l.channels {
		l.endChannel(st, sansio.ChannelEnd(closeErr))
	}
	l.drainRequests(closeErr)
	close(c.done)
}

// drainRequests fails requests that were queued but never handled, and
// returns pooled frames.
func (l *loop) drainRequests(err error) {
	reqs := l.c.reqs.close()
	l.c.sends.leave(countSent(reqs))
	for _, req := range reqs {
		if req.reply != nil {
			req.reply <- Result{Err: err}
		}
	}
	pubs := append(l.taken[l.takenAt:], l.c.pubs.close()...)
	l.taken, l.takenAt = nil, 0
	for _, req := range pubs {
		l.c.queued.release(req.weight)
		l.c.putFrames(req.frames)
		l.c.repay(req.loan)
		req.ch.settle(req.out, sansio.ConfirmFailed, err)
	}
}
