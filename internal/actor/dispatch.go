package actor

import (
	"errors"
	"log/slog"

	"github.com/amqproto/amqproto/internal/sansio"
)

// dispatch hands every pending event to its receiver.
func (l *loop) dispatch() {
	for {
		ev, ok := l.core.NextEvent()
		if !ok {
			return
		}
		l.event(ev)
	}
}

func (l *loop) event(ev sansio.Event) {
	l.owner.check()
	switch ev.Kind {
	case sansio.EventConnected:
		l.c.tuning = l.core.Tuning()
		l.c.serverProps = l.core.ServerPropertiesWire()
		close(l.c.connected)
	case sansio.EventReply:
		l.endChannelFirst(ev)
		l.replied(ev)
	case sansio.EventDelivery:
		l.deliver(ev)
	case sansio.EventReturn:
		l.returned(ev)
	case sansio.EventConfirm:
		l.endChannelFirst(ev)
		l.confirmed(ev)
	case sansio.EventConsumerCancelled:
		if st := l.channels[ev.Channel]; st != nil {
			if cons := st.consumers[ev.ConsumerTag]; cons != nil {
				delete(st.consumers, ev.ConsumerTag)
				l.c.log.Warn("amqp: consumer cancelled by the broker", slog.String("consumer_tag", cons.Tag),
					slog.Int("channel", int(ev.Channel)))
				cons.Deliveries.Close(ErrCancelledByBroker)
			}
		}
	case sansio.EventFlow:
		l.flow(ev)
	case sansio.EventBlocked, sansio.EventUnblocked:
		l.blocked(ev)
	case sansio.EventChannelClosed:
		l.channelClosed(ev)
	case sansio.EventConnectionClosed:
		l.finished = true
		l.cause = ev.Err
		l.connectionEnded(ev.Err)
	}
}

// endChannelFirst cancels the context of a channel whose end failed ev,
// before ev wakes its caller: the core reports a channel's failed requests
// and confirms before EventChannelClosed, and a caller who got a
// channel-ending error must already see the channel as ended (Err, and
// Publish refusing to send on it). channelClosed does the rest.
func (l *loop) endChannelFirst(ev sansio.Event) {
	if ev.Err == nil || !(errors.Is(ev.Err, sansio.ErrChannelClosed) || errors.Is(ev.Err, sansio.ErrConnectionClosed)) {
		return
	}
	if st := l.channels[ev.Channel]; st != nil {
		st.ch.cancel(ev.Err)
	}
}

func (l *loop) replied(ev sansio.Event) {
	w, ok := l.waiters[ev.Token]
	if !ok {
		return
	}
	delete(l.waiters, ev.Token)
	req := w.req
	if ev.Err != nil {
		l.failRequest(w, ev.Err)
		return
	}
	st := l.channels[ev.Channel]
	switch req.kind {
	case reqOpenChannel:
		if st == nil {
			l.reply(w, Result{Err: sansio.ErrChannelClosed})
			return
		}
		if w.abandoned {
			l.closeQuietly(st)
		}
		l.reply(w, Result{Channel: st.ch})
		return
	case reqConsume:
		if w.abandoned && st != nil {
			// Nobody will read this consumer: cancel it at the broker, and
			// give back what it gets until the broker confirms.
			req.cons.abandoned = true
			l.cancelConsumer(st, req.cons, ErrConsumerCancelled)
		}
	case reqCancelConsumer:
		if st != nil && st.consumers[req.cons.Tag] == req.cons {
			delete(st.consumers, req.cons.Tag)
		}
		reason := w.reason
		if reason == nil {
			reason = ErrConsumerCancelled
		}
		req.cons.Deliveries.Close(reason)
	case reqCall:
		switch m := req.m.(type) {
		case *sansio.BasicGet:
			req.ch.noteTag(ev.Message.DeliveryTag)
			if w.abandoned && !m.NoAck && ev.Message.DeliveryTag != 0 {
				// Nobody takes the message: give it back to the queue
				// rather than hold it unacknowledged.
				l.requeue(ev.Channel, ev.Message.DeliveryTag)
			}
		case *sansio.BasicQos:
			if st != nil {
				st.prefetch = m.PrefetchCount
			}
		case *sansio.ConfirmSelect:
			// Set on select-ok, not when queued: the core numbers
			// publishes only once confirm.select is on the wire.
			req.ch.confirm.Store(true)
		}
	}
	l.reply(w, Result{Method: ev.Method, Message: ev.Message})
}

