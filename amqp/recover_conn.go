package amqp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// recoveryEventBuffer bounds the events kept for a reader of
// RecoveryEvents; beyond it the oldest are dropped.
const recoveryEventBuffer = 64

// QueueName returns the name that a queue declared through this connection
// as name has now: a server-named queue comes back from a recovery under a
// new name, which the bindings and consumers recorded for it follow, but
// which the caller holding the old name cannot know otherwise. Any other
// name is returned as it is.
func (c *Conn) QueueName(name string) string { return c.topo.currentName(name) }

// RecoveryEvents returns a channel of the connection's recovery events:
// each loss, failed attempt, recovery, entity that could not be declared
// again, renamed server-named queue, and the final give-up. Recovery never
// waits for its reader: when the channel's buffer (64) is full, the oldest
// event is dropped. The channel is never closed; select on Conn.Context's
// Done to stop reading.
func (c *Conn) RecoveryEvents() <-chan RecoveryEvent { return c.eventChan() }

// eventChan returns the events' channel, made when first needed: most
// connections never recover nor ask, and its buffer is larger than the
// rest of an idle connection.
func (c *Conn) eventChan() chan RecoveryEvent {
	c.eventsOnce.Do(func() { c.events = make(chan RecoveryEvent, recoveryEventBuffer) })
	return c.events
}

// emit queues ev without ever blocking: a full buffer loses its oldest.
func (c *Conn) emit(ev RecoveryEvent) {
	c.traceRecovery(ev)
	events := c.eventChan()
	for {
		select {
		case events <- ev:
			return
		default:
		}
		select {
		case <-events:
		default:
		}
	}
}

// watch arranges for the end of socket a to be handled: recovered, or the
// end of the connection. No goroutine runs until a ends.
func (c *Conn) watch(a *actor.Conn) {
	c.watchers.Add(1)
	context.AfterFunc(a.Context(), func() {
		defer c.watchers.Done()
		c.lost(a)
	})
}

// lost handles the end of socket a.
func (c *Conn) lost(a *actor.Conn) {
	<-a.Done() // its goroutines have exited and its error is final
	cause := a.Err()
	if cause == nil {
		cause = context.Cause(a.Context())
	}
	c.mu.Lock()
	current, ended := c.a == a, c.err != nil
	c.mu.Unlock()
	if !current || ended || c.isClosing() {
		return
	}
	if c.cfg.Recovery.Disable || !recoverable(cause) {
		c.log.Warn("amqp: connection ended; not recovering", "addr", c.URI().Addr(), "err", cause)
		c.end(cause)
		return
	}
	c.recover(cause)
}

// replacesLostSockets reports whether a recovery follows the loss of the
// current socket: recovery is on and Close was not called. Calls that
// would wait for the recovered socket fail at once otherwise, with the
// connection's end.
func (c *Conn) replacesLostSockets() bool {
	return !c.cfg.Recovery.Disable && !c.isClosing()
}

