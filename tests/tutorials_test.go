package tests

// RabbitMQ's six tutorials (https://www.rabbitmq.com/tutorials), written
// with this package. Each tutorial is a set of functions, one per program
// of the original (a sender and a receiver, an emitter and a subscriber, a
// client and a server), which take the broker's URL and the names to use
// so that the tests below can run them side by side against a real broker.
// Receivers hand each message to a callback and return when it says stop
// (a real program would run until interrupted, with ctx).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// closeConn closes c with its own deadline, since the caller's ctx may be
// the reason we are returning.
func closeConn(c *amqp.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// dialChannel connects to url and opens a channel, the way every program
// of the tutorials starts; hangUp closes the connection.
func dialChannel(ctx context.Context, url string) (ch *amqp.Channel, hangUp func(), err error) {
	conn, err := amqp.Dial(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	ch, err = conn.Channel(ctx)
	if err != nil {
		closeConn(conn)
		return nil, nil, err
	}
	return ch, func() { closeConn(conn) }, nil
}

// consumeUntil hands each delivery of cons to handle until it returns
// false, the consumer ends, or ctx ends; it cancels the consumer.
func consumeUntil(ctx context.Context, cons *amqp.Consumer, handle func(amqp.Delivery) bool) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cons.Cancel(cctx)
	}()
	for {
		select {
		case d, ok := <-cons.Deliveries():
			if !ok {
				return cons.Err()
			}
			if !handle(d) {
				return nil
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// ---- 1. "Hello World!": one producer, one queue, one consumer.

// helloSend declares the queue and sends one message to it through the
// default exchange, which routes by queue name.
func helloSend(ctx context.Context, url, queue, text string) error {
	ch, hangUp, err := dialChannel(ctx, url)
	if err != nil {
		return err
	}
	defer hangUp()
	// Declaring is idempotent: whichever program starts first creates it.
	if _, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{AutoDelete: true}); err != nil {
		return err
	}
	_, err = ch.Publish(ctx, amqp.Publishing{RoutingKey: queue, Body: []byte(text),
		Properties: amqp.Properties{ContentType: "text/plain"}})
	return err // Close, deferred, sends what Publish handed over first
}

// helloReceive consumes from the queue with automatic acknowledgements.
func helloReceive(ctx context.Context, url, queue string, handle func(amqp.Delivery) bool) error {
	ch, hangUp, err := dialChannel(ctx, url)
	if err != nil {
		return err
	}
	defer hangUp()
	if _, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{AutoDelete: true}); err != nil {
		return err
	}
	cons, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{AutoAck: true})
	if err != nil {
		return err
	}
	return consumeUntil(ctx, cons, handle)
}

// ---- 2. Work queues: tasks shared among workers, acknowledged when done,
// one at a time per worker (fair dispatch), surviving a broker restart.

// newTask sends each task as a persistent message to a durable queue.
func newTask(ctx context.Context, url, queue string, tasks []string) error {
	ch, hangUp, err := dialChannel(ctx, url)
	if err != nil {
		return err
	}
	defer hangUp()
	if _, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{Durable: true}); err != nil {
		return err
	}
	// Confirms tell us the broker took responsibility for each task.
	if err := ch.Confirm(ctx); err != nil {
		return err
	}
	var confs []*amqp.Confirmation
	for _, task := range tasks {
		conf, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: queue, Body: []byte(task),
			Properties: amqp.Properties{DeliveryMode: amqp.Persistent, ContentType: "text/plain"}})
		if err != nil {
			return err
		}
		confs = append(confs, conf)
	}
	for _, conf := range confs {
		if err := conf.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// worker takes one task at a time (Qos 1), "works" for as many
// milliseconds as the task has dots, and acknowledges it only then, so a
// worker that dies loses no task.
func worker(ctx context.Context, url, queue string, done func(task string) bool) error {
	ch, hangUp, err := dialChannel(ctx, url)
	if err != nil {
		return err
	}
	defer hangUp()
	if _, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{Durable: true}); err != nil {
		return err
	}
	if err := ch.Qos(ctx, 1, false); err != nil {
		return err
	}
	cons, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
	if err != nil {
		return err
	}
	var ackErr error
	err = consumeUntil(ctx, cons, func(d amqp.Delivery) bool {
		time.Sleep(time.Duration(strings.Count(string(d.Body), ".")) * time.Millisecond)
		if ackErr = d.Ack(ctx, false); ackErr != nil {
			return false
		}
		return done(string(d.Body))
	})
	return errors.Join(err, ackErr)
}

// ---- 3. Publish/Subscribe: a fanout exchange copies every message to every
// bound queue; each subscriber has a queue of its own.

