package actor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/amqproto/amqproto/internal/sansio"
)

// Channel is an open AMQP channel. Its methods are safe for concurrent use.
type Channel struct {
	conn *Conn
	id   uint16

	ctx    context.Context // cancelled with the cause when the channel ends
	cancel context.CancelCauseFunc

	confirm     atomic.Bool  // confirm.select was sent
	unconfirmed atomic.Int64 // numbered publishes not yet settled; written by the loop
	// lastTag is the highest delivery tag the broker used on the channel
	// (basic.deliver and basic.get-ok); written by the loop.
	lastTag atomic.Uint64
	// flow is shut while the broker pauses publishing with channel.flow.
	flow gate

	// Outcomes and Returns receive the channel's publish outcomes and
	// returned messages once enabled with the matching Enable method; the
	// loop pushes to them and closes them when the channel ends.
	Outcomes   *Mailbox[*Outcome]
	Returns    *Mailbox[sansio.Message]
	outcomesOn atomic.Bool
	returnsOn  atomic.Bool

	// pubMu settles a publish racing the channel's end. A publisher hands
	// a publish to the loop holding the read lock, after checking
	// pubsClosed; the ending loop sets pubsClosed under the write lock
	// (see loop.stopPublishes). Every publish accepted is then in c.pubs
	// or l.taken, where the loop fails it before it closes Outcomes.
	pubMu      sync.RWMutex
	pubsClosed bool
}

func newChannel(c *Conn, id uint16) *Channel {
	ch := &Channel{conn: c, id: id, Outcomes: NewMailbox[*Outcome](), Returns: NewMailbox[sansio.Message]()}
	ch.ctx, ch.cancel = context.WithCancelCause(c.ctx)
	return ch
}

// LastDeliveryTag returns the highest delivery tag the broker has used on
// the channel so far: final once the connection has ended.
func (ch *Channel) LastDeliveryTag() uint64 { return ch.lastTag.Load() }

// noteTag records a delivery tag the broker used; called by the loop.
func (ch *Channel) noteTag(tag uint64) {
	if tag > ch.lastTag.Load() {
		ch.lastTag.Store(tag)
	}
}

// ID returns the channel number.
func (ch *Channel) ID() uint16 { return ch.id }

// Conn returns the connection the channel belongs to.
func (ch *Channel) Conn() *Conn { return ch.conn }

// Context is cancelled, with the reason as its cause, when the channel ends.
func (ch *Channel) Context() context.Context { return ch.ctx }

// Err returns why the channel ended, or nil while it is open. An end of
// its connection matches ErrChannelClosed too (see sansio.ChannelEnd).
func (ch *Channel) Err() error {
	if ch.ctx.Err() == nil {
		return nil
	}
	return sansio.ChannelEnd(context.Cause(ch.ctx))
}

// call is Conn.call for a request on the channel: an error that ended the
// connection, and so the channel, matches ErrChannelClosed too.
func (ch *Channel) call(ctx context.Context, req request) Result {
	r := ch.conn.call(ctx, req)
	r.Err = sansio.ChannelEnd(r.Err)
	return r
}

// errOrClosed returns why the channel ended, or ErrChannelClosed.
func (ch *Channel) errOrClosed() error {
	if err := ch.Err(); err != nil {
		return err
	}
	return sansio.ErrChannelClosed
}

func errDuplicateTag(tag string) error {
	return fmt.Errorf("amqp: consumer tag %q is already in use on this channel", tag)
}

// InConfirmMode reports whether confirm.select was sent on the channel.
func (ch *Channel) InConfirmMode() bool { return ch.confirm.Load() }

// EnableOutcomes makes the loop push every later publish's settled handle
// to Outcomes.
func (ch *Channel) EnableOutcomes() { ch.outcomesOn.Store(true) }

// EnableReturns makes the loop push every later returned message to
// Returns.
func (ch *Channel) EnableReturns() { ch.returnsOn.Store(true) }

// Call sends a method and, when it expects a reply, waits for it. A ctx
// already done sends nothing and returns its error.
func (ch *Channel) Call(ctx context.Context, m sansio.Method) Result {
	if ctx.Err() != nil {
		return Result{Err: context.Cause(ctx)}
	}
	if err := ch.Err(); err != nil {
		return Result{Err: err}
	}
	return ch.call(ctx, request{kind: reqCall, ch: ch, m: m})
}

