package tests

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// largeBody fills buf with the body of message id, size bytes, and returns
// it: bytes that differ from their neighbours and between messages.
func largeBody(buf []byte, id string, size int) []byte {
	seed := 0
	for _, c := range id {
		seed = seed*31 + int(c)
	}
	b := buf[:size]
	for i := range b {
		b[i] = byte(i*7 + i>>9 + seed)
	}
	return b
}

// Large publishes (over frame_max, written from the caller's memory) and
// small ones, with confirms and without, and some whose context ends while
// they are written, all arrive byte for byte, although each publisher
// overwrites its one body buffer as soon as Publish returns.
func TestLargePublishesWithAReusedBuffer(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ctx := ctxT(t)
	setup := channel(t, c)
	q := exclusiveQueue(t, setup)
	sizes := []int{1 << 20, 300 << 10, 1 << 10, 200 << 10, 600 << 10, 0, 257 << 10}
	const each = 14

	var mu sync.Mutex
	sent := map[string]int{} // message id → body size, of the publishes accepted
	publishAll := func(name string, ch *amqp.Channel, timeout time.Duration) error {
		buf := make([]byte, 1<<20)
		var confs []*amqp.Confirmation
		for i := range each {
			id := fmt.Sprintf("%s-%d", name, i)
			size := sizes[i%len(sizes)]
			pctx, cancel := ctx, context.CancelFunc(func() {})
			if timeout > 0 {
				pctx, cancel = context.WithTimeout(ctx, time.Duration(i%3)*timeout)
			}
			conf, err := ch.Publish(pctx, amqp.Publishing{RoutingKey: q, Body: largeBody(buf, id, size),
				Properties: amqp.Properties{MessageID: id}})
			cancel()
			for j := range buf {
				buf[j] = 0xa5 // the caller's again
			}
			if err != nil && timeout > 0 {
				continue // not sent
			}
			if err != nil {
				return err
			}
			if conf != nil {
				confs = append(confs, conf)
			}
			mu.Lock()
			sent[id] = size
			mu.Unlock()
		}
		for _, conf := range confs {
			if err := conf.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, p := range []struct {
		name    string
		confirm bool
		timeout time.Duration
	}{{"confirmed", true, 0}, {"plain", false, 0}, {"cancelled", false, time.Millisecond}} {
		ch := channel(t, c)
		if p.confirm {
			require.NoError(t, ch.Confirm(ctx))
		}
		wg.Go(func() { errs <- publishAll(p.name, ch, p.timeout) })
	}
	wg.Wait()
	for range 3 {
		require.NoError(t, <-errs)
	}
	require.GreaterOrEqual(t, len(sent), 2*each)
	awaitQueueLen(t, setup, q, len(sent))

	cons, err := setup.Consume(ctx, q, amqp.ConsumeOptions{AutoAck: true})
	require.NoError(t, err)
	buf := make([]byte, 1<<20)
	for range len(sent) {
		d := waitFor(t, cons.Deliveries(), testTimeout, "delivery")
		size, ok := sent[d.MessageID]
		require.True(t, ok, "%s was not published, or twice", d.MessageID)
		delete(sent, d.MessageID)
		require.Equal(t, largeBody(buf, d.MessageID, size), d.Body, "%s", d.MessageID)
	}
}

// Large publishes stalled on a socket that is cut (written from their
// callers' memory, which the callers overwrite as soon as Publish returns)
// come out right: with Recovery.RepublishUnconfirmed each is published
// again after the recovery and acked; without it, each is acked or
// unknown. Every message consumed is intact. So too when the publishers
// give up while their bodies are stalled (Publish copies what is left):
// those that Publish accepted come out as above.
func TestLargePublishesStalledAtALoss(t *testing.T) {
	for _, tc := range []struct{ republish, giveUp bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
		republish := tc.republish
		t.Run(fmt.Sprintf("republish=%v,giveUp=%v", republish, tc.giveUp), func(t *testing.T) {
			p, u := proxied(t)
			c := dialURL(t, u, amqp.Config{ConnectionName: t.Name(), Dial: smallSendBuffer,
				Recovery: amqp.Recovery{RepublishUnconfirmed: republish}})
			ctx := ctxT(t)
			ch := confirmChannel(t, c)
			q := uniqueName(t, "q")
			cleanupQueue(t, c, q)
			_, err := ch.QueueDeclare(ctx, q, amqp.QueueOptions{Durable: true})
			require.NoError(t, err)

			const publishers, each = 3, 5
			type result struct {
				id   string
				conf *amqp.Confirmation
				err  error
			}
			returned := make(chan result, publishers*each)
			p.Blackhole(true) // the client's socket fills
			before := c.Stats().Published
			for i := range publishers {
				go func() {
					buf := make([]byte, 1<<20)
					for j := range each {
						id := fmt.Sprintf("%d-%d", i, j)
						pctx, cancel := ctx, context.CancelFunc(func() {})
						if tc.giveUp {
							pctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
						}
						conf, err := ch.Publish(pctx, amqp.Publishing{RoutingKey: q, Body: largeBody(buf, id, len(buf)),
							Properties: amqp.Properties{MessageID: id}})
						cancel()
						for k := range buf {
							buf[k] = 0x5a
						}
						returned <- result{id, conf, err}
					}
				}()
			}
			var results []result
			if tc.giveUp {
				// Each publisher gives up on what stalls: all return,
				// some with their bodies copied, before the cut.
				for range publishers * each {
					results = append(results, waitFor(t, returned, testTimeout, "a publish"))
				}
			}
			deadline := time.Now().Add(testTimeout)
			for c.Stats().Published < before+publishers {
				require.True(t, time.Now().Before(deadline), "nothing was handed to the socket")
				runtime.Gosched()
			}
			p.Cut()
			p.Blackhole(false)
			for len(results) < publishers*each {
				results = append(results, waitFor(t, returned, testTimeout, "a publish"))
			}

			acked := map[string]bool{}
			for _, r := range results {
				if tc.giveUp && r.err != nil {
					require.ErrorIs(t, r.err, context.DeadlineExceeded, r.id) // not sent
					continue
				}
				require.NoError(t, r.err, r.id)
				err := r.conf.Wait(ctx)
				if republish || err == nil {
					require.NoError(t, err, r.id)
					acked[r.id] = true
					continue
				}
				require.ErrorIs(t, err, amqp.ErrOutcomeUnknown, r.id)
			}

			cons, err := channel(t, c).Consume(ctx, q, amqp.ConsumeOptions{AutoAck: true})
			require.NoError(t, err)
			buf := make([]byte, 1<<20)
			for len(acked) > 0 {
				d := waitFor(t, cons.Deliveries(), testTimeout, "a delivery")
				require.Equal(t, largeBody(buf, d.MessageID, len(buf)), d.Body, d.MessageID)
				delete(acked, d.MessageID) // some may come twice
			}
		})
	}
}

// smallSendBuffer dials TCP with a small send buffer, so that a client
// whose peer stops reading stalls soon, with its bodies not yet written.
func smallSendBuffer(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return nc, nc.(*net.TCPConn).SetWriteBuffer(64 << 10)
}

// Over TLS nothing is lent: large bodies are copied, and arrive whole
// although the caller overwrites its buffer as soon as Publish returns.
func TestLargePublishesOverTLS(t *testing.T) {
	t.Parallel()
	c := dialURL(t, tlsURL(t, nil), amqp.Config{ConnectionName: t.Name(),
		TLS: &tls.Config{RootCAs: caPool(t), ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	ctx := ctxT(t)
	ch := confirmChannel(t, c)
	q := exclusiveQueue(t, ch)
	buf := make([]byte, 1<<20)
	sizes := map[string]int{"a": 1 << 20, "b": 256 << 10, "c": 600 << 10}
	var confs []*amqp.Confirmation
	for _, id := range []string{"a", "b", "c"} {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: largeBody(buf, id, sizes[id]),
			Properties: amqp.Properties{MessageID: id}})
		require.NoError(t, err)
		for k := range buf {
			buf[k] = 0x5a
		}
		confs = append(confs, conf)
	}
	for _, conf := range confs {
		require.NoError(t, conf.Wait(ctx))
	}
	for range sizes {
		d, ok, err := ch.Get(ctx, q, true)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, largeBody(buf, d.MessageID, sizes[d.MessageID]), d.Body, d.MessageID)
	}
}

// returnsWithin runs f and fails the test if it has not returned after d:
// for calls given no deadline, whose hanging is the bug looked for.
func returnsWithin(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// Goroutines sharing one confirm channel publish large bodies (lent) and
// small ones (copied), each overwriting its buffer as soon as Publish
// returns: every message arrives whole, each goroutine's in order.
func TestLargePublishesFromManyGoroutinesOnOneChannel(t *testing.T) {
	t.Parallel()
	c := dial(t, amqp.Config{ConnectionName: t.Name()})
	ch := confirmChannel(t, c)
	ctx := ctxT(t)
	setup := channel(t, c)
	q := exclusiveQueue(t, setup)
	sizes := []int{0, 100, 256 << 10, 1 << 20, 300<<10 + 7, 5000, 131072 - 8, 131072 * 2}
	const goroutines, each = 8, 12
	size := func(g, i int) int { return sizes[(g+i)%len(sizes)] }
	errs := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			buf := make([]byte, 1<<20)
			var confs []*amqp.Confirmation
			for i := range each {
				id := fmt.Sprintf("%d-%d", g, i)
				conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: q, Body: largeBody(buf, id, size(g, i)),
					Properties: amqp.Properties{MessageID: id, Headers: amqp.Table{"g": g, "i": i}}})
				for k := range buf {
					buf[k] = 0xee
				}
				if err != nil {
					errs <- err
					return
				}
				confs = append(confs, conf)
			}
			for _, conf := range confs {
				if err := conf.Wait(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range goroutines {
		require.NoError(t, <-errs)
	}
	cons, err := setup.Consume(ctx, q, amqp.ConsumeOptions{AutoAck: true})
	require.NoError(t, err)
	next := make([]int, goroutines)
	buf := make([]byte, 1<<20)
	for range goroutines * each {
		d := waitFor(t, cons.Deliveries(), testTimeout, "a delivery")
		g64, _ := amqp.Int64(d.Headers["g"])
		i64, _ := amqp.Int64(d.Headers["i"])
		g, i := int(g64), int(i64)
		require.Equal(t, next[g], i, "goroutine %d out of order", g)
		next[g]++
		require.Equal(t, largeBody(buf, d.MessageID, size(g, i)), d.Body, d.MessageID)
	}
}

// Goroutines publishing large bodies to a missing exchange, with no
// deadline: the broker closes the channel under them, and every Publish
// returns, nil or an error matching ErrChannelClosed; each Confirmation
// fails; the connection's other channels go on.
func TestLargePublishesToAMissingExchange(t *testing.T) {
	t.Parallel()
	for _, confirm := range []bool{false, true} {
		t.Run(fmt.Sprint("confirm=", confirm), func(t *testing.T) {
			c := dial(t, amqp.Config{ConnectionName: t.Name(), Dial: smallSendBuffer})
			ch := channel(t, c)
			var outcomes <-chan *amqp.Confirmation
			if confirm {
				require.NoError(t, ch.Confirm(ctxT(t)))
				outcomes = ch.Confirmations()
			}
			other := confirmChannel(t, c)
			q := tempQueue(t, other)
			missing := uniqueName(t, "missing")
			var mu sync.Mutex
			var confs []*amqp.Confirmation
			errs := make(chan error, 6*30)
			returnsWithin(t, 30*time.Second, "the publishers", func() {
				var wg sync.WaitGroup
				for g := range 6 {
					wg.Go(func() {
						buf := make([]byte, 1<<20)
						for i := range 30 {
							size := []int{1 << 20, 300 << 10, 100, 256 << 10}[(g+i)%4]
							conf, err := ch.Publish(context.Background(), amqp.Publishing{Exchange: missing, Body: buf[:size]})
							for k := range buf[:size] {
								buf[k] = byte(k)
							}
							if err != nil {
								errs <- err
								continue
							}
							if conf != nil {
								mu.Lock()
								confs = append(confs, conf)
								mu.Unlock()
							}
						}
					})
				}
				wg.Wait()
			})
			close(errs)
			for err := range errs {
				require.ErrorIs(t, err, amqp.ErrChannelClosed)
			}
			waitClosed(t, ch.Context().Done(), testTimeout, "the channel")
			require.ErrorIs(t, ch.Err(), amqp.ErrNotFound)
			_, err := ch.Publish(context.Background(), amqp.Publishing{Exchange: missing, Body: make([]byte, 1<<20)})
			require.ErrorIs(t, err, amqp.ErrNotFound)
			for _, conf := range confs {
				require.ErrorIs(t, conf.Wait(ctxT(t)), amqp.ErrNotFound)
			}
			if confirm {
				n := 0
				returnsWithin(t, testTimeout, "ranging over Confirmations", func() {
					for range outcomes {
						n++
					}
				})
				require.Equal(t, len(confs), n)
			}
			publishConfirmed(t, other, "", q, make([]byte, 1<<20))
			require.NoError(t, c.Context().Err())
		})
	}
}
