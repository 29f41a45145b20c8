package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// theirs drives github.com/rabbitmq/amqp091-go with its idiomatic API:
// PublishWithContext, PublishWithDeferredConfirmWithContext, Consume and
// Delivery.Ack.
type theirs struct{}

func (theirs) Name() string { return "amqp091-go" }

func (theirs) DialIdle(ctx context.Context, url string) (func(context.Context) error, error) {
	c, err := amqp091.Dial(url)
	if err != nil {
		return nil, err
	}
	if _, err := c.Channel(); err != nil {
		c.Close()
		return nil, err
	}
	return func(context.Context) error { return c.Close() }, nil
}

func (theirs) Dial(ctx context.Context, url string) (session, error) {
	c, err := amqp091.Dial(url)
	if err != nil {
		return nil, err
	}
	s := &theirsSession{c: c, url: url}
	blocked := c.NotifyBlocked(make(chan amqp091.Blocking, 4))
	// Owned by the session; exits when the connection ends (amqp091-go
	// closes the channel then).
	go func() {
		for b := range blocked {
			if b.Active {
				s.blocked.Store(true)
			}
		}
	}()
	return s, nil
}

type theirsSession struct {
	c       *amqp091.Connection
	url     string // for a second connection
	blocked atomic.Bool
}

func (s *theirsSession) Blocked() bool { return s.blocked.Load() }

var errNacked = errors.New("message nacked")

func (s *theirsSession) ServerVersion() string {
	v, _ := s.c.Properties["version"].(string)
	return v
}

func (s *theirsSession) Close(ctx context.Context) error { return s.c.Close() }

func (s *theirsSession) admin(f func(ch *amqp091.Channel) error) error {
	ch, err := s.c.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return f(ch)
}

func (s *theirsSession) Declare(ctx context.Context, queue string) error {
	return s.admin(func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare(queue, false, false, false, false, nil)
		return err
	})
}

func (s *theirsSession) Delete(ctx context.Context, queue string) error {
	return s.admin(func(ch *amqp091.Channel) error {
		if _, err := ch.QueuePurge(queue, false); err != nil {
			return err
		}
		_, err := ch.QueueDelete(queue, false, false, false)
		return err
	})
}

func (s *theirsSession) Preload(ctx context.Context, queue string, n int, body []byte) error {
	return s.admin(func(ch *amqp091.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return err
		}
		if err := theirsConfirmed(ctx, ch, queue, n, body, 1000); err != nil {
			return err
		}
		return theirsAwaitCount(ch, queue, n)
	})
}

// theirsAwaitCount polls the queue's message count with a passive declare
// on ch until it reaches n.
func theirsAwaitCount(ch *amqp091.Channel, queue string, n int) error {
	for {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			return err
		}
		if q.Messages >= n {
			return nil
		}
		time.Sleep(pollInterval)
	}
}

// theirsConfirmed publishes n messages with at most window confirmations
// outstanding, waiting for the oldest when the window is full.
func theirsConfirmed(ctx context.Context, ch *amqp091.Channel, queue string, n int, body []byte, window int) error {
	ring := make([]*amqp091.DeferredConfirmation, window)
	wait := func(dc *amqp091.DeferredConfirmation, i int) error {
		ack, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("confirm %d: %w", i, err)
		}
		if !ack {
			return fmt.Errorf("confirm %d: %w", i, errNacked)
		}
		return nil
	}
	for i := 0; i < n; i++ {
		slot := i % window
		if dc := ring[slot]; dc != nil {
			if err := wait(dc, i-window); err != nil {
				return err
			}
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, amqp091.Publishing{Body: body})
		if err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		ring[slot] = dc
	}
	for i := max(0, n-window); i < n; i++ {
		if err := wait(ring[i%window], i); err != nil {
			return err
		}
	}
	return nil
}

func (s *theirsSession) channel(confirm bool) (*amqp091.Channel, error) {
	ch, err := s.c.Channel()
	if err != nil {
		return nil, err
	}
	if confirm {
		if err := ch.Confirm(false); err != nil {
			ch.Close()
			return nil, err
		}
	}
	return ch, nil
}

func theirsCloser(ch *amqp091.Channel) func(context.Context) {
	return func(context.Context) { ch.Close() }
}

func (s *theirsSession) PreparePublish(ctx context.Context, queue string, n int, body []byte) (prepared, error) {
	ch, err := s.channel(false)
	if err != nil {
		return prepared{}, err
	}
	run := func(ctx context.Context) error {
		for i := 0; i < n; i++ {
			if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp091.Publishing{Body: body}); err != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
		}
		return theirsAwaitCount(ch, queue, n)
	}
	return prepared{Run: run, Cleanup: theirsCloser(ch)}, nil
}

func (s *theirsSession) PrepareConfirmed(ctx context.Context, queue string, n int, body []byte, window int) (prepared, error) {
	ch, err := s.channel(true)
	if err != nil {
		return prepared{}, err
	}
	run := func(ctx context.Context) error { return theirsConfirmed(ctx, ch, queue, n, body, window) }
	return prepared{Run: run, Cleanup: theirsCloser(ch)}, nil
}

func (s *theirsSession) PrepareWaitEach(ctx context.Context, queue string, n int, body []byte) (prepared, error) {
	ch, err := s.channel(true)
	if err != nil {
		return prepared{}, err
	}
	// A window of one: each publish waits for the previous one's confirm.
	run := func(ctx context.Context) error { return theirsConfirmed(ctx, ch, queue, n, body, 1) }
	return prepared{Run: run, Cleanup: theirsCloser(ch)}, nil
}

