package amqp

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// Channel is an AMQP channel: the unit that declares, publishes and
// consumes. Its methods are safe for concurrent use; synchronous operations
// from several goroutines are queued and sent one at a time, as the protocol
// requires. A channel error (such as 404 NOT_FOUND from a passive declare)
// ends the channel only; open a new one to go on.
//
// A Channel outlives a recovery of its connection: it is reopened on the
// new socket with its Qos, confirm and transaction modes, and its
// consumers. Calls made during the recovery wait for it, within their
// contexts.
type Channel struct {
	conn   *Conn
	ctx    context.Context // ends when the channel ends for good
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	gen       *chanGen      // the channel on the current socket
	changed   chan struct{} // closed and replaced when gen or err changes
	err       error         // why the channel ended for good
	closing   bool          // Close was called
	set       settings
	txLost    bool // recovered in transaction mode: the next commit fails
	consumers []*Consumer
	carried   []*Confirmation // publishes to publish again (Recovery.RepublishUnconfirmed)
	// lastQueue is the queue last declared on the channel, which the
	// broker takes an empty queue name for; "" when unknown.
	lastQueue string

	confirmOnce sync.Once
	confirms    chan *Confirmation
	returnsOnce sync.Once
	returns     chan Return
}

// chanGen is one generation of a Channel: the channel on one socket.
type chanGen struct {
	a *actor.Channel
	// offset is added to the broker's delivery tags, so that the tags a
	// Channel hands out never repeat across generations, and an ack of an
	// earlier generation's tag is told apart.
	offset uint64
	maxTag atomic.Uint64 // the highest tag handed out, offset included
}

func newGen(a *actor.Channel, offset uint64) *chanGen {
	g := &chanGen{a: a, offset: offset}
	g.maxTag.Store(offset)
	return g
}

// tag returns the tag to hand out for the broker's tag t.
func (g *chanGen) tag(t uint64) uint64 {
	t += g.offset
	for {
		m := g.maxTag.Load()
		if t <= m || g.maxTag.CompareAndSwap(m, t) {
			return t
		}
	}
}

// settings are what a recovery restores on a new channel.
type settings struct {
	confirm        bool
	tx             bool
	prefetch       int // basic.qos global=false, for consumers started after it
	prefetchSet    bool
	globalPrefetch int
	globalSet      bool
	qosCalled      bool // from then on Consume leaves the prefetch to the user
	outcomes       bool // Confirmations was called
	returns        bool // Returns was called
}

func newChannel(c *Conn, a *actor.Channel) *Channel {
	ch := &Channel{conn: c, gen: newGen(a, 0), changed: make(chan struct{})}
	ch.ctx, ch.cancel = context.WithCancelCause(context.Background())
	ch.watch(ch.gen)
	return ch
}

// watch ends the Channel when g ends for a reason of its own; the end of
// g's socket is the recovery's business (or the Conn's end).
func (ch *Channel) watch(g *chanGen) {
	// The goroutine AfterFunc starts when g ends is owned by the channel;
	// it exits once ch.end returns, which never waits.
	context.AfterFunc(g.a.Context(), func() {
		if cause := context.Cause(g.a.Context()); !connectionLevel(cause) {
			ch.end(cause)
		}
	})
}

// ID returns the channel number (it may change with a recovery).
func (ch *Channel) ID() uint16 { return ch.currentGen().a.ID() }

// currentGen returns the current generation without waiting, even while a
// recovery replaces it.
func (ch *Channel) currentGen() *chanGen {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.gen
}

// Context returns a context cancelled when the channel ends for good (not
// when it is recovered); context.Cause gives the reason.
func (ch *Channel) Context() context.Context { return ch.ctx }

// Err returns why the channel ended, or nil while it is open (or being
// recovered).
func (ch *Channel) Err() error {
	ch.mu.Lock()
	g, err := ch.gen, ch.err
	ch.mu.Unlock()
	if err == nil && g.a.Context().Err() != nil {
		// Its end may not have been handled yet: handle it now, so that
		// Err agrees with the error a call has just returned.
		if cause := context.Cause(g.a.Context()); !connectionLevel(cause) || !ch.conn.replacesLostSockets() {
			ch.end(cause)
			return ch.Err()
		}
	}
	return err
}

