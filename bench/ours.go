package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amqproto/amqproto/amqp"
)

// ours drives github.com/amqproto/amqproto/amqp. Automatic recovery is on
// by default in amqproto and has no counterpart in amqp091-go; noRecovery
// (-recovery=false) turns it off. While no socket is lost it costs only
// the record of declared topology, and the bench declares outside the
// measured windows.
type ours struct {
	noRecovery bool
}

func (ours) Name() string { return "ours" }

func (o ours) config() amqp.Config {
	return amqp.Config{Recovery: amqp.Recovery{Disable: o.noRecovery}}
}

func (o ours) DialIdle(ctx context.Context, url string) (func(context.Context) error, error) {
	c, err := amqp.DialConfig(ctx, url, o.config())
	if err != nil {
		return nil, err
	}
	if _, err := c.Channel(ctx); err != nil {
		c.Close(ctx)
		return nil, err
	}
	return c.Close, nil
}

func (o ours) Dial(ctx context.Context, url string) (session, error) {
	c, err := amqp.DialConfig(ctx, url, o.config())
	if err != nil {
		return nil, err
	}
	s := &oursSession{c: c, url: url, client: o}
	blocked := c.Blocked()
	// Owned by the session; exits when the connection ends.
	go func() {
		for b := range blocked {
			if b.Blocked {
				s.blocked.Store(true)
			}
		}
	}()
	return s, nil
}

type oursSession struct {
	c       *amqp.Conn
	url     string // for a second connection
	client  ours
	blocked atomic.Bool
}

func (s *oursSession) Blocked() bool { return s.blocked.Load() }

func (s *oursSession) ServerVersion() string {
	v, _ := s.c.ServerProperties()["version"].(string)
	return v
}

func (s *oursSession) Close(ctx context.Context) error { return s.c.Close(ctx) }

// admin runs f on a channel of its own, opened and closed around it.
func (s *oursSession) admin(ctx context.Context, f func(ch *amqp.Channel) error) error {
	ch, err := s.c.Channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close(ctx)
	return f(ch)
}

func (s *oursSession) Declare(ctx context.Context, queue string) error {
	return s.admin(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{})
		return err
	})
}

func (s *oursSession) Delete(ctx context.Context, queue string) error {
	return s.admin(ctx, func(ch *amqp.Channel) error {
		if _, err := ch.QueuePurge(ctx, queue); err != nil {
			return err
		}
		_, err := ch.QueueDelete(ctx, queue, false, false)
		return err
	})
}

func (s *oursSession) Preload(ctx context.Context, queue string, n int, body []byte) error {
	return s.admin(ctx, func(ch *amqp.Channel) error {
		if err := ch.Confirm(ctx); err != nil {
			return err
		}
		if err := oursConfirmed(ctx, ch, queue, n, body, 1000); err != nil {
			return err
		}
		return oursAwaitCount(ctx, ch, queue, n)
	})
}

// oursAwaitCount polls the queue's message count with a passive declare on
// ch until it reaches n.
func oursAwaitCount(ctx context.Context, ch *amqp.Channel, queue string, n int) error {
	for {
		q, err := ch.QueueDeclarePassive(ctx, queue)
		if err != nil {
			return err
		}
		if int(q.Messages) >= n {
			return nil
		}
		time.Sleep(pollInterval)
	}
}

// oursConfirmed publishes n messages with at most window confirmations
// outstanding, waiting for the oldest when the window is full.
func oursConfirmed(ctx context.Context, ch *amqp.Channel, queue string, n int, body []byte, window int) error {
	ring := make([]*amqp.Confirmation, window)
	for i := 0; i < n; i++ {
		slot := i % window
		if c := ring[slot]; c != nil {
			if err := c.Wait(ctx); err != nil {
				return fmt.Errorf("confirm %d: %w", i-window, err)
			}
		}
		c, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: queue, Body: body})
		if err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		ring[slot] = c
	}
	for i := max(0, n-window); i < n; i++ {
		if err := ring[i%window].Wait(ctx); err != nil {
			return fmt.Errorf("confirm %d: %w", i, err)
		}
	}
	return nil
}

func (s *oursSession) channel(ctx context.Context, confirm bool) (*amqp.Channel, error) {
	ch, err := s.c.Channel(ctx)
	if err != nil {
		return nil, err
	}
	if confirm {
		if err := ch.Confirm(ctx); err != nil {
			ch.Close(ctx)
			return nil, err
		}
	}
	return ch, nil
}