// Close closes the channel and waits for the broker's close-ok. A ctx
// already done sends nothing and returns its error.
func (ch *Channel) Close(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if ch.Err() != nil {
		return nil
	}
	r := ch.call(ctx, request{kind: reqCloseChannel, ch: ch})
	if r.Err != nil && errors.Is(r.Err, sansio.ErrChannelClosed) {
		return nil // closed meanwhile, which is what the caller asked for
	}
	return r.Err
}

// Send queues an asynchronous method (basic.ack, nack, reject) without
// waiting for the broker. It waits only while the loop has not taken
// maxSendsQueued earlier ones, which a caller sending in a tight loop can
// reach. A ctx already done sends nothing and returns its error; once Send
// returned nil, the method goes out unless the channel ends first. Unlike
// the methods of Call, it may go out before publishes handed over earlier
// (see afterPublishes).
func (ch *Channel) Send(ctx context.Context, m sansio.Method) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err := ch.Err(); err != nil {
		return err
	}
	c := ch.conn
	if !c.sends.enter(ctx, ch.ctx.Done()) {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return ch.errOrClosed()
	}
	if !c.reqs.push(request{kind: reqCall, sent: true, ch: ch, m: m}) {
		c.sends.leave(1)
		return ch.errOrClosed()
	}
	return nil
}

// Outcome is the outcome of one publish in confirm mode. Its fields are
// valid once it is settled (Settled, or Done closed).
type Outcome struct {
	// seq is the publish's sequence number on its channel, stored by the
	// loop when the core numbers the publish; 0 until then.
	seq     atomic.Uint64
	Confirm sansio.Confirm
	// Return is the message the broker returned (mandatory publish that no
	// queue took), nil otherwise. The confirm of a returned message is
	// still an ack: the broker handled it.
	Return *sansio.Message
	Err    error // why Confirm is ConfirmFailed
	// Owner is the caller's wrapper, handed back with Outcomes.
	Owner any
	// Keep, when set, is asked before the publish is settled as failed
	// (its channel or connection ended first): true takes the publish back
	// unsettled, for its owner to publish again, with Rearm, on another
	// channel. It runs on the loop's goroutine and must not block.
	Keep func(o *Outcome, err error) bool

	settled atomic.Bool // set after the fields above
	// Waking whoever waits for the outcome. Most publishes are settled
	// long before anyone looks, and a channel per publish would double
	// what publishing allocates: done is made only when Done is called
	// before the outcome is known, and a Wait borrows a pooled channel.
	mu     sync.Mutex
	done   chan struct{}
	waiter chan struct{} // capacity 1; settle sends one value
}

// closedDone is closed from the start: the Done of every publish settled
// before anyone asked, and a case that select takes at once.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// waiters holds empty capacity-1 channels for Wait.
var waiters = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// Seq returns the publish's sequence number on its channel (its delivery
// tag in the broker's confirms) once the loop has numbered it, and 0
// before that or when it failed unnumbered. It never waits.
func (p *Outcome) Seq() uint64 { return p.seq.Load() }

// Settled reports whether the outcome is known.
func (p *Outcome) Settled() bool { return p.settled.Load() }