func (s *theirsSession) PrepareConsume(ctx context.Context, queue string, n, prefetch, ackEvery int) (prepared, error) {
	ch, err := s.channel(false)
	if err != nil {
		return prepared{}, err
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		ch.Close()
		return prepared{}, err
	}
	run := func(ctx context.Context) error {
		deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		for got := 0; got < n; {
			select {
			case d, ok := <-deliveries:
				if !ok {
					return fmt.Errorf("deliveries closed after %d", got)
				}
				got++
				if got%ackEvery == 0 || got == n {
					if err := d.Ack(ackEvery > 1); err != nil {
						return fmt.Errorf("ack %d: %w", got, err)
					}
				}
			case <-ctx.Done():
				return fmt.Errorf("after %d deliveries: %w", got, context.Cause(ctx))
			}
		}
		return nil
	}
	// Closing the channel ends the consumer.
	return prepared{Run: run, Cleanup: theirsCloser(ch)}, nil
}

func (s *theirsSession) PrepareConcurrent(ctx context.Context, queue string, n int, body []byte, channels, window int) (prepared, error) {
	chs := make([]*amqp091.Channel, 0, channels)
	cleanup := func(context.Context) {
		for _, ch := range chs {
			ch.Close()
		}
	}
	for range channels {
		ch, err := s.channel(true)
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
			wg.Go(func() { errs[i] = theirsConfirmed(ctx, ch, queue, split(n, channels, i), body, window) })
		}
		wg.Wait()
		return firstError(errs)
	}
	return prepared{Run: run, Cleanup: cleanup}, nil
}

func (s *theirsSession) PreparePaced(ctx context.Context, queue string, n int, body []byte, rate float64, prefetch int, lat *latencies) (prepared, error) {
	pub, err := s.channel(false)
	if err != nil {
		return prepared{}, err
	}
	cc, err := amqp091.Dial(s.url)
	if err != nil {
		pub.Close()
		return prepared{}, err
	}
	cleanup := func(context.Context) {
		pub.Close()
		cc.Close()
	}
	deliveries, err := theirsConsumer(cc, queue, prefetch, false)
	if err != nil {
		cleanup(ctx)
		return prepared{}, err
	}
	run := func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		consumed := make(chan error, 1)
		go func() { // owned by run, which waits for it
			err := theirsReceive(ctx, deliveries, n, func(d amqp091.Delivery) error {
				lat.add(sinceStamp(d.Body))
				return d.Ack(false)
			})
			if err != nil {
				cancel() // stops the publisher
			}
			consumed <- err
		}()
		err := pace(ctx, n, rate, func(i int) error {
			stamp(body)
			if err := pub.PublishWithContext(ctx, "", queue, false, false, amqp091.Publishing{Body: body}); err != nil {
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

// theirsConsumer opens a channel on c with a prefetch and starts a
// consumer of queue on it.
func theirsConsumer(c *amqp091.Connection, queue string, prefetch int, autoAck bool) (<-chan amqp091.Delivery, error) {
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	if prefetch > 0 {
		if err := ch.Qos(prefetch, 0, false); err != nil {
			return nil, err
		}
	}
	return ch.Consume(queue, "", autoAck, false, false, false, nil)
}

// theirsReceive hands n deliveries to got, in the calling goroutine.
func theirsReceive(ctx context.Context, deliveries <-chan amqp091.Delivery, n int, got func(d amqp091.Delivery) error) error {
	for i := 0; i < n; i++ {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("deliveries closed after %d", i)
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

func (s *theirsSession) PrepareRPC(ctx context.Context, queue, replyQueue string, n int, body []byte, lat *latencies) (prepared, error) {
	requester, err := s.channel(false)
	if err != nil {
		return prepared{}, err
	}
	responder, err := s.channel(false)
	if err != nil {
		requester.Close()
		return prepared{}, err
	}
	cleanup := func(context.Context) {
		requester.Close()
		responder.Close()
	}
	replies, err := requester.Consume(replyQueue, "", true, false, false, false, nil)
	if err != nil {
		cleanup(ctx)
		return prepared{}, err
	}
	requests, err := responder.Consume(queue, "", true, false, false, false, nil)
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
			err := theirsReceive(ctx, requests, n, func(d amqp091.Delivery) error {
				return responder.PublishWithContext(ctx, "", d.ReplyTo, false, false,
					amqp091.Publishing{CorrelationId: d.CorrelationId, Body: d.Body})
			})
			if err != nil {
				cancel() // the requester waits for a reply that will not come
			}
			served <- err
		}()
		err := theirsRequests(ctx, requester, replies, queue, replyQueue, ids, body, lat)
		if err != nil {
			cancel()
		}
		return errors.Join(err, <-served)
	}
	return prepared{Run: run, Cleanup: cleanup}, nil
}

// theirsRequests makes n round trips: publish a request, wait for its
// reply.
func theirsRequests(ctx context.Context, ch *amqp091.Channel, replies <-chan amqp091.Delivery, queue, replyQueue string, ids []string, body []byte, lat *latencies) error {
	for i := range ids {
		t0 := time.Now()
		err := ch.PublishWithContext(ctx, "", queue, false, false,
			amqp091.Publishing{ReplyTo: replyQueue, CorrelationId: ids[i], Body: body})
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		err = theirsReceive(ctx, replies, 1, func(d amqp091.Delivery) error {
			if d.CorrelationId != ids[i] {
				return fmt.Errorf("%w: got %q, want %q", errCorrelation, d.CorrelationId, ids[i])
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
