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

func (theirs) Dial(ctx context.Context, url string) (session, error) {
	c, err := amqp091.Dial(url)
	if err != nil {
		return nil, err
	}
	s := &theirsSession{c: c}
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
					if err := d.Ack(true); err != nil {
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