// Close closes the channel and waits for the broker to confirm. Closing a
// channel that has already ended returns nil. A ctx already done does
// nothing, and the channel stays open.
func (ch *Channel) Close(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	ch.mu.Lock()
	if ch.err != nil {
		ch.mu.Unlock()
		return nil
	}
	ch.closing = true
	g := ch.gen
	ch.mu.Unlock()
	err := g.a.Close(ctx)
	ch.end(ErrChannelClosed)
	if cur := ch.currentGen(); cur != g {
		// A recovery reopened it meanwhile (none can after end).
		err = cur.a.Close(ctx)
	}
	return err
}

// end ends the channel for good, with its consumers.
func (ch *Channel) end(cause error) {
	ch.mu.Lock()
	if ch.err != nil {
		ch.mu.Unlock()
		return
	}
	if ch.closing {
		cause = ErrChannelClosed
	}
	cause = sansio.ChannelEnd(cause) // a connection's end matches ErrChannelClosed too
	ch.err = cause
	ch.cancel(cause)
	close(ch.changed)
	consumers, carried := ch.consumers, ch.carried
	ch.consumers, ch.carried = nil, nil
	ch.mu.Unlock()
	for _, cons := range consumers {
		cons.end(cause)
	}
	ch.failCarried(carried, cause)
	ch.conn.forget(ch)
}

