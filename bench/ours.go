package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amqproto/amqproto/amqp"
)

// ours drives github.com/amqproto/amqproto/amqp.
type ours struct{}

func (ours) Name() string { return "ours" }

func (ours) Dial(ctx context.Context, url string) (session, error) {
	c, err := amqp.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	s := &oursSession{c: c}
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
					if err := d.Ack(ctx, true); err != nil {
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
