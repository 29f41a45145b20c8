package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amqproto/amqproto/amqp"
)

// confirmation is what the publisher needs of an *amqp.Confirmation; tests
// substitute their own.
type confirmation interface {
	Done() <-chan struct{}
	Err() error
	Returned() *amqp.Return
}

// publishFunc publishes one message. It returns a nil confirmation without
// publisher confirms.
type publishFunc func(ctx context.Context, p amqp.Publishing) (confirmation, error)

// channelPublish adapts ch.Publish, taking care not to turn a nil
// *amqp.Confirmation into a non-nil interface.
func channelPublish(ch *amqp.Channel) publishFunc {
	return func(ctx context.Context, p amqp.Publishing) (confirmation, error) {
		c, err := ch.Publish(ctx, p)
		if c == nil {
			return nil, err
		}
		return c, err
	}
}

// failureKind says how the broker failed a message.
type failureKind int

const (
	failNacked   failureKind = iota // basic.nack
	failReturned                    // basic.return of a mandatory publish
	failLost                        // the channel or connection ended before the confirm
)

// failure is one message the broker did not take.
type failure struct {
	name   string
	kind   failureKind
	err    error
	ret    *amqp.Return // failReturned only
	sample bool         // for reports: false for a repeat of the previous lost message's error
}

func (f failure) String() string {
	switch f.kind {
	case failNacked:
		return f.name + " nacked by the broker (it refused the message: a full queue with x-overflow=reject-publish, for example)"
	case failReturned:
		return f.name + " " + describeReturn(f.ret)
	}
	return f.name + " not confirmed: " + describe(f.err)
}

// describeReturn says why the broker returned a message, for example
// `returned by the broker: 312 NO_ROUTE: exchange "amq.direct", routing key "x"`.
func describeReturn(r *amqp.Return) string {
	if r == nil {
		return "returned by the broker"
	}
	ex := r.Exchange
	if ex == "" {
		ex = "(default)"
	}
	return fmt.Sprintf("returned by the broker: %d %s: exchange %q, routing key %q", uint16(r.ReplyCode), r.ReplyText, ex, r.RoutingKey)
}

// progress is what the progress bar shows; the publisher updates it, the
// bar's goroutine reads it.
type progress struct {
	sent, settled atomic.Int64
}

// publisher publishes the messages of a source on one channel, keeping at
// most window messages awaiting their confirmation.
type publisher struct {
	publish  publishFunc
	template amqp.Publishing // everything but the body
	confirms bool
	window   int
	rate     float64 // messages a second; 0: no limit
	// onFailure is called, from the goroutine collecting confirmations,
	// for every message the broker did not take.
	onFailure func(failure)
	progress  *progress
	now       func() time.Time
}

// result is the outcome of publisher.run.
type result struct {
	sent      int
	sentBytes int64
	// complete: the source ended and every message was handed to Publish.
	complete bool
	// inputErr ended the source early (exit status 1); publishErr is a
	// Publish that failed, the channel or connection having ended, and
	// publishCause the library's error.
	inputErr, publishErr, publishCause error
	start, end                         time.Time
	confirmStats
}

// confirmStats is what the collector learns; zero without confirms.
type confirmStats struct {
	confirmed              int
	confirmedBytes         int64
	nacked, returned, lost int
	unconfirmed            int // still pending when the wait ended
	latencies              []time.Duration
	lastSettled            time.Time
}

type inflight struct {
	name string
	conf confirmation
	size int
	t0   time.Time
}

