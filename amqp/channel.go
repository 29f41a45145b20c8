package amqp

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// Channel is an AMQP channel: the unit that declares, publishes and
// consumes. Its methods are safe for concurrent use; synchronous operations
// from several goroutines are queued and sent one at a time, as the protocol
// requires. A channel error (such as 404 NOT_FOUND from a passive declare)
// ends the channel only; open a new one to go on.
type Channel struct {
	a    *actor.Channel
	conn *Conn

	confirmOnce sync.Once
	confirms    chan *Confirmation
	returnsOnce sync.Once
	returns     chan Return

	// qosCalled is set by the first Qos: from then on Consume leaves the
	// prefetch to the user. prefetchSet is set once Consume has given a
	// manual-ack consumer its default prefetch.
	qosCalled   atomic.Bool
	prefetchSet atomic.Bool
}

// ID returns the channel number.
func (ch *Channel) ID() uint16 { return ch.a.ID() }

// Context returns a context cancelled when the channel ends; context.Cause
// gives the reason.
func (ch *Channel) Context() context.Context { return ch.a.Context() }

// Err returns why the channel ended, or nil while it is open.
func (ch *Channel) Err() error { return ch.a.Err() }

// Close closes the channel and waits for the broker to confirm. Closing a
// channel that has already ended returns nil.
func (ch *Channel) Close(ctx context.Context) error { return ch.a.Close(ctx) }

// call sends a synchronous method and returns the broker's reply.
func (ch *Channel) call(ctx context.Context, m sansio.Method) (sansio.Method, error) {
	r := ch.a.Call(ctx, m)
	return r.Method, r.Err
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
	_, err := ch.call(ctx, &sansio.ExchangeDeclare{Exchange: name, Type: kind, Durable: opts.Durable,
		AutoDelete: opts.AutoDelete, Internal: opts.Internal, NoWait: opts.NoWait, Arguments: opts.Args})
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
	return err
}

// ExchangeBind binds destination to source (RabbitMQ's exchange-to-exchange
// bindings).
func (ch *Channel) ExchangeBind(ctx context.Context, destination, source, routingKey string, args Table) error {
	_, err := ch.call(ctx, &sansio.ExchangeBind{Destination: destination, Source: source, RoutingKey: routingKey, Arguments: args})
	return err
}

// ExchangeUnbind removes an exchange-to-exchange binding.
func (ch *Channel) ExchangeUnbind(ctx context.Context, destination, source, routingKey string, args Table) error {
	_, err := ch.call(ctx, &sansio.ExchangeUnbind{Destination: destination, Source: source, RoutingKey: routingKey, Arguments: args})
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
		AutoDelete: opts.AutoDelete, NoWait: opts.NoWait, Arguments: opts.Args})
}

// QueueDeclarePassive returns the state of an existing queue; when it does
// not exist, the broker closes the channel with 404 (ErrNotFound).
func (ch *Channel) QueueDeclarePassive(ctx context.Context, name string) (Queue, error) {
	return ch.queueDeclare(ctx, &sansio.QueueDeclare{Queue: name, Passive: true})
}

func (ch *Channel) queueDeclare(ctx context.Context, m *sansio.QueueDeclare) (Queue, error) {
	reply, err := ch.call(ctx, m)
	if err != nil {
		return Queue{}, err
	}
	ok, isOk := reply.(*sansio.QueueDeclareOk)
	if !isOk {
		return Queue{Name: m.Queue}, nil // no-wait
	}
	return Queue{Name: ok.Queue, Messages: ok.MessageCount, Consumers: ok.ConsumerCount}, nil
}

// QueueBind binds a queue to an exchange.
func (ch *Channel) QueueBind(ctx context.Context, queue, exchange, routingKey string, args Table) error {
	_, err := ch.call(ctx, &sansio.QueueBind{Queue: queue, Exchange: exchange, RoutingKey: routingKey, Arguments: args})
	return err
}

// QueueUnbind removes a binding.
func (ch *Channel) QueueUnbind(ctx context.Context, queue, exchange, routingKey string, args Table) error {
	_, err := ch.call(ctx, &sansio.QueueUnbind{Queue: queue, Exchange: exchange, RoutingKey: routingKey, Arguments: args})
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
	ch.qosCalled.Store(true)
	_, err := ch.call(ctx, &sansio.BasicQos{PrefetchCount: uint16(prefetchCount), Global: global})
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
	return err
}

// TxCommit commits the publishes and acks of the current transaction.
func (ch *Channel) TxCommit(ctx context.Context) error {
	_, err := ch.call(ctx, &sansio.TxCommit{})
	return err
}

// TxRollback abandons the current transaction.
func (ch *Channel) TxRollback(ctx context.Context) error {
	_, err := ch.call(ctx, &sansio.TxRollback{})
	return err
}

// Ack acknowledges a delivery by tag (and, with multiple, every earlier
// one). Delivery.Ack is usually simpler.
func (ch *Channel) Ack(ctx context.Context, deliveryTag uint64, multiple bool) error {
	return ch.a.Send(ctx, &sansio.BasicAck{DeliveryTag: deliveryTag, Multiple: multiple})
}

// Nack rejects a delivery by tag (and, with multiple, every earlier one),
// requeueing it or not.
func (ch *Channel) Nack(ctx context.Context, deliveryTag uint64, multiple, requeue bool) error {
	return ch.a.Send(ctx, &sansio.BasicNack{DeliveryTag: deliveryTag, Multiple: multiple, Requeue: requeue})
}

// Reject rejects one delivery by tag, requeueing it or not.
func (ch *Channel) Reject(ctx context.Context, deliveryTag uint64, requeue bool) error {
	return ch.a.Send(ctx, &sansio.BasicReject{DeliveryTag: deliveryTag, Requeue: requeue})
}

// Get fetches one message from a queue (basic.get); ok is false when the
// queue is empty. Unless autoAck, acknowledge the delivery.
func (ch *Channel) Get(ctx context.Context, queue string, autoAck bool) (d Delivery, ok bool, err error) {
	r := ch.a.Call(ctx, &sansio.BasicGet{Queue: queue, NoAck: autoAck})
	if r.Err != nil {
		return Delivery{}, false, r.Err
	}
	if _, empty := r.Method.(*sansio.BasicGetEmpty); empty {
		return Delivery{}, false, nil
	}
	d = newDelivery(ch, &r.Message)
	d.MessageCount = r.Message.MessageCount
	return d, true, nil
}