// emitLog publishes to the fanout exchange; the routing key is ignored.
func emitLog(ctx context.Context, url, exchange string, messages []string) error {
	ch, hangUp, err := dialChannel(ctx, url)
	if err != nil {
		return err
	}
	defer hangUp()
	if err := ch.ExchangeDeclare(ctx, exchange, "fanout", amqp.ExchangeOptions{AutoDelete: true}); err != nil {
		return err
	}
	for _, m := range messages {
		if _, err := ch.Publish(ctx, amqp.Publishing{Exchange: exchange, Body: []byte(m)}); err != nil {
			return err
		}
	}
	return nil
}

// subscribe binds a fresh, server-named, exclusive queue to exchange with
// each of the binding keys, calls ready, and hands over what arrives.
// Tutorials 3, 4 and 5 share it: only the exchange type and the keys
// differ.
func subscribe(ctx context.Context, url, exchange, kind string, keys []string, ready func(),
	handle func(amqp.Delivery) bool) error {
	ch, hangUp, err := dialChannel(ctx, url)
	if err != nil {
		return err
	}
	defer hangUp()
	if err := ch.ExchangeDeclare(ctx, exchange, kind, amqp.ExchangeOptions{AutoDelete: true}); err != nil {
		return err
	}
	q, err := ch.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true})
	if err != nil {
		return err
	}
	for _, key := range keys {
		if err := ch.QueueBind(ctx, q.Name, exchange, key, nil); err != nil {
			return err
		}
	}
	cons, err := ch.Consume(ctx, q.Name, amqp.ConsumeOptions{AutoAck: true})
	if err != nil {
		return err
	}
	ready()
	return consumeUntil(ctx, cons, handle)
}

// receiveLogs is tutorial 3's subscriber: every log message.
func receiveLogs(ctx context.Context, url, exchange string, ready func(), handle func(amqp.Delivery) bool) error {
	return subscribe(ctx, url, exchange, "fanout", []string{""}, ready, handle)
}

// ---- 4. Routing: a direct exchange routes by exact routing key; a
// subscriber binds one key per severity it wants.

// emitLogDirect publishes each message with its severity as routing key.
func emitLogDirect(ctx context.Context, url, exchange string, logs [][2]string) error {
	return emitWithKeys(ctx, url, exchange, "direct", logs)
}

// receiveLogsDirect receives the messages of the given severities.
func receiveLogsDirect(ctx context.Context, url, exchange string, severities []string, ready func(),
	handle func(amqp.Delivery) bool) error {
	return subscribe(ctx, url, exchange, "direct", severities, ready, handle)
}

// emitWithKeys publishes each {routing key, body} pair to exchange.
func emitWithKeys(ctx context.Context, url, exchange, kind string, msgs [][2]string) error {
	ch, hangUp, err := dialChannel(ctx, url)
	if err != nil {
		return err
	}
	defer hangUp()
	if err := ch.ExchangeDeclare(ctx, exchange, kind, amqp.ExchangeOptions{AutoDelete: true}); err != nil {
		return err
	}
	for _, m := range msgs {
		if _, err := ch.Publish(ctx, amqp.Publishing{Exchange: exchange, RoutingKey: m[0], Body: []byte(m[1])}); err != nil {
			return err
		}
	}
	return nil
}

// ---- 5. Topics: a topic exchange matches dotted routing keys against
// patterns, "*" standing for one word and "#" for zero or more.

// emitLogTopic publishes each message with its "<facility>.<severity>" key.
func emitLogTopic(ctx context.Context, url, exchange string, logs [][2]string) error {
	return emitWithKeys(ctx, url, exchange, "topic", logs)
}

// receiveLogsTopic receives the messages whose key matches a pattern.
func receiveLogsTopic(ctx context.Context, url, exchange string, patterns []string, ready func(),
	handle func(amqp.Delivery) bool) error {
	return subscribe(ctx, url, exchange, "topic", patterns, ready, handle)
}

// ---- 6. RPC: a client sends a request carrying a correlation id and a
// reply address; a server computes and replies there. The reply address is
// RabbitMQ's direct reply-to: no reply queue to declare.

// fib is the remote procedure, deliberately naive.
func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

// rpcServer answers requests from queue until serve returns false. Each
// request's body is n; the reply's is fib(n).
func rpcServer(ctx context.Context, url, queue string, ready func(), serve func(n int) bool) error {
	ch, hangUp, err := dialChannel(ctx, url)
	if err != nil {
		return err
	}
	defer hangUp()
	if _, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{AutoDelete: true}); err != nil {
		return err
	}
	if err := ch.Qos(ctx, 1, false); err != nil { // spread requests over servers
		return err
	}
	cons, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
	if err != nil {
		return err
	}
	ready()
	var replyErr error
	err = consumeUntil(ctx, cons, func(d amqp.Delivery) bool {
		n, err := strconv.Atoi(string(d.Body))
		if err != nil {
			// A malformed request: drop it rather than requeue it forever.
			replyErr = d.Reject(ctx, false)
			return replyErr == nil
		}
		_, replyErr = ch.Publish(ctx, amqp.Publishing{RoutingKey: d.ReplyTo, Body: []byte(strconv.Itoa(fib(n))),
			Properties: amqp.Properties{CorrelationID: d.CorrelationID}})
		if replyErr == nil {
			replyErr = d.Ack(ctx, false)
		}
		return replyErr == nil && serve(n)
	})
	return errors.Join(err, replyErr)
}

