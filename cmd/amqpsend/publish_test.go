package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqproto/amqproto/amqp"
)

// fakeConf is a confirmation the test settles.
type fakeConf struct {
	done chan struct{}
	err  error
	ret  *amqp.Return
}

func (c *fakeConf) Done() <-chan struct{} { return c.done }

func (c *fakeConf) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

func (c *fakeConf) Returned() *amqp.Return {
	select {
	case <-c.done:
		return c.ret
	default:
		return nil
	}
}

func (c *fakeConf) settle(err error) {
	c.err = err
	var re *amqp.ReturnError
	if errors.As(err, &re) {
		c.ret = &re.Return
	}
	close(c.done)
}

// fakeBroker stands in for a channel: it records every publish and settles
// it at once with outcome(n), or leaves it pending when outcome is nil.
type fakeBroker struct {
	mu        sync.Mutex
	published []amqp.Publishing
	confs     []*fakeConf
	outcome   func(n int) error
	failAt    int  // Publish fails for this message (0-based); -1: never
	noConfirm bool // return nil confirmations
}

func newFakeBroker(outcome func(int) error) *fakeBroker {
	return &fakeBroker{outcome: outcome, failAt: -1}
}

func (b *fakeBroker) publish(ctx context.Context, p amqp.Publishing) (confirmation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.published) == b.failAt {
		return nil, &amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED - test", Server: true, Connection: true}
	}
	p.Body = slices.Clone(p.Body)
	b.published = append(b.published, p)
	if b.noConfirm {
		return nil, nil
	}
	c := &fakeConf{done: make(chan struct{})}
	b.confs = append(b.confs, c)
	if b.outcome != nil {
		c.settle(b.outcome(len(b.published) - 1))
	}
	return c, nil
}

func (b *fakeBroker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.published)
}

func (b *fakeBroker) conf(n int) *fakeConf {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.confs[n]
}

func ackAll(int) error { return nil }

// sliceSource yields bodies as "message N".
func sliceSource(bodies ...string) source {
	s, err := fixedSource(bodies, nil)
	if err != nil {
		panic(err)
	}
	return s
}

func newTestPublisher(b *fakeBroker, window int) (*publisher, *[]failure) {
	var failures []failure
	var mu sync.Mutex
	p := &publisher{publish: b.publish, confirms: !b.noConfirm, window: window, progress: &progress{}, now: time.Now,
		template: amqp.Publishing{Exchange: "ex", RoutingKey: "rk", Mandatory: true,
			Properties: amqp.Properties{ContentType: "text/plain", Headers: amqp.Table{"n": int64(1)}}},
		onFailure: func(f failure) {
			mu.Lock()
			defer mu.Unlock()
			failures = append(failures, f)
		}}
	return p, &failures
}

func TestPublisherConfirmsAll(t *testing.T) {
	b := newFakeBroker(ackAll)
	p, failures := newTestPublisher(b, 2)
	ctx := context.Background()
	res := p.run(ctx, ctx, sliceSource("a", "bb", "ccc", "dddd", "eeeee"))
	require.True(t, res.complete)
	require.NoError(t, res.inputErr)
	require.NoError(t, res.publishErr)
	require.Equal(t, 5, res.sent)
	require.Equal(t, 5, res.confirmed)
	require.Equal(t, int64(15), res.sentBytes)
	require.Equal(t, int64(15), res.confirmedBytes)
	require.Len(t, res.latencies, 5)
	require.Zero(t, res.nacked+res.returned+res.lost+res.unconfirmed)
	require.Empty(t, *failures)
	require.Equal(t, int64(5), p.progress.settled.Load())
	for i, pub := range b.published {
		require.Equal(t, strings.Repeat(string(rune('a'+i)), i+1), string(pub.Body))
		require.Equal(t, "ex", pub.Exchange)
		require.Equal(t, "rk", pub.RoutingKey)
		require.True(t, pub.Mandatory)
		require.Equal(t, "text/plain", pub.ContentType)
		require.Equal(t, amqp.Table{"n": int64(1)}, pub.Headers)
	}
}