// Done is closed when the outcome is known. Asked after that, it returns a
// channel shared by all settled publishes, already closed.
func (p *Outcome) Done() <-chan struct{} {
	if p.settled.Load() {
		return closedDone
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.doneLocked()
}

func (p *Outcome) doneLocked() chan struct{} {
	if p.settled.Load() {
		return closedDone
	}
	if p.done == nil {
		p.done = make(chan struct{})
	}
	return p.done
}

// Wait waits until the outcome is known or ctx ends, and reports whether
// the outcome is known.
func (p *Outcome) Wait(ctx context.Context) bool {
	if p.settled.Load() {
		return true
	}
	p.mu.Lock()
	if p.settled.Load() {
		p.mu.Unlock()
		return true
	}
	if p.waiter != nil { // someone else is waiting too: share Done
		done := p.doneLocked()
		p.mu.Unlock()
		select {
		case <-done:
			return true
		case <-ctx.Done():
			return false
		}
	}
	w := waiters.Get().(chan struct{})
	p.waiter = w
	p.mu.Unlock()
	select {
	case <-w:
		waiters.Put(w)
		return true
	case <-ctx.Done():
		p.mu.Lock()
		mine := p.waiter == w
		if mine {
			p.waiter = nil
		}
		p.mu.Unlock()
		if !mine {
			<-w // settle took the waiter and has sent: drain before reuse
		}
		waiters.Put(w)
		return !mine
	}
}

// settle settles p (nil for a publish nobody waits on) and hands it to the
// channel's Outcomes when they are on: Confirmations must see every
// outcome, also the failures the loop decides itself.
func (ch *Channel) settle(p *Outcome, outcome sansio.Confirm, err error) {
	if p == nil {
		return
	}
	if outcome == sansio.ConfirmFailed && p.Keep != nil && p.Keep(p, err) {
		return // taken back, to be published again
	}
	p.settle(outcome, err)
	if obs := ch.conn.cfg.Observer; obs != nil {
		obs.Settled(p)
	}
	if ch.outcomesOn.Load() {
		ch.Outcomes.push(p) // the loop's push: it may hand p over directly
	}
}

// Rearm readies a publish that Keep took back for another Publish.
func (p *Outcome) Rearm() {
	p.seq.Store(0)
	p.Confirm, p.Return, p.Err = 0, nil, nil
}

// Fail settles a publish that Keep took back and that will not be
// published again.
func (p *Outcome) Fail(err error) {
	p.settle(sansio.ConfirmFailed, err)
}

func (p *Outcome) settle(outcome sansio.Confirm, err error) {
	p.Confirm, p.Err = outcome, err
	p.mu.Lock()
	p.settled.Store(true)
	if p.done != nil {
		close(p.done)
	}
	if p.waiter != nil {
		p.waiter <- struct{}{} // never blocks: capacity 1 and empty
		p.waiter = nil
	}
	p.mu.Unlock()
}

// Publish encodes the message in the caller's goroutine and hands it to the
// loop, waiting (with ctx) while the broker blocks the connection, pauses
// the channel with channel.flow, or the outgoing bytes exceed their bound.
// When it returns nil the message was handed to the connection; a later
// failure reaches pub (when the channel is in confirm mode). When it returns
// an error, the message was not sent; a ctx already done sends nothing.
//
// Publish returns once the connection no longer refers to body: the caller
// may then reuse it. A body of lendMin bytes or more, on a socket that
// allows it, is written from where it is rather than copied, and Publish
// waits for that write; when ctx ends first, it copies what is left to
// write and returns nil: the message is still sent whole.
func (ch *Channel) Publish(ctx context.Context, m *sansio.BasicPublish, props *sansio.Properties, body []byte, pub *Outcome) error {
	return ch.publish(ctx, m, props, body, pub, false)
}

// PublishKept is Publish for a body that nobody changes, ever: a copy the
// caller keeps for a later publish (Recovery.RepublishUnconfirmed). A
// large one is lent as Publish would lend it, but PublishKept does not
// wait for it to be written.
func (ch *Channel) PublishKept(ctx context.Context, m *sansio.BasicPublish, props *sansio.Properties, body []byte, pub *Outcome) error {
	return ch.publish(ctx, m, props, body, pub, true)
}

func (ch *Channel) publish(ctx context.Context, m *sansio.BasicPublish, props *sansio.Properties, body []byte, pub *Outcome, kept bool) error {
	c := ch.conn
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err := ch.Err(); err != nil {
		return err
	}
	// ch.ctx ends with the channel and with the connection.
	if err := c.blocked.wait(ctx, ch.ctx.Done(), ch.Err); err != nil {
		return err
	}
	if err := ch.flow.wait(ctx, ch.ctx.Done(), ch.Err); err != nil {
		return err
	}
	frames, ln, err := c.encodePublish(ch.id, m, props, body)
	if err != nil {
		return err
	}
	// The weight is the memory held, not the bytes to send: the budget is
	// the only bound on how many publishes wait for the loop. A lent body
	// counts, as it would copied: it is memory the connection refers to.
	weight := int64(min(cap(*frames)+lentSize(ln), c.cfg.MaxOutgoing))
	if err := c.queued.acquire(ctx, ch.ctx.Done(), weight); err != nil {
		c.dropEncoded(frames, ln)
		if errors.Is(err, errBudgetEnd) {
			return ch.Err()
		}
		return context.Cause(ctx)
	}
	req := publishReq{ch: ch, frames: frames, out: pub, m: *m, weight: weight, loan: ln}
	if err := c.handOver(ctx, ch, req); err != nil {
		c.queued.release(weight)
		c.dropEncoded(frames, ln)
		return err
	}
	if ln != nil && !kept {
		c.awaitLoan(ctx, ln)
	}
	// A kept body's loan is never pooled: its repay lands in its own
	// buffered channel, which nobody reads, and the collector takes both.
	return nil
}

// encodePublish encodes a publish into a pooled buffer: all its frames,
// or, for a body to lend, all but the body's own bytes.
func (c *Conn) encodePublish(id uint16, m *sansio.BasicPublish, props *sansio.Properties, body []byte) (*[]byte, *loan, error) {
	frameMax := c.tuning.FrameMax
	if !c.lends || len(body) < lendMin {
		frames := c.getFrames(publishSize(m, props, body, frameMax))
		out, err := sansio.AppendPublish(*frames, id, m, props, body, frameMax)
		if err != nil {
			c.putFrames(frames)
			return nil, nil, err
		}
		*frames = out
		return frames, nil, nil
	}
	frames := c.getFrames(publishSize(m, props, body, frameMax) - len(body))
	out, head, err := sansio.AppendPublishFraming(*frames, id, m, props, len(body), frameMax)
	if err != nil {
		c.putFrames(frames)
		return nil, nil, err
	}
	*frames = out
	return frames, newLoan(body, head, frameMax), nil
}

// dropEncoded gives back what encodePublish made, for a publish that was
// not handed over.
func (c *Conn) dropEncoded(frames *[]byte, ln *loan) {
	c.putFrames(frames)
	if ln != nil {
		putLoan(ln)
	}
}

func lentSize(ln *loan) int {
	if ln == nil {
		return 0
	}
	return len(ln.body)
}

// handOver gives a publish to the loop, unless the channel has ended.
func (c *Conn) handOver(ctx context.Context, ch *Channel, req publishReq) error {
	ch.pubMu.RLock()
	defer ch.pubMu.RUnlock()
	if ch.pubsClosed {
		return ch.errOrClosed()
	}
	if err := ch.Err(); err != nil {
		return err // the loop would only fail it
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if !c.pubs.push(req) {
		return ch.errOrClosed()
	}
	return nil
}

// Consumer is a consumer registered on a channel. The loop pushes its
// deliveries to Deliveries and closes it with the reason when it ends:
// ErrConsumerCancelled, ErrCancelledByBroker, ErrConsumerOverflow, or the
// channel's or connection's error.
type Consumer struct {
	Tag        string
	NoAck      bool
	Deliveries *Mailbox[sansio.Message]
	ch         *Channel
	received   atomic.Uint64 // written by the loop

	// Owned by the loop.
	overflowed bool
	abandoned  bool // its Consume call gave up: deliveries go back to the queue
	prefetch   int  // the channel's prefetch count when it started
}

// Channel returns the channel the consumer belongs to.
func (cons *Consumer) Channel() *Channel { return cons.ch }

// Consume starts a consumer with m (whose ConsumerTag must be set; see
// NewConsumerTag) and returns once the broker confirmed it. A ctx already
// done sends nothing and returns its error.
func (ch *Channel) Consume(ctx context.Context, m *sansio.BasicConsume) (*Consumer, error) {
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if err := ch.Err(); err != nil {
		return nil, err
	}
	cons := &Consumer{Tag: m.ConsumerTag, NoAck: m.NoAck, Deliveries: NewMailbox[sansio.Message](), ch: ch}
	r := ch.call(ctx, request{kind: reqConsume, ch: ch, m: m, cons: cons})
	if r.Err != nil {
		return nil, r.Err
	}
	return cons, nil
}

// Cancel cancels the consumer and waits for the broker's cancel-ok. The
// deliveries already received stay in Deliveries. A ctx already done sends
// nothing and returns its error.
func (cons *Consumer) Cancel(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	ch := cons.ch
	if ch.Err() != nil {
		return nil
	}
	r := ch.call(ctx, request{kind: reqCancelConsumer, ch: ch, cons: cons,
		m: &sansio.BasicCancel{ConsumerTag: cons.Tag}})
	if r.Err != nil && errors.Is(r.Err, sansio.ErrChannelClosed) {
		return nil
	}
	return r.Err
}