func closer(ch *amqp.Channel) func(context.Context) {
	return func(ctx context.Context) { ch.Close(ctx) }
}

func (s *oursSession) PreparePublish(ctx context.Context, queue string, n int, body []byte) (prepared, error) {
	ch, err := s.channel(ctx, false)
	if err != nil {
		return prepared{}, err
	}
	run := func(ctx context.Context) error {
		for i := 0; i < n; i++ {
			if _, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: queue, Body: body}); err != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
		}
		return oursAwaitCount(ctx, ch, queue, n)
	}
	return prepared{Run: run, Cleanup: closer(ch)}, nil
}

func (s *oursSession) PrepareConfirmed(ctx context.Context, queue string, n int, body []byte, window int) (prepared, error) {
	ch, err := s.channel(ctx, true)
	if err != nil {
		return prepared{}, err
	}
	run := func(ctx context.Context) error { return oursConfirmed(ctx, ch, queue, n, body, window) }
	return prepared{Run: run, Cleanup: closer(ch)}, nil
}

func (s *oursSession) PrepareWaitEach(ctx context.Context, queue string, n int, body []byte) (prepared, error) {
	ch, err := s.channel(ctx, true)
	if err != nil {
		return prepared{}, err
	}
	// A window of one: each publish waits for the previous one's confirm.
	run := func(ctx context.Context) error { return oursConfirmed(ctx, ch, queue, n, body, 1) }
	return prepared{Run: run, Cleanup: closer(ch)}, nil
}

func (s *oursSession) PrepareConsume(ctx context.Context, queue string, n, prefetch, ackEvery int) (prepared, error) {
	ch, err := s.channel(ctx, false)
	if err != nil {
		return prepared{}, err
	}
	if err := ch.Qos(ctx, prefetch, false); err != nil {
		ch.Close(ctx)
		return prepared{}, err
	}
	run := func(ctx context.Context) error {
		consumer, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
		if err != nil {
			return err
		}
		deliveries := consumer.Deliveries()
		for got := 0; got < n; {
			select {
			case d, ok := <-deliveries:
				if !ok {
					return fmt.Errorf("deliveries closed after %d: %w", got, consumer.Err())
				}
				got++
				if got%ackEvery == 0 || got == n {
					if err := d.Ack(ctx, ackEvery > 1); err != nil {
						return fmt.Errorf("ack %d: %w", got, err)
					}
				}
			case <-ctx.Done():
				return fmt.Errorf("after %d deliveries: %w", got, context.Cause(ctx))
			}
		}
		return nil
	}
	// Closing the channel ends the consumer, as for amqp091-go.
	return prepared{Run: run, Cleanup: closer(ch)}, nil
}

func (s *oursSession) PrepareConcurrent(ctx context.Context, queue string, n int, body []byte, channels, window int) (prepared, error) {
	chs := make([]*amqp.Channel, 0, channels)
	cleanup := func(ctx context.Context) {
		for _, ch := range chs {
			ch.Close(ctx)
		}
	}
	for range channels {
		ch, err := s.channel(ctx, true)
		if err != nil {
			cleanup(ctx)
			return prepared{}, err
		}
		chs = append(chs, ch)
	}
	run := func(ctx context.Context) error {
		errs := make([]error, channels)
		var wg sync.WaitGroup
		for i, ch := range chs {
			wg.Go(func() { errs[i] = oursConfirmed(ctx, ch, queue, split(n, channels, i), body, window) })
		}
		wg.Wait()
		return firstError(errs)
	}
	return prepared{Run: run, Cleanup: cleanup}, nil
}