func TestPublisherFailures(t *testing.T) {
	closed := &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange 'ex' in vhost '/'", Server: true}
	outcomes := []error{
		nil,
		amqp.ErrNacked,
		&amqp.ReturnError{Return: amqp.Return{ReplyCode: amqp.NoRoute, ReplyText: "NO_ROUTE", Exchange: "ex", RoutingKey: "rk"}},
		closed,
		closed,
	}
	b := newFakeBroker(func(n int) error { return outcomes[n] })
	p, failures := newTestPublisher(b, 10)
	ctx := context.Background()
	res := p.run(ctx, ctx, sliceSource("1", "2", "3", "4", "5"))
	require.True(t, res.complete)
	require.Equal(t, 5, res.sent)
	require.Equal(t, 1, res.confirmed)
	require.Equal(t, 1, res.nacked)
	require.Equal(t, 1, res.returned)
	require.Equal(t, 2, res.lost)
	require.Len(t, res.latencies, 1, "latency of acked messages only")

	require.Len(t, *failures, 4)
	f := *failures
	require.Equal(t, failNacked, f[0].kind)
	require.Equal(t, "message 2", f[0].name)
	require.Equal(t, failReturned, f[1].kind)
	require.Equal(t, "NO_ROUTE", f[1].ret.ReplyText)
	require.Contains(t, f[1].String(), `312 NO_ROUTE: exchange "ex", routing key "rk"`)
	require.Equal(t, failLost, f[2].kind)
	require.ErrorIs(t, f[2].err, amqp.ErrNotFound)
	require.True(t, f[2].sample)
	require.False(t, f[3].sample, "the same channel error again")
	require.Contains(t, f[2].String(), "message 4 not confirmed: the broker closed the channel: 404 NOT_FOUND - no exchange")
}

// TestPublisherWindowAndInterrupt: at most window messages await their
// confirmation; after the publishing context ends, the publisher waits for
// them until the wait context ends, and counts those still pending as
// unconfirmed.
func TestPublisherWindowAndInterrupt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFakeBroker(nil) // nothing settles by itself
		p, _ := newTestPublisher(b, 3)
		ctx, interrupt := context.WithCancel(context.Background())
		waitCtx, giveUp := context.WithCancel(context.Background())
		var res result
		done := make(chan struct{})
		go func() {
			defer close(done)
			res = p.run(ctx, waitCtx, sliceSource("1", "2", "3", "4", "5"))
		}()
		synctest.Wait()
		require.Equal(t, 3, b.count(), "the window is full")

		b.conf(0).settle(nil)
		synctest.Wait()
		require.Equal(t, 4, b.count(), "a confirm frees a place")

		interrupt()
		synctest.Wait()
		require.Equal(t, 4, b.count(), "no publish after the interrupt")
		b.conf(1).settle(amqp.ErrNacked) // within the grace period
		synctest.Wait()
		giveUp()
		<-done

		require.False(t, res.complete)
		require.Equal(t, 4, res.sent)
		require.Equal(t, 1, res.confirmed)
		require.Equal(t, 1, res.nacked)
		require.Equal(t, 2, res.unconfirmed)
	})
}

func TestPublisherRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFakeBroker(ackAll)
		p, _ := newTestPublisher(b, 10)
		p.rate = 10
		ctx := context.Background()
		start := time.Now()
		res := p.run(ctx, ctx, sliceSource("1", "2", "3", "4", "5"))
		require.Equal(t, 5, res.confirmed)
		require.Equal(t, 400*time.Millisecond, time.Since(start), "5 messages at 10/s: the last one 0.4s after the first")
		require.Equal(t, 400*time.Millisecond, res.end.Sub(res.start))
	})
}

func TestPublisherTimeoutWhilePacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFakeBroker(ackAll)
		p, _ := newTestPublisher(b, 10)
		p.rate = 1
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		res := p.run(ctx, ctx, sliceSource("1", "2", "3", "4", "5"))
		require.False(t, res.complete)
		require.Equal(t, 2, res.sent)
		require.Equal(t, 2, res.confirmed)
	})
}

func TestPublisherPublishError(t *testing.T) {
	b := newFakeBroker(ackAll)
	b.failAt = 2
	p, _ := newTestPublisher(b, 10)
	ctx := context.Background()
	res := p.run(ctx, ctx, sliceSource("1", "2", "3", "4"))
	require.False(t, res.complete)
	require.Equal(t, 2, res.sent)
	require.Equal(t, 2, res.confirmed)
	require.ErrorContains(t, res.publishErr, "publish message 3: the broker closed the connection: 320 CONNECTION_FORCED - test")
}