// cancelConsumer sends basic.cancel for a consumer nobody reads (or one that
// overflowed); its queue is closed with reason when the broker confirms.
func (l *loop) cancelConsumer(st *loopChannel, cons *Consumer, reason error) {
	token := l.c.nextToken.Add(1)
	m := &sansio.BasicCancel{ConsumerTag: cons.Tag}
	if err := l.core.Call(st.ch.id, token, m); err != nil {
		cons.Deliveries.Close(err)
		return
	}
	l.waiters[token] = &waiter{reason: reason, req: request{kind: reqCancelConsumer, ch: st.ch, cons: cons, m: m}}
}

// requeue rejects a delivery nobody will take, so that the broker hands it
// to another consumer now rather than when the channel closes.
func (l *loop) requeue(channel uint16, deliveryTag uint64) {
	_ = l.core.Call(channel, 0, &sansio.BasicReject{DeliveryTag: deliveryTag, Requeue: true})
}

func (l *loop) closeQuietly(st *loopChannel) {
	_ = l.core.CloseChannel(st.ch.id, l.c.nextToken.Add(1))
}

func (l *loop) deliver(ev sansio.Event) {
	st := l.channels[ev.Channel]
	if st == nil {
		return
	}
	st.ch.noteTag(ev.Message.DeliveryTag)
	cons := st.consumers[ev.Message.ConsumerTag]
	if cons == nil {
		// Cannot happen with a conforming broker: deliveries stop at
		// cancel-ok. Give the message back rather than lose it.
		l.c.log.Warn("amqp: delivery for an unknown consumer; requeued",
			slog.String("consumer_tag", ev.Message.ConsumerTag))
		l.requeue(ev.Channel, ev.Message.DeliveryTag)
		return
	}
	if cons.abandoned {
		if !cons.NoAck {
			l.requeue(ev.Channel, ev.Message.DeliveryTag)
		}
		return
	}
	l.c.stats.delivered.Add(1)
	cons.received.Add(1)
	n := cons.Deliveries.push(ev.Message)
	if n > max(l.c.cfg.ConsumerBuffer, cons.prefetch) && !cons.overflowed {
		// Ending the consumer keeps what it holds and what is still in
		// flight until cancel-ok: nothing is dropped.
		cons.overflowed = true
		l.c.log.Warn("amqp: consumer overflow: cancelling it", slog.String("consumer_tag", cons.Tag), slog.Int("buffered", n))
		l.cancelConsumer(st, cons, ErrConsumerOverflow)
	}
}

func (l *loop) returned(ev sansio.Event) {
	st := l.channels[ev.Channel]
	if st == nil {
		return
	}
	l.c.stats.returned.Add(1)
	handled := false
	if o, _ := ev.Ref.(*Outcome); o != nil {
		msg := ev.Message
		o.Return = &msg
		handled = true
	}
	if st.ch.returnsOn.Load() {
		st.ch.Returns.push(ev.Message)
		handled = true
	}
	if !handled {
		l.c.log.Warn("amqp: message returned and nobody listens for returns",
			slog.Int("reply_code", int(ev.Message.ReplyCode)), slog.String("reply_text", ev.Message.ReplyText),
			slog.String("exchange", ev.Message.Exchange), slog.String("routing_key", ev.Message.RoutingKey))
	}
}

