package amqp

import (
	"context"
	"fmt"
	"slices"

	"github.com/amqproto/amqproto/internal/actor"
	"github.com/amqproto/amqproto/internal/sansio"
)

// restore reopens the channel on socket a, with its settings and
// consumers, and makes that its current generation. Only a failure of the
// socket itself fails it: a consumer that cannot be registered again is
// ended, reported, and left out.
func (ch *Channel) restore(ctx context.Context, a *actor.Conn) error {
	for {
		ch.mu.Lock()
		if ch.err != nil || ch.gen.a.Conn() == a {
			ch.mu.Unlock()
			return nil
		}
		set, consumers, queues, old := ch.set, slices.Clone(ch.consumers), ch.consumerQueues(), ch.gen
		ch.mu.Unlock()

		ach, err := a.OpenChannel(ctx)
		if err != nil {
			return err
		}
		// Before republish: the outcomes and returns of what it publishes
		// again are reported too (a return may come before the swap).
		if set.outcomes {
			ach.EnableOutcomes()
		}
		if set.returns {
			ach.EnableReturns()
		}
		acs, err := ch.reapply(ctx, ach, set, consumers, queues)
		if err != nil {
			return err
		}
		// Republish only onto a channel that will be swapped in: one
		// closed to start again would settle those publishes as failed.
		if acs != nil && ch.unchanged(old, consumers) {
			if err := ch.republish(ctx, ach); err != nil {
				return err
			}
		}
		if acs == nil || !ch.swap(ach, old, consumers) {
			_ = ach.Close(ctx) // a consumer failed, or was added: again
			continue
		}
		g := ch.currentGen()
		if g.a != ach {
			// The channel ended meanwhile (Close, or its connection):
			// nothing holds ach, so close it on the broker too.
			_ = ach.Close(ctx)
			return nil
		}
		for i, c := range consumers {
			if acs[i] != nil {
				c.resume(ctx, acs[i], g)
			}
		}
		return nil
	}
}

// consumerQueues lists the queue of each consumer; ch.mu is held.
func (ch *Channel) consumerQueues() []string {
	q := make([]string, len(ch.consumers))
	for i, c := range ch.consumers {
		q[i] = c.queue
	}
	return q
}

// unchanged reports whether the channel is still at generation old with
// no consumer added since its restore began.
func (ch *Channel) unchanged(old *chanGen, consumers []*Consumer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err == nil && ch.gen == old && ch.noneAdded(consumers)
}

// noneAdded reports whether every consumer of the channel is among
// consumers, the ones its restore registers; ch.mu is held. One that went
// meanwhile (left out, cancelled) does not make the restore start again
// on another channel: closing this one would take the others'
// registrations, and the broker an auto-delete queue with them. Its
// registration, if any, is cancelled (see Consumer.resume and Cancel).
func (ch *Channel) noneAdded(consumers []*Consumer) bool {
	for _, c := range ch.consumers {
		if !slices.Contains(consumers, c) {
			return false
		}
	}
	return true
}

// swap makes ach the current generation, unless the channel ended or a
// consumer was added since the restore began.
func (ch *Channel) swap(ach *actor.Channel, old *chanGen, consumers []*Consumer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.err != nil || ch.gen != old || !ch.noneAdded(consumers) {
		return ch.err != nil // ended: nothing to restore
	}
	if ch.set.outcomes {
		ach.EnableOutcomes()
	}
	if ch.set.returns {
		ach.EnableReturns()
	}
	// The old socket has ended, so its last tag is final, whereas maxTag
	// still grows while an auto-ack consumer hands its backlog over.
	ch.gen = newGen(ach, max(old.maxTag.Load(), old.offset+old.a.LastDeliveryTag()))
	ch.txLost = ch.set.tx
	close(ch.changed)
	ch.changed = make(chan struct{})
	ch.watch(ch.gen)
	return true
}