// run publishes the messages of src until it ends or ctx ends, then waits
// for the outstanding confirmations until they are all settled or waitCtx
// ends; those still pending then count as unconfirmed. waitCtx must not
// end before ctx does.
func (p *publisher) run(ctx, waitCtx context.Context, src source) result {
	res := result{start: p.now()}
	var (
		pending = make(chan inflight, p.window)
		slots   = make(chan struct{}, p.window) // one per message awaiting its confirmation
		wg      sync.WaitGroup
		stats   confirmStats
	)
	if p.confirms {
		wg.Add(1)
		// The collector is owned by run, which waits for it: it exits once
		// pending is closed and every message in it is settled or given up
		// on (waitCtx ended).
		go func() {
			defer wg.Done()
			p.collect(waitCtx, pending, slots, &stats)
		}()
	}
	pace := pacer{rate: p.rate, start: res.start}
	res.complete = func() bool {
		for m, err := range src {
			if err != nil {
				res.inputErr = err
				return false
			}
			if ctx.Err() != nil {
				return false
			}
			if d := pace.delay(res.sent, p.now()); d > 0 && !sleep(ctx, d) {
				return false
			}
			if p.confirms {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return false
				}
			}
			pub := p.template
			pub.Body = m.body
			conf, err := p.publish(ctx, pub)
			if err != nil {
				if p.confirms {
					<-slots
				}
				if ctx.Err() == nil {
					res.publishErr = fmt.Errorf("publish %s: %s", m.name, describe(err))
					res.publishCause = err
				}
				return false
			}
			res.sent++
			res.sentBytes += int64(len(m.body))
			p.progress.sent.Add(1)
			if p.confirms {
				pending <- inflight{name: m.name, conf: conf, size: len(m.body), t0: p.now()} // never blocks: slots holds one per entry
			} else {
				p.progress.settled.Add(1)
			}
		}
		return ctx.Err() == nil
	}()
	close(pending)
	wg.Wait()
	res.confirmStats = stats
	res.end = p.now()
	if p.confirms && !stats.lastSettled.IsZero() {
		res.end = stats.lastSettled
	}
	return res
}

// collect settles the messages in pending in the order they were published,
// releasing a slot for each. It measures a message's confirm latency when it
// sees the confirmation; the broker confirms a queue's messages in order,
// so waiting in order adds little.
func (p *publisher) collect(ctx context.Context, pending <-chan inflight, slots <-chan struct{}, s *confirmStats) {
	var last error // the previous lost message's error, to mark repeats
	for f := range pending {
		settled := true
		select {
		case <-f.conf.Done():
		default:
			select {
			case <-f.conf.Done():
			case <-ctx.Done():
				settled = false
			}
		}
		<-slots
		if !settled {
			s.unconfirmed++
			continue
		}
		now := p.now()
		s.lastSettled = now
		p.progress.settled.Add(1)
		err := f.conf.Err()
		if err == nil {
			s.confirmed++
			s.confirmedBytes += int64(f.size)
			s.latencies = append(s.latencies, now.Sub(f.t0))
			continue
		}
		fl := failure{name: f.name, err: err}
		switch {
		case errors.Is(err, amqp.ErrReturned):
			fl.kind, fl.ret = failReturned, f.conf.Returned()
			s.returned++
		case errors.Is(err, amqp.ErrNacked):
			fl.kind = failNacked
			s.nacked++
		default:
			fl.kind = failLost
			s.lost++
		}
		// Every message lost to one closed channel fails with the same
		// error: report it once.
		fl.sample = fl.kind != failLost || last == nil || err.Error() != last.Error()
		if fl.kind == failLost {
			last = err
		}
		if p.onFailure != nil {
			p.onFailure(fl)
		}
	}
}

// pacer spaces publishes to rate messages a second from start; it does not
// sleep to catch up with itself, so short stalls are made up for.
type pacer struct {
	rate  float64
	start time.Time
}

// delay returns how long to wait before publishing message n (0-based).
func (pc pacer) delay(n int, now time.Time) time.Duration {
	if pc.rate <= 0 {
		return 0
	}
	after := float64(n) / pc.rate * float64(time.Second)
	if after >= math.MaxInt64 {
		return math.MaxInt64 // not in this lifetime; sleep until interrupted
	}
	return pc.start.Add(time.Duration(after)).Sub(now)
}

// sleep waits for d or until ctx ends, and reports whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