func TestPublisherInputError(t *testing.T) {
	b := newFakeBroker(ackAll)
	p, _ := newTestPublisher(b, 10)
	ctx := context.Background()
	res := p.run(ctx, ctx, linesSource(ctx, &failingReader{data: "a\nb\n"}))
	require.False(t, res.complete)
	require.Equal(t, 2, res.sent)
	var ie *inputError
	require.ErrorAs(t, res.inputErr, &ie)
}

func TestPublisherNoConfirms(t *testing.T) {
	b := newFakeBroker(nil)
	b.noConfirm = true
	p, _ := newTestPublisher(b, 1)
	ctx := context.Background()
	res := p.run(ctx, ctx, sliceSource("1", "2", "3"))
	require.True(t, res.complete)
	require.Equal(t, 3, res.sent)
	require.Zero(t, res.confirmed)
	require.Equal(t, int64(3), p.progress.settled.Load())
}

func TestPacer(t *testing.T) {
	start := time.Unix(1000, 0)
	pc := pacer{rate: 4, start: start}
	require.Equal(t, time.Duration(0), pc.delay(0, start))
	require.Equal(t, 250*time.Millisecond, pc.delay(1, start))
	require.Equal(t, 150*time.Millisecond, pc.delay(1, start.Add(100*time.Millisecond)))
	require.Negative(t, pc.delay(1, start.Add(time.Second)), "behind schedule: no wait")
	require.Equal(t, time.Duration(0), pacer{start: start}.delay(100, start), "no rate: no wait")
}

// failingReader returns data, then an error.
type failingReader struct{ data string }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, errors.New("device gone")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func collect(t *testing.T, src source) (names, bodies []string, err error) {
	t.Helper()
	for m, e := range src {
		if e != nil {
			return names, bodies, e
		}
		names = append(names, m.name)
		bodies = append(bodies, string(m.body))
	}
	return names, bodies, nil
}

func TestLinesSource(t *testing.T) {
	ctx := context.Background()
	names, bodies, err := collect(t, linesSource(ctx, strings.NewReader("a\n\nb b\r\n\r\nlast")))
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b b", "last"}, bodies)
	require.Equal(t, []string{"line 1", "line 3", "line 5"}, names)

	_, bodies, err = collect(t, linesSource(ctx, strings.NewReader("")))
	require.NoError(t, err)
	require.Empty(t, bodies)

	long := strings.Repeat("x", 200<<10) // longer than the read buffer
	_, bodies, err = collect(t, linesSource(ctx, strings.NewReader(long+"\nend\n")))
	require.NoError(t, err)
	require.Equal(t, []string{long, "end"}, bodies)

	_, bodies, err = collect(t, linesSource(ctx, &failingReader{data: "a\n"}))
	require.Equal(t, []string{"a"}, bodies)
	var ie *inputError
	require.ErrorAs(t, err, &ie)

	// Stopping early lets the reader goroutine go (goleak checks).
	for range linesSource(ctx, strings.NewReader("1\n2\n3\n")) {
		break
	}
}

func TestLinesSourceCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, bodies, err := collect(t, linesSource(ctx, blockingReader{}))
	require.NoError(t, err)
	require.Empty(t, bodies)
}

func TestFixedSource(t *testing.T) {
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "one.json"), filepath.Join(dir, "two.bin")
	require.NoError(t, os.WriteFile(f1, []byte(`{"a":1}`+"\n"), 0o600))
	require.NoError(t, os.WriteFile(f2, []byte{0, 1, 2, 0xff}, 0o600))
	src, err := fixedSource([]string{"x", "y"}, []string{f1, f2})
	require.NoError(t, err)
	names, bodies, err := collect(t, src)
	require.NoError(t, err)
	require.Equal(t, []string{"message 1", "message 2", "file " + f1, "file " + f2}, names)
	require.Equal(t, []string{"x", "y", `{"a":1}` + "\n", "\x00\x01\x02\xff"}, bodies)

	_, err = fixedSource(nil, []string{filepath.Join(dir, "missing")})
	var ie *inputError
	require.ErrorAs(t, err, &ie)
}

func TestGeneratedSource(t *testing.T) {
	names, bodies, err := collect(t, generatedSource(3, 40))
	require.NoError(t, err)
	require.Equal(t, []string{"message 1", "message 2", "message 3"}, names)
	for _, b := range bodies {
		require.Len(t, b, 40)
	}
	_, bodies, _ = collect(t, generatedSource(2, 0))
	require.Equal(t, []string{"", ""}, bodies)
}