func (s *oursSession) PreparePaced(ctx context.Context, queue string, n int, body []byte, rate float64, prefetch int, lat *latencies) (prepared, error) {
	pub, err := s.channel(ctx, false)
	if err != nil {
		return prepared{}, err
	}
	cc, err := amqp.DialConfig(ctx, s.url, s.client.config())
	if err != nil {
		pub.Close(ctx)
		return prepared{}, err
	}
	cleanup := func(ctx context.Context) {
		pub.Close(ctx)
		cc.Close(ctx)
	}
	consumer, err := oursConsumer(ctx, cc, queue, prefetch, false)
	if err != nil {
		cleanup(ctx)
		return prepared{}, err
	}
	run := func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		consumed := make(chan error, 1)
		go func() { // owned by run, which waits for it
			err := oursReceive(ctx, consumer, n, func(d amqp.Delivery) error {
				lat.add(sinceStamp(d.Body))
				return d.Ack(ctx, false)
			})
			if err != nil {
				cancel() // stops the publisher
			}
			consumed <- err
		}()
		err := pace(ctx, n, rate, func(i int) error {
			stamp(body)
			if _, err := pub.Publish(ctx, amqp.Publishing{RoutingKey: queue, Body: body}); err != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
			return nil
		})
		if err != nil {
			cancel() // stops the consumer
		}
		return errors.Join(err, <-consumed)
	}
	return prepared{Run: run, Cleanup: cleanup}, nil
}

// oursConsumer opens a channel on c with a prefetch and starts a consumer
// of queue on it.
func oursConsumer(ctx context.Context, c *amqp.Conn, queue string, prefetch int, autoAck bool) (*amqp.Consumer, error) {
	ch, err := c.Channel(ctx)
	if err != nil {
		return nil, err
	}
	if prefetch > 0 {
		if err := ch.Qos(ctx, prefetch, false); err != nil {
			return nil, err
		}
	}
	return ch.Consume(ctx, queue, amqp.ConsumeOptions{AutoAck: autoAck})
}

// oursReceive hands n deliveries of consumer to got, in the calling
// goroutine.
func oursReceive(ctx context.Context, consumer *amqp.Consumer, n int, got func(d amqp.Delivery) error) error {
	deliveries := consumer.Deliveries()
	for i := 0; i < n; i++ {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("deliveries closed after %d: %w", i, consumer.Err())
			}
			if err := got(d); err != nil {
				return fmt.Errorf("delivery %d: %w", i, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("after %d deliveries: %w", i, context.Cause(ctx))
		}
	}
	return nil
}

func (s *oursSession) PrepareRPC(ctx context.Context, queue, replyQueue string, n int, body []byte, lat *latencies) (prepared, error) {
	requester, err := s.channel(ctx, false)
	if err != nil {
		return prepared{}, err
	}
	responder, err := s.channel(ctx, false)
	if err != nil {
		requester.Close(ctx)
		return prepared{}, err
	}
	cleanup := func(ctx context.Context) {
		requester.Close(ctx)
		responder.Close(ctx)
	}
	replies, err := requester.Consume(ctx, replyQueue, amqp.ConsumeOptions{AutoAck: true})
	if err != nil {
		cleanup(ctx)
		return prepared{}, err
	}
	requests, err := responder.Consume(ctx, queue, amqp.ConsumeOptions{AutoAck: true})
	if err != nil {
		cleanup(ctx)
		return prepared{}, err
	}
	ids := correlationIDs(n)
	run := func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		served := make(chan error, 1)
		go func() { // the responder; owned by run, which waits for it
			err := oursReceive(ctx, requests, n, func(d amqp.Delivery) error {
				_, err := responder.Publish(ctx, amqp.Publishing{RoutingKey: d.ReplyTo,
					Properties: amqp.Properties{CorrelationID: d.CorrelationID}, Body: d.Body})
				return err
			})
			if err != nil {
				cancel() // the requester waits for a reply that will not come
			}
			served <- err
		}()
		err := oursRequests(ctx, requester, replies, queue, replyQueue, ids, body, lat)
		if err != nil {
			cancel()
		}
		return errors.Join(err, <-served)
	}
	return prepared{Run: run, Cleanup: cleanup}, nil
}

// oursRequests makes n round trips: publish a request, wait for its reply.
func oursRequests(ctx context.Context, ch *amqp.Channel, replies *amqp.Consumer, queue, replyQueue string, ids []string, body []byte, lat *latencies) error {
	for i := range ids {
		t0 := time.Now()
		_, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: queue,
			Properties: amqp.Properties{ReplyTo: replyQueue, CorrelationID: ids[i]}, Body: body})
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		err = oursReceive(ctx, replies, 1, func(d amqp.Delivery) error {
			if d.CorrelationID != ids[i] {
				return fmt.Errorf("%w: got %q, want %q", errCorrelation, d.CorrelationID, ids[i])
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reply %d: %w", i, err)
		}
		lat.add(time.Since(t0))
	}
	return nil
}