// directReplyTo is RabbitMQ's pseudo-queue for replies without a queue.
const directReplyTo = "amq.rabbitmq.reply-to"

// rpcCall calls fib(n) on a server listening to queue. The consumer on
// amq.rabbitmq.reply-to must exist, with automatic acknowledgements, before
// the request goes out on the same channel.
func rpcCall(ctx context.Context, url, queue string, n int) (int, error) {
	ch, done, err := dialChannel(ctx, url)
	if err != nil {
		return 0, err
	}
	defer done()
	replies, err := ch.Consume(ctx, directReplyTo, amqp.ConsumeOptions{AutoAck: true})
	if err != nil {
		return 0, err
	}
	corrID := fmt.Sprintf("fib-%d-%d", n, time.Now().UnixNano())
	// Mandatory: with no server listening, the request comes back rather
	// than waiting for a reply that never comes.
	returned := ch.Returns()
	if _, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: queue, Mandatory: true, Body: []byte(strconv.Itoa(n)),
		Properties: amqp.Properties{CorrelationID: corrID, ReplyTo: directReplyTo}}); err != nil {
		return 0, err
	}
	for {
		select {
		case d, ok := <-replies.Deliveries():
			if !ok {
				return 0, replies.Err()
			}
			if d.CorrelationID != corrID {
				continue // a late reply to an earlier call
			}
			return strconv.Atoi(string(d.Body))
		case r := <-returned:
			return 0, fmt.Errorf("rpc: request returned: %s", r.ReplyText)
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// ---- The tests that run them.

// runAll runs fns concurrently and returns their errors joined.
func runAll(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func TestTutorialHelloWorld(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url := brokerURL(t)
	queue := uniqueName(t, "hello")
	var got []string
	require.NoError(t, runAll(
		func() error {
			return helloReceive(ctx, url, queue, func(d amqp.Delivery) bool {
				got = append(got, string(d.Body))
				return len(got) < 2
			})
		},
		func() error { return helloSend(ctx, url, queue, "Hello World!") },
		func() error { return helloSend(ctx, url, queue, "Hello again!") },
	))
	slices.Sort(got)
	require.Equal(t, []string{"Hello World!", "Hello again!"}, got)
}

func TestTutorialWorkQueues(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url := brokerURL(t)
	queue := uniqueName(t, "task_queue")
	c := dial(t, amqp.Config{})
	cleanupQueue(t, c, queue)

	var tasks []string
	for i := range 20 {
		tasks = append(tasks, fmt.Sprintf("task %d%s", i, strings.Repeat(".", i%4)))
	}
	var mu sync.Mutex
	done := make(map[string]int) // task → times done
	byWorker := make([]int, 2)
	finish := func(w int) func(string) bool {
		return func(task string) bool {
			mu.Lock()
			defer mu.Unlock()
			done[task]++
			byWorker[w]++
			total := 0
			for _, n := range done {
				total += n
			}
			return total < len(tasks)
		}
	}
	// The tasks are queued first; the workers share them.
	require.NoError(t, newTask(ctx, url, queue, tasks))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	require.NoError(t, runAll(
		func() error {
			err := worker(wctx, url, queue, finish(0))
			cancel() // the other worker stops too once all are done
			return ignoreCancel(err)
		},
		func() error {
			err := worker(wctx, url, queue, finish(1))
			cancel()
			return ignoreCancel(err)
		},
	))
	for _, task := range tasks {
		require.Equal(t, 1, done[task], "task %q", task)
	}
	require.Len(t, done, len(tasks))
	t.Logf("tasks per worker: %v", byWorker)
	require.Zero(t, queueLen(t, channel(t, c), queue), "every task acknowledged")
}

// ignoreCancel treats a cancelled context as a normal stop.
func ignoreCancel(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// collector gathers the bodies a subscriber receives until it has n.
type collector struct {
	mu  sync.Mutex
	got []string
	n   int
}

func (c *collector) handle(d amqp.Delivery) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, string(d.Body))
	return len(c.got) < c.n
}

// subscribersThenEmit starts the subscribers, waits until each has bound
// its queue, then runs emit; it returns when all have finished.
func subscribersThenEmit(t *testing.T, subs []func(ready func()) error, emit func() error) {
	t.Helper()
	var ready sync.WaitGroup
	ready.Add(len(subs))
	fns := make([]func() error, 0, len(subs)+1)
	for _, sub := range subs {
		fns = append(fns, func() error {
			var once sync.Once
			err := sub(func() { once.Do(ready.Done) })
			once.Do(ready.Done) // failed before ready: do not hold up the emitter
			return err
		})
	}
	fns = append(fns, func() error {
		ready.Wait()
		return emit()
	})
	require.NoError(t, runAll(fns...))
}

func TestTutorialPublishSubscribe(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url := brokerURL(t)
	exchange := uniqueName(t, "logs")
	logs := []string{"info: started", "warning: disk 80% full", "error: disk full"}
	a, b := &collector{n: len(logs)}, &collector{n: len(logs)}
	subscribersThenEmit(t, []func(func()) error{
		func(ready func()) error { return receiveLogs(ctx, url, exchange, ready, a.handle) },
		func(ready func()) error { return receiveLogs(ctx, url, exchange, ready, b.handle) },
	}, func() error { return emitLog(ctx, url, exchange, logs) })
	require.Equal(t, logs, a.got, "every subscriber gets every message, in order")
	require.Equal(t, logs, b.got)
}

func TestTutorialRouting(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url := brokerURL(t)
	exchange := uniqueName(t, "direct_logs")
	logs := [][2]string{
		{"info", "user logged in"},
		{"error", "cannot write file"},
		{"warning", "slow response"},
		{"debug", "nobody listens for this"},
		{"error", "connection refused"},
	}
	errorsOnly := &collector{n: 2}
	console := &collector{n: 4}
	subscribersThenEmit(t, []func(func()) error{
		func(ready func()) error {
			return receiveLogsDirect(ctx, url, exchange, []string{"error"}, ready, errorsOnly.handle)
		},
		func(ready func()) error {
			return receiveLogsDirect(ctx, url, exchange, []string{"info", "warning", "error"}, ready, console.handle)
		},
	}, func() error { return emitLogDirect(ctx, url, exchange, logs) })
	require.Equal(t, []string{"cannot write file", "connection refused"}, errorsOnly.got)
	require.Equal(t, []string{"user logged in", "cannot write file", "slow response", "connection refused"}, console.got)
}

func TestTutorialTopics(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url := brokerURL(t)
	exchange := uniqueName(t, "topic_logs")
	logs := [][2]string{
		{"kern.critical", "kernel panic"},
		{"cron.info", "job ran"},
		{"auth.critical", "break-in attempt"},
		{"kern.info.verbose", "module loaded"},
		{"mail", "no severity"},
	}
	all := &collector{n: len(logs)}
	kern := &collector{n: 2}
	critical := &collector{n: 2}
	subscribersThenEmit(t, []func(func()) error{
		func(ready func()) error {
			return receiveLogsTopic(ctx, url, exchange, []string{"#"}, ready, all.handle)
		},
		func(ready func()) error {
			return receiveLogsTopic(ctx, url, exchange, []string{"kern.#"}, ready, kern.handle)
		},
		func(ready func()) error {
			return receiveLogsTopic(ctx, url, exchange, []string{"*.critical"}, ready, critical.handle)
		},
	}, func() error { return emitLogTopic(ctx, url, exchange, logs) })
	require.Len(t, all.got, len(logs))
	require.Equal(t, []string{"kernel panic", "module loaded"}, kern.got)
	require.Equal(t, []string{"kernel panic", "break-in attempt"}, critical.got)
}

func TestTutorialRPC(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url := brokerURL(t)
	queue := uniqueName(t, "rpc_queue")
	inputs := []int{0, 1, 2, 10, 20}

	served := 0
	ready := make(chan struct{})
	results := make(map[int]int)
	require.NoError(t, runAll(
		func() error {
			var once sync.Once
			err := rpcServer(ctx, url, queue, func() { once.Do(func() { close(ready) }) }, func(int) bool {
				served++
				return served < len(inputs)
			})
			once.Do(func() { close(ready) }) // failed before ready: do not hold up the client
			return err
		},
		func() error {
			select {
			case <-ready:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			for _, n := range inputs {
				r, err := rpcCall(ctx, url, queue, n)
				if err != nil {
					return err
				}
				results[n] = r
			}
			return nil
		},
	))
	require.Equal(t, map[int]int{0: 0, 1: 1, 2: 1, 10: 55, 20: 6765}, results)

	// With no server, the mandatory request comes back instead of hanging.
	_, err := rpcCall(ctx, url, uniqueName(t, "rpc_nobody"), 5)
	require.Error(t, err)
}
