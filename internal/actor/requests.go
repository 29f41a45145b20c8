package actor

import (
	"errors"

	"github.com/amqproto/amqproto/internal/sansio"
)

// handle starts what a caller asked for.
func (l *loop) handle(req request) {
	l.owner.check()
	switch req.kind {
	case reqCall:
		l.call(req)
	case reqOpenChannel:
		l.openChannel(req)
	case reqCloseChannel:
		l.closeChannel(req)
	case reqConsume:
		l.consume(req)
	case reqCancelConsumer:
		l.cancel(req)
	case reqCloseConn:
		l.closeConn()
	case reqAbandon:
		l.abandon(req)
	case reqUpdateSecret:
		l.start(req, 0, req.m)
	}
}

// channelOf returns the loop's state of req's channel, or fails req when
// the channel has ended.
func (l *loop) channelOf(req request) (*loopChannel, bool) {
	st := l.channels[req.ch.id]
	if st == nil || st.ch != req.ch {
		l.reply(&waiter{req: req}, Result{Err: req.ch.errOrClosed()})
		return nil, false
	}
	return st, true
}

// call sends req's method on its channel.
func (l *loop) call(req request) {
	if _, ok := l.channelOf(req); ok {
		l.start(req, req.ch.id, req.m)
	}
}

func (l *loop) openChannel(req request) {
	id, err := l.core.OpenChannel(req.token)
	if err != nil {
		req.reply <- Result{Err: err}
		return
	}
	l.channels[id] = &loopChannel{ch: newChannel(l.c, id), consumers: make(map[string]*Consumer)}
	l.waiters[req.token] = &waiter{req: req}
}

func (l *loop) closeChannel(req request) {
	l.publishesFirst()
	if _, ok := l.channelOf(req); !ok {
		return
	}
	if err := l.core.CloseChannel(req.ch.id, req.token); err != nil {
		l.reply(&waiter{req: req}, Result{Err: err})
		return
	}
	l.waiters[req.token] = &waiter{req: req}
}

func (l *loop) consume(req request) {
	st, ok := l.channelOf(req)
	if !ok {
		return
	}
	if _, dup := st.consumers[req.cons.Tag]; dup {
		l.reply(&waiter{req: req}, Result{Err: errDuplicateTag(req.cons.Tag)})
		return
	}
	// Registered before the broker answers: deliveries may follow
	// consume-ok in the same read. A later basic.qos does not change the
	// prefetch of a consumer already started.
	req.cons.prefetch = int(st.prefetch)
	st.consumers[req.cons.Tag] = req.cons
	l.start(req, req.ch.id, req.m)
}

func (l *loop) cancel(req request) {
	st, ok := l.channelOf(req)
	if !ok {
		return
	}
	if st.consumers[req.cons.Tag] != req.cons {
		// It ended already (cancelled, overflowed, or by the broker): a
		// basic.cancel now would name whichever consumer took the tag
		// since.
		l.reply(&waiter{req: req}, Result{})
		return
	}
	l.start(req, req.ch.id, req.m)
}

func (l *loop) closeConn() {
	l.publishesFirst()
	l.core.Close(sansio.ReplySuccess, "closed by the client")
}

// start sends req's method; a reply, if one is expected, is matched by the
// request's token. The method goes out after the publishes handed over
// before it, unless it is an acknowledgement (see afterPublishes).
func (l *loop) start(req request, id uint16, m sansio.Method) {
	if afterPublishes(m) {
		l.publishesFirst()
	}
	if err := l.core.Call(id, req.token, m); err != nil {
		l.failRequest(&waiter{req: req}, err)
		return
	}
	if !sansio.ExpectsReply(m) {
		if _, ok := m.(*sansio.ConfirmSelect); ok {
			req.ch.confirm.Store(true) // no-wait: in confirm mode from now on
		}
		l.reply(&waiter{req: req}, Result{})
		return
	}
	l.waiters[req.token] = &waiter{req: req}
}

func (l *loop) publish(req publishReq) {
	l.owner.check()
	// The budget is held until the loop takes the publish; past
	// MaxOutgoing (see publishesFirst), until the outgoing bytes are under
	// it again (see releaseOwed): else each request that must follow
	// held-back publishes would let publishers queue MaxOutgoing more
	// while the socket takes nothing.
	if l.outgoing() < l.c.cfg.MaxOutgoing {
		l.c.queued.release(req.weight)
	} else {
		l.owed += req.weight
	}
	if st := l.channels[req.ch.id]; st == nil || st.ch != req.ch {
		// Its channel ended after Publish handed it over; the number may
		// already belong to a new channel, which must not send it.
		l.c.putFrames(req.frames)
		l.c.repay(req.loan)
		req.ch.settle(req.out, sansio.ConfirmFailed, req.ch.errOrClosed())
		return
	}
	if req.loan != nil && l.core.PublishWaits(req.ch.id) {
		l.unlend(&req)
	}
	frames := *req.frames
	var ref any // a nil *Outcome is not a nil ref
	if req.out != nil {
		ref = req.out
	}
	seq, borrowed, err := l.core.Publish(req.ch.id, &req.m, frames, ref, req.loan != nil || len(frames) >= zeroCopyMin)
	switch {
	case borrowed && req.loan != nil:
		l.queueLoan(req) // repaid once written
	case borrowed:
		l.queueFrames(req.frames) // returned to the pool once written
	default: // copied, or refused
		l.c.putFrames(req.frames)
		l.c.repay(req.loan)
	}
	if err != nil {
		req.ch.settle(req.out, sansio.ConfirmFailed, err)
		return
	}
	l.c.stats.published.Add(1)
	if seq == 0 {
		// Not in confirm mode: the outcome is only that it was written.
		req.ch.settle(req.out, sansio.ConfirmAck, nil)
		return
	}
	req.ch.unconfirmed.Add(1)
	if req.out != nil {
		req.out.seq.Store(seq) // the core hands req.out back with its confirm
	}
}