// current returns the channel's current generation. During a recovery it
// waits for the new one, within ctx; once the channel has ended for good it
// returns why. A ctx already done returns its error at once.
func (ch *Channel) current(ctx context.Context) (*chanGen, error) {
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	for {
		ch.mu.Lock()
		g, err, changed := ch.gen, ch.err, ch.changed
		ch.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if g.a.Context().Err() == nil {
			return g, nil
		}
		if cause := context.Cause(g.a.Context()); !connectionLevel(cause) || !ch.conn.replacesLostSockets() {
			ch.end(cause) // as its watcher will, if it has not yet
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// on reports whether the channel is on socket a (or has ended).
func (ch *Channel) on(a *actor.Conn) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err != nil || ch.gen.a.Conn() == a
}

// call sends a synchronous method and returns the broker's reply.
func (ch *Channel) call(ctx context.Context, m sansio.Method) (sansio.Method, error) {
	if t := ch.conn.tracer(); t != nil {
		return ch.callTraced(ctx, m, t)
	}
	return ch.callUntraced(ctx, m)
}

func (ch *Channel) callUntraced(ctx context.Context, m sansio.Method) (sansio.Method, error) {
	g, err := ch.current(ctx)
	if err != nil {
		return nil, err
	}
	r := g.a.Call(ctx, m)
	return r.Method, r.Err
}

// record runs f under the channel's lock, to update what a recovery
// restores.
func (ch *Channel) record(f func(s *settings)) {
	ch.mu.Lock()
	f(&ch.set)
	ch.mu.Unlock()
}

// ExchangeOptions are the flags and arguments of exchange.declare.
type ExchangeOptions struct {
	// Durable exchanges survive a broker restart.
	Durable bool
	// AutoDelete deletes the exchange when its last binding is removed.
	AutoDelete bool
	// Internal exchanges take no publishes, only exchange-to-exchange
	// bindings.
	Internal bool
	// NoWait does not wait for the broker's reply: errors close the
	// channel later.
	NoWait bool
	// Args carries exchange arguments, such as "alternate-exchange".
	Args Table
}

// ExchangeDeclare declares an exchange of kind ("direct", "fanout", "topic",
// "headers", or a plugin's type).
func (ch *Channel) ExchangeDeclare(ctx context.Context, name, kind string, opts ExchangeOptions) error {
	m := &sansio.ExchangeDeclare{Exchange: name, Type: kind, Durable: opts.Durable,
		AutoDelete: opts.AutoDelete, Internal: opts.Internal, NoWait: opts.NoWait, Arguments: maps.Clone(opts.Args)}
	_, err := ch.call(ctx, m)
	if err == nil {
		ch.conn.topo.exchangeDeclared(m)
	}
	return err
}

// ExchangeDeclarePassive checks that an exchange exists; when it does not,
// the broker closes the channel with 404 (ErrNotFound).
func (ch *Channel) ExchangeDeclarePassive(ctx context.Context, name string) error {
	_, err := ch.call(ctx, &sansio.ExchangeDeclare{Exchange: name, Passive: true})
	return err
}

// ExchangeDelete deletes an exchange; with ifUnused, only when it has no
// bindings.
func (ch *Channel) ExchangeDelete(ctx context.Context, name string, ifUnused bool) error {
	_, err := ch.call(ctx, &sansio.ExchangeDelete{Exchange: name, IfUnused: ifUnused})
	if err == nil {
		ch.conn.topo.exchangeDeleted(name)
	}
	return err
}

// ExchangeBind binds destination to source (RabbitMQ's exchange-to-exchange
// bindings).
func (ch *Channel) ExchangeBind(ctx context.Context, destination, source, routingKey string, args Table) error {
	_, err := ch.call(ctx, &sansio.ExchangeBind{Destination: destination, Source: source, RoutingKey: routingKey, Arguments: args})
	if err == nil {
		ch.conn.topo.bound(recordedBinding{exchange: true, destination: destination, source: source, key: routingKey, args: maps.Clone(args)})
	}
	return err
}

// ExchangeUnbind removes an exchange-to-exchange binding.
func (ch *Channel) ExchangeUnbind(ctx context.Context, destination, source, routingKey string, args Table) error {
	_, err := ch.call(ctx, &sansio.ExchangeUnbind{Destination: destination, Source: source, RoutingKey: routingKey, Arguments: args})
	if err == nil {
		ch.conn.topo.unbound(recordedBinding{exchange: true, destination: destination, source: source, key: routingKey, args: args})
	}
	return err
}

// QueueOptions are the flags and arguments of queue.declare. Args carries
// RabbitMQ's queue arguments such as "x-queue-type" ("quorum", "stream"),
// "x-max-length", "x-message-ttl" or "x-dead-letter-exchange".
type QueueOptions struct {
	// Durable queues survive a broker restart (their persistent messages
	// too).
	Durable bool
	// Exclusive queues belong to this connection: no other may use them,
	// and they are deleted when it ends.
	Exclusive bool
	// AutoDelete deletes the queue when its last consumer is cancelled
	// (not before it had one).
	AutoDelete bool
	// NoWait does not wait for the broker's reply: errors close the
	// channel later, and the returned Queue holds only the name given.
	NoWait bool
	// Args carries queue arguments, such as "x-queue-type".
	Args Table
}

// Queue is what queue.declare reports.
type Queue struct {
	// Name is the queue's name, chosen by the broker when the declare
	// gave none.
	Name string
	// Messages is the number of messages ready for delivery (not those
	// delivered and awaiting acknowledgement).
	Messages uint32
	// Consumers is the number of active consumers.
	Consumers uint32
}

// QueueDeclare declares a queue; an empty name asks the broker to choose
// one, returned in Queue.Name. Redeclaring a queue with other arguments
// closes the channel with 406 (ErrPreconditionFailed).
func (ch *Channel) QueueDeclare(ctx context.Context, name string, opts QueueOptions) (Queue, error) {
	return ch.queueDeclare(ctx, &sansio.QueueDeclare{Queue: name, Durable: opts.Durable, Exclusive: opts.Exclusive,
		AutoDelete: opts.AutoDelete, NoWait: opts.NoWait, Arguments: maps.Clone(opts.Args)})
}

// QueueDeclarePassive returns the state of an existing queue; when it does
// not exist, the broker closes the channel with 404 (ErrNotFound).
func (ch *Channel) QueueDeclarePassive(ctx context.Context, name string) (Queue, error) {
	return ch.queueDeclare(ctx, &sansio.QueueDeclare{Queue: name, Passive: true})
}

func (ch *Channel) queueDeclare(ctx context.Context, m *sansio.QueueDeclare) (Queue, error) {
	ch.declaredLast("") // unknown, should the call be given up after it went out
	reply, err := ch.call(ctx, m)
	if err != nil {
		return Queue{}, err
	}
	ok, isOk := reply.(*sansio.QueueDeclareOk)
	if !isOk {
		if m.Queue != "" {
			ch.conn.topo.queueDeclared(m, m.Queue) // no-wait
			ch.declaredLast(m.Queue)
		}
		return Queue{Name: m.Queue}, nil
	}
	ch.conn.topo.queueDeclared(m, ok.Queue)
	ch.declaredLast(ok.Queue)
	return Queue{Name: ok.Queue, Messages: ok.MessageCount, Consumers: ok.ConsumerCount}, nil
}

func (ch *Channel) declaredLast(queue string) {
	ch.mu.Lock()
	ch.lastQueue = queue
	ch.mu.Unlock()
}

// meant returns the queue the broker takes name for: an empty name means
// the queue last declared on the channel. The record names that queue: a
// recovery declares everything on channels of its own, where an empty
// name would mean another queue, or none.
func (ch *Channel) meant(name string) string {
	if name != "" {
		return name
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.lastQueue
}

// bindingOf is the binding queue.bind or queue.unbind means: with an empty
// queue name and an empty routing key, the broker takes the last declared
// queue's name for both.
func (ch *Channel) bindingOf(queue, exchange, routingKey string, args Table) recordedBinding {
	meant := ch.meant(queue)
	if queue == "" && routingKey == "" {
		routingKey = meant
	}
	return recordedBinding{destination: meant, source: exchange, key: routingKey, args: args}
}

// QueueBind binds a queue to an exchange.
func (ch *Channel) QueueBind(ctx context.Context, queue, exchange, routingKey string, args Table) error {
	_, err := ch.call(ctx, &sansio.QueueBind{Queue: queue, Exchange: exchange, RoutingKey: routingKey, Arguments: args})
	if err == nil {
		ch.conn.topo.bound(ch.bindingOf(queue, exchange, routingKey, maps.Clone(args)))
	}
	return err
}

// QueueUnbind removes a binding.
func (ch *Channel) QueueUnbind(ctx context.Context, queue, exchange, routingKey string, args Table) error {
	_, err := ch.call(ctx, &sansio.QueueUnbind{Queue: queue, Exchange: exchange, RoutingKey: routingKey, Arguments: args})
	if err == nil {
		ch.conn.topo.unbound(ch.bindingOf(queue, exchange, routingKey, args))
	}
	return err
}

// QueuePurge removes the queue's ready messages and returns how many.
func (ch *Channel) QueuePurge(ctx context.Context, queue string) (int, error) {
	reply, err := ch.call(ctx, &sansio.QueuePurge{Queue: queue})
	if err != nil {
		return 0, err
	}
	return int(reply.(*sansio.QueuePurgeOk).MessageCount), nil
}

// QueueDelete deletes a queue and returns how many messages it held; with
// ifUnused or ifEmpty, only when it has no consumers or no messages.
func (ch *Channel) QueueDelete(ctx context.Context, queue string, ifUnused, ifEmpty bool) (int, error) {
	reply, err := ch.call(ctx, &sansio.QueueDelete{Queue: queue, IfUnused: ifUnused, IfEmpty: ifEmpty})
	if err != nil {
		return 0, err
	}
	ch.conn.topo.queueDeleted(ch.meant(queue))
	return int(reply.(*sansio.QueueDeleteOk).MessageCount), nil
}

// Qos limits how many unacknowledged deliveries (prefetchCount) the broker
// sends to each consumer started on this channel after the call (RabbitMQ's
// per-consumer semantics); with global, the limit is shared by the channel.
// A prefetch also bounds the memory a slow consumer holds. 0 means no limit:
// then a manual-ack consumer that falls Config.ConsumerBuffer deliveries
// behind is cancelled (ErrConsumerOverflow), as an auto-ack one is. On a
// channel where Qos was never called, Consume sets a prefetch for manual-ack
// consumers itself; see Channel.Consume.
func (ch *Channel) Qos(ctx context.Context, prefetchCount int, global bool) error {
	if prefetchCount < 0 || prefetchCount > 65535 {
		return fmt.Errorf("amqp: prefetch count %d is not in 0..65535", prefetchCount)
	}
	_, err := ch.call(ctx, &sansio.BasicQos{PrefetchCount: uint16(prefetchCount), Global: global})
	if err == nil {
		ch.record(func(s *settings) {
			s.qosCalled = true
			if global {
				s.globalPrefetch, s.globalSet = prefetchCount, true
			} else {
				s.prefetch, s.prefetchSet = prefetchCount, true
			}
		})
	}
	return err
}

// Recover asks the broker to redeliver this channel's unacknowledged
// messages (basic.recover with requeue).
func (ch *Channel) Recover(ctx context.Context) error {
	_, err := ch.call(ctx, &sansio.BasicRecover{Requeue: true})
	return err
}

// Tx puts the channel in transaction mode (tx.select).
func (ch *Channel) Tx(ctx context.Context) error {
	_, err := ch.call(ctx, &sansio.TxSelect{})
	if err == nil {
		ch.record(func(s *settings) { s.tx = true })
	}
	return err
}

// TxCommit commits the publishes and acks of the current transaction. After
// a recovery it fails once with ErrTxLost: the transaction died with its
// socket, and nothing of it was replayed.
func (ch *Channel) TxCommit(ctx context.Context) error {
	return ch.txEnd(ctx, &sansio.TxCommit{})
}

// TxRollback abandons the current transaction. After a recovery it fails
// once with ErrTxLost, as TxCommit does.
func (ch *Channel) TxRollback(ctx context.Context) error {
	return ch.txEnd(ctx, &sansio.TxRollback{})
}

func (ch *Channel) txEnd(ctx context.Context, m sansio.Method) error {
	g, err := ch.current(ctx)
	if err != nil {
		return err
	}
	ch.mu.Lock()
	lost := ch.txLost && ch.gen == g
	ch.txLost = false
	ch.mu.Unlock()
	if lost {
		return ErrTxLost
	}
	r := g.a.Call(ctx, m)
	return r.Err
}

// Ack acknowledges a delivery by tag (and, with multiple, every earlier
// one). Delivery.Ack is usually simpler. Tags keep growing across a
// recovery; a tag received before it fails with ErrStaleDelivery.
func (ch *Channel) Ack(ctx context.Context, deliveryTag uint64, multiple bool) error {
	return ch.settle(ctx, ch.currentGen(), &sansio.BasicAck{DeliveryTag: deliveryTag, Multiple: multiple})
}

// Nack rejects a delivery by tag (and, with multiple, every earlier one),
// requeueing it or not.
func (ch *Channel) Nack(ctx context.Context, deliveryTag uint64, multiple, requeue bool) error {
	return ch.settle(ctx, ch.currentGen(), &sansio.BasicNack{DeliveryTag: deliveryTag, Multiple: multiple, Requeue: requeue})
}

// Reject rejects one delivery by tag, requeueing it or not.
func (ch *Channel) Reject(ctx context.Context, deliveryTag uint64, requeue bool) error {
	return ch.settle(ctx, ch.currentGen(), &sansio.BasicReject{DeliveryTag: deliveryTag, Requeue: requeue})
}

// settle sends an ack, nack or reject of a delivery of generation g. It
// never reaches another generation's channel: the tag would name another
// message there.
func (ch *Channel) settle(ctx context.Context, g *chanGen, m sansio.Method) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	tag := deliveryTagOf(m)
	ch.mu.Lock()
	cur, ended := ch.gen, ch.err
	ch.mu.Unlock()
	switch {
	case ended != nil:
		return ended
	case g != cur || tag <= g.offset && tag != 0:
		return ErrStaleDelivery
	}
	if tag != 0 {
		setDeliveryTag(m, tag-g.offset)
	}
	err := g.a.Send(ctx, m)
	if err != nil && connectionLevel(err) && ch.conn.replacesLostSockets() && ch.Err() == nil {
		return ErrStaleDelivery // its socket is gone; the channel is being recovered
	}
	return err // after Close, the connection's end: no recovery follows
}

func deliveryTagOf(m sansio.Method) uint64 {
	switch m := m.(type) {
	case *sansio.BasicAck:
		return m.DeliveryTag
	case *sansio.BasicNack:
		return m.DeliveryTag
	case *sansio.BasicReject:
		return m.DeliveryTag
	}
	return 0
}

func setDeliveryTag(m sansio.Method, tag uint64) {
	switch m := m.(type) {
	case *sansio.BasicAck:
		m.DeliveryTag = tag
	case *sansio.BasicNack:
		m.DeliveryTag = tag
	case *sansio.BasicReject:
		m.DeliveryTag = tag
	}
}

// Get fetches one message from a queue (basic.get); ok is false when the
// queue is empty. Unless autoAck, acknowledge the delivery.
func (ch *Channel) Get(ctx context.Context, queue string, autoAck bool) (d Delivery, ok bool, err error) {
	t := ch.conn.tracer()
	if t == nil {
		return ch.get(ctx, queue, autoAck)
	}
	ctx = t.TraceCallStart(ctx, ch, TraceCallStartData{Method: sansio.BasicGetID.String()})
	d, ok, err = ch.get(ctx, queue, autoAck)
	t.TraceCallEnd(ctx, ch, TraceCallEndData{Err: err})
	if ok {
		d.received = time.Now().UnixNano()
		dc := d // a copy: d itself would escape on every Get
		t.TraceDelivery(ctx, &dc)
	}
	return d, ok, err
}

func (ch *Channel) get(ctx context.Context, queue string, autoAck bool) (d Delivery, ok bool, err error) {
	g, err := ch.current(ctx)
	if err != nil {
		return Delivery{}, false, err
	}
	r := g.a.Call(ctx, &sansio.BasicGet{Queue: queue, NoAck: autoAck})
	if r.Err != nil {
		return Delivery{}, false, r.Err
	}
	if _, empty := r.Method.(*sansio.BasicGetEmpty); empty {
		return Delivery{}, false, nil
	}
	d = newDelivery(ch, g, &r.Message)
	d.MessageCount = r.Message.MessageCount
	return d, true, nil
}