// reapply sets ach up as the channel was, and registers its consumers
// again. It returns the new registrations (nil where a consumer was left
// out), or nil when one failed and closed ach.
func (ch *Channel) reapply(ctx context.Context, ach *actor.Channel, set settings, consumers []*Consumer, queues []string) ([]*actor.Consumer, error) {
	steps := []struct {
		on bool
		m  sansio.Method
	}{
		{set.globalSet, &sansio.BasicQos{PrefetchCount: uint16(set.globalPrefetch), Global: true}},
		{set.confirm, &sansio.ConfirmSelect{}},
		{set.tx, &sansio.TxSelect{}},
	}
	for _, s := range steps {
		if s.on {
			if err := callOn(ctx, ach, s.m); err != nil {
				return nil, err
			}
		}
	}
	if ch.conn.topo.anyAutoDeleteQueue(queues) {
		if ok, err := ch.queuesThere(ctx, ach, consumers, queues); !ok {
			return nil, err
		}
	}
	acs := make([]*actor.Consumer, len(consumers))
	prefetch, prefetchOn := 0, false
	for i, c := range consumers {
		e := consumerEntity(c, queues[i])
		if !ch.conn.recovers(e) {
			ch.dropConsumer(c, ErrConsumerNotRecovered)
			continue
		}
		if c.prefetchOn && (!prefetchOn || c.prefetch != prefetch) {
			if err := callOn(ctx, ach, &sansio.BasicQos{PrefetchCount: uint16(c.prefetch)}); err != nil {
				return nil, err
			}
			prefetch, prefetchOn = c.prefetch, true
		}
		ac, err := ach.Consume(ctx, c.method(queues[i]))
		if err != nil {
			if connectionLevel(err) || ctx.Err() != nil {
				return nil, err
			}
			ch.notRecovered(c, e, err)
			return nil, nil // the broker closed ach
		}
		acs[i] = ac
	}
	if set.prefetchSet && (!prefetchOn || set.prefetch != prefetch) {
		if err := callOn(ctx, ach, &sansio.BasicQos{PrefetchCount: uint16(set.prefetch)}); err != nil {
			return nil, err
		}
	}
	return acs, nil
}

// queuesThere checks, with a passive declare, that the queue of each
// consumer to register is there, before any is registered: a consumer
// whose queue is gone would fail and close ach, taking the registrations
// made before it, and the broker would delete an auto-delete queue with
// its only consumer there (the next attempt finding it gone). false with
// a nil error when a queue was gone: its consumer was dropped, and the
// broker closed ach.
func (ch *Channel) queuesThere(ctx context.Context, ach *actor.Channel, consumers []*Consumer, queues []string) (bool, error) {
	for i, c := range consumers {
		e := consumerEntity(c, queues[i])
		if !ch.conn.recovers(e) {
			continue // dropped by reapply
		}
		if err := callOn(ctx, ach, &sansio.QueueDeclare{Queue: queues[i], Passive: true}); err != nil {
			if connectionLevel(err) || ctx.Err() != nil {
				return false, err
			}
			ch.notRecovered(c, e, err)
			return false, nil
		}
	}
	return true, nil
}

func consumerEntity(c *Consumer, queue string) TopologyEntity {
	return TopologyEntity{Kind: EntityConsumer, Name: c.tag, Queue: queue}
}

// recovers reports whether Recovery.Filter keeps e.
func (c *Conn) recovers(e TopologyEntity) bool {
	f := c.cfg.Recovery.Filter
	return f == nil || f(e)
}

// notRecovered reports and ends a consumer the broker refused to register
// again.
func (ch *Channel) notRecovered(c *Consumer, e TopologyEntity, err error) {
	ch.conn.log.Warn("amqp: recovery could not register a consumer again", "consumer", e.String(), "err", err)
	ch.conn.emit(RecoveryEvent{Kind: TopologyFailed, Entity: e, Err: err, Generation: ch.conn.Generation()})
	ch.dropConsumer(c, fmt.Errorf("%w: %w", ErrConsumerNotRecovered, err))
}

func (ch *Channel) dropConsumer(c *Consumer, err error) {
	ch.removeConsumer(c)
	c.end(err)
}

// callOn makes a synchronous call on ach; any failure fails the restore
// attempt (a channel that refuses its own settings cannot go on).
func callOn(ctx context.Context, ach *actor.Channel, m sansio.Method) error {
	return ach.Call(ctx, m).Err
}