// releaseOwed releases the budget of the publishes taken past MaxOutgoing
// once the outgoing bytes are under it.
func (l *loop) releaseOwed() {
	if l.owed > 0 && l.outgoing() < l.c.cfg.MaxOutgoing {
		l.c.queued.release(l.owed)
		l.owed = 0
	}
}

// publishesFirst handles the publishes already handed over, so that a
// close or a method asked for after Publish returned goes out after it: a
// close does not discard it, a tx.commit covers it. c.pubs and
// c.reqs are separate inboxes, and the loop holds publishes back while the
// outgoing bytes are over their bound, so without this the later request
// could overtake. The frames are already encoded and in memory, so
// MaxOutgoing is not checked.
func (l *loop) publishesFirst() {
	l.publishAllTaken()
	l.taken, l.takenAt = l.c.pubs.take(l.taken), 0
	l.publishAllTaken()
}

// afterPublishes reports whether m must go out after the publishes handed
// over before it: every method a caller asks for (a declaration, a
// basic.cancel, no-wait or not) acts on what was published before it on
// the channel, except the acknowledgements of deliveries, which Send
// queues one per delivery: draining the publishes held back for each
// would undo MaxOutgoing while the socket is full.
func afterPublishes(m sansio.Method) bool {
	switch m.(type) {
	case *sansio.BasicAck, *sansio.BasicNack, *sansio.BasicReject:
		return false
	}
	return true
}

func (l *loop) publishAllTaken() {
	for l.publishesTaken() {
		l.publishTaken()
	}
}

// abandon handles a caller that stopped waiting for the request with the
// same token, which came before on the same channel, so it was handled
// already. A request still queued in the core is withdrawn; the reply to
// one on the wire will be dropped when it comes. The caller learns which:
// errAbandoned, or nil when the reply was sent already and waits in its
// channel. A withdrawn request that was held behind an unanswered one is
// told which, as a *HeldError.
func (l *loop) abandon(req request) {
	w, ok := l.waiters[req.token]
	if !ok {
		req.reply <- Result{} // answered already
		return
	}
	if req.ch != nil && l.core.CancelRequest(req.ch.id, req.token) {
		delete(l.waiters, req.token)
		if w.req.kind == reqConsume {
			delete(l.channels[req.ch.id].consumers, w.req.cons.Tag)
		}
		if behind, held := l.core.Awaiting(req.ch.id); held {
			req.reply <- Result{Err: &HeldError{Behind: behind.String()}}
			return
		}
	} else {
		w.abandoned = true
	}
	req.reply <- Result{Err: errAbandoned}
}

var errAbandoned = errors.New("abandoned")

// HeldError is the error of a synchronous call whose context ended while
// it waited for its turn behind an earlier call on the same channel, one
// on the wire that the broker had not answered: the protocol allows one
// at a time per channel. Nothing of the held call was sent. Behind names
// the unanswered method, such as "tx.select"; while the broker does not
// answer it, every later synchronous call on the channel waits the same
// way. Err is the context's error, which Unwrap returns.
type HeldError struct {
	Behind string // the unanswered method, as the specification names it
	Err    error  // the held call's context's error
}

// Error names the unanswered method and the context's error.
func (e *HeldError) Error() string {
	return "amqp: gave up waiting behind " + e.Behind + ", sent earlier on this channel and not yet answered by the broker: " + e.Err.Error()
}

// Unwrap returns Err.
func (e *HeldError) Unwrap() error { return e.Err }

func (l *loop) reply(w *waiter, r Result) {
	if w.req.reply != nil && !w.abandoned {
		w.req.reply <- r // capacity 1, one reply per request: never blocks
	}
}

func (l *loop) failRequest(w *waiter, err error) {
	if w.req.kind == reqConsume {
		if st := l.channels[w.req.ch.id]; st != nil {
			delete(st.consumers, w.req.cons.Tag)
		}
		w.req.cons.Deliveries.Close(err)
	}
	l.reply(w, Result{Err: err})
}