func (c *Conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// recover replaces the lost socket under the policy, or ends the
// connection when the policy gives up.
func (c *Conn) recover(loss error) {
	gen := c.Generation()
	c.log.Warn("amqp: connection lost; recovering", "addr", c.URI().Addr(), "generation", gen, "err", loss)
	c.emit(RecoveryEvent{Kind: Recovering, Err: loss, Generation: gen})
	policy := &c.cfg.Recovery
	start := time.Now()
	var last error
	for attempt := 0; ; attempt++ {
		if policy.MaxAttempts > 0 && attempt >= policy.MaxAttempts ||
			policy.MaxDuration > 0 && time.Since(start) >= policy.MaxDuration {
			c.giveUp(&RecoveryError{Attempts: attempt, Elapsed: time.Since(start), Loss: loss, Last: last})
			return
		}
		if !c.sleep(policy.delay(attempt), start) {
			return // Close was called
		}
		a, uri, err := c.reconnect(start)
		if err != nil {
			if c.isClosing() {
				return
			}
			last = err
			c.log.Debug("amqp: recovery attempt failed", "attempt", attempt+1, "err", err)
			c.emit(RecoveryEvent{Kind: AttemptFailed, Err: err, Attempt: attempt + 1, Generation: gen})
			continue
		}
		installed, err := c.install(a, uri, start)
		if err != nil {
			last = err
			c.emit(RecoveryEvent{Kind: AttemptFailed, Err: err, Attempt: attempt + 1, Generation: gen})
			continue
		}
		if installed {
			c.log.Info("amqp: connection recovered", "addr", uri.Addr(), "generation", gen+1, "attempts", attempt+1)
			c.emit(RecoveryEvent{Kind: Recovered, Addr: uri.Addr(), Generation: gen + 1, Attempt: attempt + 1})
		}
		return
	}
}

// sleep waits d, cut to what the policy's MaxDuration leaves; false when
// Close was called meanwhile.
func (c *Conn) sleep(d time.Duration, start time.Time) bool {
	if m := c.cfg.Recovery.MaxDuration; m > 0 {
		d = min(d, max(0, m-time.Since(start)))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closing:
		return false
	}
}

func (c *Conn) giveUp(err *RecoveryError) {
	c.log.Warn("amqp: recovery gave up; the connection has ended", "attempts", err.Attempts, "err", err)
	c.emit(RecoveryEvent{Kind: RecoveryFailed, Err: err, Attempt: err.Attempts, Generation: c.Generation()})
	c.end(err)
}

// reconnect dials a broker and restores the topology and the channels on
// it. The socket it returns is not yet the current one.
func (c *Conn) reconnect(start time.Time) (*actor.Conn, URI, error) {
	ctx, cancel := c.attemptContext(start)
	defer cancel()
	cfg := c.cfg
	c.mu.Lock()
	cfg.secret = c.secret
	c.mu.Unlock()
	a, uri, err := dialAny(ctx, c.eps, &cfg)
	if err != nil {
		return nil, URI{}, err
	}
	// A broker that accepted the connection and then went silent would
	// otherwise hold the attempt until the heartbeat noticed.
	rctx, rcancel := context.WithTimeoutCause(ctx, restoreTimeout(&c.cfg, uri),
		fmt.Errorf("amqp: restoring the channels and topology on %s took too long: %w", uri.Addr(), context.DeadlineExceeded))
	defer rcancel()
	if err := c.restore(rctx, a, start); err != nil {
		c.abandon(a)
		if rctx.Err() != nil && ctx.Err() == nil {
			err = context.Cause(rctx)
		}
		return nil, URI{}, err
	}
	return a, uri, nil
}

// restoreTimeout bounds the restore of one attempt as the connection
// timeout bounds its dial and handshake.
func restoreTimeout(cfg *Config, uri URI) time.Duration {
	return cmp.Or(cfg.ConnectionTimeout, uri.ConnectionTimeout, DefaultConnectionTimeout)
}

// abandon closes a socket that a recovery attempt will not use. Close
// cuts it at once rather than waiting for a broker that may be silent.
func (c *Conn) abandon(a *actor.Conn) {
	_ = a.Close(cutNow)
}

// cutNow is a context already done: a Close given it cuts the socket at
// once, without the close handshake.
var cutNow = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// attemptContext bounds an attempt by Close and by the policy's
// MaxDuration.
func (c *Conn) attemptContext(start time.Time) (context.Context, context.CancelFunc) {
	if m := c.cfg.Recovery.MaxDuration; m > 0 {
		return context.WithDeadline(c.closeCtx, start.Add(m))
	}
	return context.WithCancel(c.closeCtx)
}

// restore declares the recorded topology on a, then reopens every channel
// on it with its consumers. Only a failure of the socket itself fails it;
// an entity that cannot be declared is reported and skipped. start is when
// the recovery began.
func (c *Conn) restore(ctx context.Context, a *actor.Conn, start time.Time) error {
	if err := c.restoreTopology(ctx, a, start); err != nil {
		return err
	}
	for {
		pending := c.channelsNotOn(a)
		if len(pending) == 0 {
			return nil
		}
		for _, ch := range pending {
			if err := ch.restore(ctx, a); err != nil {
				return err
			}
		}
	}
}

// channelsNotOn lists the open channels whose current channel is not on a.
func (c *Conn) channelsNotOn(a *actor.Conn) []*Channel {
	var out []*Channel
	for _, ch := range c.openChannels() {
		if !ch.on(a) {
			out = append(out, ch)
		}
	}
	return out
}

// install makes a the current socket, unless Close was called (false,
// nil) or a, while restoring a channel opened meanwhile, failed (false,
// its error).
func (c *Conn) install(a *actor.Conn, uri URI, start time.Time) (bool, error) {
	for {
		c.mu.Lock()
		if c.err != nil || c.isClosing() {
			c.mu.Unlock()
			c.abandon(a)
			return false, nil
		}
		if c.allChannelsOn(a) {
			c.retire(c.a)
			c.a, c.uri = a, uri
			c.gen++
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			c.watch(a)
			return true, nil
		}
		c.mu.Unlock()
		ctx, cancel := c.attemptContext(start)
		err := c.restore(ctx, a, start)
		cancel()
		if err != nil {
			c.abandon(a)
			return false, err
		}
	}
}

func (c *Conn) allChannelsOn(a *actor.Conn) bool {
	for ch := range c.channels {
		if !ch.on(a) {
			return false
		}
	}
	return true
}

// restoreTopology declares the recorded exchanges, queues and bindings
// again, on a channel of its own.
func (c *Conn) restoreTopology(ctx context.Context, a *actor.Conn, start time.Time) error {
	r := &redeclarer{c: c, a: a, start: start}
	defer r.close(ctx)
	exchanges, queues, _ := c.topo.snapshot()
	for i := range exchanges {
		m := &exchanges[i]
		r.declare(ctx, TopologyEntity{Kind: EntityExchange, Name: m.Exchange}, m, nil)
	}
	for i := range queues {
		q := &queues[i]
		r.declare(ctx, TopologyEntity{Kind: EntityQueue, Name: q.decl.Queue, ServerNamed: q.serverNamed}, q.redeclaration(), func(reply sansio.Method) {
			c.queueRedeclared(q, reply)
		})
	}
	_, _, bindings := c.topo.snapshot() // after the renames
	for _, b := range bindings {
		r.declare(ctx, b.entity(), b.method(), nil)
	}
	return r.err
}

// queueRedeclared makes the record, the bindings and the consumers follow a
// server-named queue that came back under a new name.
func (c *Conn) queueRedeclared(q *recordedQueue, reply sansio.Method) {
	ok, isOk := reply.(*sansio.QueueDeclareOk)
	if !isOk || !q.serverNamed || ok.Queue == q.decl.Queue {
		return
	}
	c.topo.renameQueue(q.decl.Queue, ok.Queue)
	for _, ch := range c.openChannels() {
		ch.renameQueue(q.decl.Queue, ok.Queue)
	}
	c.log.Debug("amqp: server-named queue renamed by recovery", "old", q.decl.Queue, "new", ok.Queue)
	c.emit(RecoveryEvent{Kind: QueueRenamed, OldName: q.decl.Queue, NewName: ok.Queue, Generation: c.Generation()})
}

// redeclarer sends recorded declarations on a channel of its own, opening
// another when the broker closes one over an entity it refuses.
type redeclarer struct {
	c   *Conn
	a   *actor.Conn
	ch  *actor.Channel
	err error // the socket failed: stop
	// start is when the recovery began: the wait for a queue the lost
	// socket holds counts from it, over every attempt (see awaitUnlocked).
	start time.Time
}

func (r *redeclarer) declare(ctx context.Context, e TopologyEntity, m sansio.Method, then func(sansio.Method)) {
	if r.err != nil || (r.c.cfg.Recovery.Filter != nil && !r.c.cfg.Recovery.Filter(e)) {
		return
	}
	res := r.call(ctx, m)
	if lockedByTheLostSocket(m, res.Err) {
		res = r.awaitUnlocked(ctx, m, res)
	}
	switch {
	case r.err != nil:
	case res.Err == nil:
		if then != nil {
			then(res.Method)
		}
	case connectionLevel(res.Err) || ctx.Err() != nil:
		r.err = res.Err
	default:
		r.c.log.Warn("amqp: recovery could not declare an entity again", "entity", e.String(), "err", res.Err)
		r.c.emit(RecoveryEvent{Kind: TopologyFailed, Entity: e, Err: res.Err, Generation: r.c.Generation()})
	}
}

// call sends m on the redeclarer's channel, opening one first when the
// broker closed the last over an entity it refused.
func (r *redeclarer) call(ctx context.Context, m sansio.Method) actor.Result {
	if r.ch == nil || r.ch.Err() != nil {
		ch, err := r.a.OpenChannel(ctx)
		if err != nil {
			r.err = err
			return actor.Result{Err: err}
		}
		r.ch = ch
	}
	return r.ch.Call(ctx, m)
}

// lockedByTheLostSocket reports whether err refuses a named exclusive
// queue because another connection holds it: after a link that failed
// silently (a partition, a blackhole), the broker keeps the lost
// connection, and the queue, until it misses that connection's
// heartbeats.
func lockedByTheLostSocket(m sansio.Method, err error) bool {
	q, ok := m.(*sansio.QueueDeclare)
	return ok && q.Exclusive && q.Queue != "" && errors.Is(err, ErrResourceLocked)
}

// Waits between declarations of a queue the lost socket still holds.
const (
	lockedFirstWait = 100 * time.Millisecond
	lockedMaxWait   = time.Second
)

// awaitUnlocked declares the queue of the refusal res again until the
// broker lets the lost connection go: until two of the new socket's
// heartbeat intervals (the broker's own timeout for the lost one, whose
// heartbeat was the same) and a margin have passed since the recovery
// began. The wait counts from there, not from this attempt: an attempt
// has less time to restore than that (the connection timeout), and a
// queue another connection holds for good would otherwise fail every
// attempt. It takes at most half of Recovery.MaxDuration, leaving the
// rest of the recovery the other half.
func (r *redeclarer) awaitUnlocked(ctx context.Context, m sansio.Method, res actor.Result) actor.Result {
	deadline := r.start.Add(2*r.a.Tuning().Heartbeat + 5*time.Second)
	if limit := r.c.cfg.Recovery.MaxDuration; limit > 0 && r.start.Add(limit/2).Before(deadline) {
		deadline = r.start.Add(limit / 2)
	}
	for wait := lockedFirstWait; lockedByTheLostSocket(m, res.Err) && time.Now().Before(deadline); wait = min(2*wait, lockedMaxWait) {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return actor.Result{Err: context.Cause(ctx)}
		}
		res = r.call(ctx, m)
	}
	return res
}

// redeclaration is the queue.declare that brings q back: a server-named
// queue asks for a new name.
func (q *recordedQueue) redeclaration() *sansio.QueueDeclare {
	m := q.decl
	if q.serverNamed {
		m.Queue = ""
	}
	return &m
}

func (r *redeclarer) close(ctx context.Context) {
	if r.ch != nil && r.ch.Err() == nil {
		_ = r.ch.Close(ctx)
	}
}

func (b recordedBinding) method() sansio.Method {
	if b.exchange {
		return &sansio.ExchangeBind{Destination: b.destination, Source: b.source, RoutingKey: b.key, Arguments: b.args}
	}
	return &sansio.QueueBind{Queue: b.destination, Exchange: b.source, RoutingKey: b.key, Arguments: b.args}
}