func (l *loop) confirmed(ev sansio.Event) {
	st := l.channels[ev.Channel]
	if st == nil {
		return
	}
	st.ch.unconfirmed.Add(-1)
	switch ev.Confirm {
	case sansio.ConfirmAck:
		l.c.stats.acked.Add(1)
	case sansio.ConfirmNack:
		l.c.stats.nacked.Add(1)
	}
	o, _ := ev.Ref.(*Outcome)
	st.ch.settle(o, ev.Confirm, ev.Err)
}

func (l *loop) flow(ev sansio.Event) {
	st := l.channels[ev.Channel]
	if st == nil {
		return
	}
	ch := st.ch
	if ev.Active {
		ch.flow.open()
	} else {
		ch.flow.shut()
	}
}

func (l *loop) blocked(ev sansio.Event) {
	c := l.c
	l.blockedChanged(ev.Kind == sansio.EventBlocked, now())
	b := Blocking{Blocked: ev.Kind == sansio.EventBlocked, Reason: ev.Reason}
	if b.Blocked {
		c.log.Info("amqp: connection blocked by the broker", slog.String("reason", ev.Reason))
		c.blocked.shut()
	} else {
		c.log.Info("amqp: connection unblocked by the broker")
		c.blocked.open()
	}
	c.blocking.set(b) // coalesced: only the latest state is kept
	if obs := c.cfg.Observer; obs != nil {
		obs.Blocked(b)
	}
}

func (l *loop) channelClosed(ev sansio.Event) {
	st := l.channels[ev.Channel]
	if st == nil {
		return
	}
	err := ev.Err
	if err == nil {
		err = sansio.ErrChannelClosed
	}
	l.c.log.Debug("amqp: channel closed", slog.Int("channel", int(ev.Channel)), slog.Any("err", err))
	l.endChannel(st, err)
}

// endChannel ends a channel for its callers, consumers and publishers, in
// this order: the cancel comes first, so that whoever sees a consumer's
// Deliveries or the Outcomes closed finds the channel ended (a manual-ack
// consumer then drops what it still holds: it can no longer be acked);
// Publish refuses from the cancel on; stopPublishes makes sure no publish
// is still on its way; publishesFirst fails those handed over, while
// Outcomes can still report them; then Outcomes and Returns close.
func (l *loop) endChannel(st *loopChannel, err error) {
	l.owner.check()
	delete(l.channels, st.ch.id)
	st.ch.cancel(err)
	for tag, cons := range st.consumers {
		cons.Deliveries.Close(err)
		delete(st.consumers, tag)
	}
	l.stopPublishes(st.ch)
	l.publishesFirst()
	st.ch.Outcomes.Close(err)
	st.ch.Returns.Close(err)
	st.ch.flow.open()
}

// stopPublishes waits for the publishers inside handOver for ch to leave
// and keeps any other from entering: once it returns, every publish
// accepted for ch is in c.pubs or l.taken. Publishers hold the read lock
// only while they check and queue, which never waits, so neither does the
// loop for long.
func (l *loop) stopPublishes(ch *Channel) {
	ch.pubMu.Lock()
	ch.pubsClosed = true
	ch.pubMu.Unlock()
}

// connectionEnded logs the end of the socket. A missed heartbeat is a Warn
// here, since only the loop knows it; a broker's close and every other loss
// are reported at Warn by the amqp layer, which knows whether a recovery
// follows, so the loop logs them at Debug.
func (l *loop) connectionEnded(err error) {
	switch {
	case err == nil:
		l.c.log.Debug("amqp: connection closed")
	case errors.Is(err, sansio.ErrHeartbeatTimeout):
		l.c.stats.heartbeatTimeouts.Add(1)
		l.c.log.Warn("amqp: missed heartbeats: the broker went silent", slog.Any("err", err))
	default:
		l.c.log.Debug("amqp: connection ended", slog.Any("err", err))
	}
}
