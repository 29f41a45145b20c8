package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/stretchr/testify/require"
)

// recoveryWorld is what a user builds on one connection, with no reconnect
// code: a publisher with confirms that never stops, and manual-ack workers
// on a server-named exclusive queue and on a named durable queue, both
// bound to one exchange. A test breaks the connection under it and checks
// that everything goes on and nothing acked is lost.
type recoveryWorld struct {
	t        *testing.T
	c        *amqp.Conn
	events   <-chan amqp.RecoveryEvent
	exchange string
	named    string // durable, survives the fault
	private  string // server-named, exclusive: re-declared under a new name
	getQueue string // holds one message fetched with Get before the fault

	pub      *publisher
	named1   *recoveryWorker
	private1 *recoveryWorker
	stale    amqp.Delivery // fetched with Get before the fault, never acked
}

func newRecoveryWorld(t *testing.T, url string, cfg amqp.Config) *recoveryWorld {
	cfg.ConnectionName = t.Name()
	c := dialURL(t, url, cfg)
	w := &recoveryWorld{t: t, c: c, events: c.RecoveryEvents()}
	ctx := ctxT(t)
	setup, err := c.Channel(ctx)
	require.NoError(t, err)
	w.exchange = uniqueName(t, "x")
	require.NoError(t, setup.ExchangeDeclare(ctx, w.exchange, "direct", amqp.ExchangeOptions{}))
	cleanupExchange(t, c, w.exchange)
	w.named = uniqueName(t, "q")
	_, err = setup.QueueDeclare(ctx, w.named, amqp.QueueOptions{Durable: true})
	require.NoError(t, err)
	cleanupQueue(t, c, w.named)
	q, err := setup.QueueDeclare(ctx, "", amqp.QueueOptions{Exclusive: true})
	require.NoError(t, err)
	w.private = q.Name
	require.NoError(t, setup.QueueBind(ctx, w.named, w.exchange, "named", nil))
	require.NoError(t, setup.QueueBind(ctx, w.private, w.exchange, "private", nil))
	w.getQueue = uniqueName(t, "q")
	_, err = setup.QueueDeclare(ctx, w.getQueue, amqp.QueueOptions{Durable: true})
	require.NoError(t, err)
	cleanupQueue(t, c, w.getQueue)
	getConf, err := confirmChannel(t, c).Publish(ctx, amqp.Publishing{RoutingKey: w.getQueue,
		Properties: amqp.Properties{DeliveryMode: amqp.Persistent}, Body: []byte("get me")})
	require.NoError(t, err)
	require.NoError(t, getConf.Wait(ctx))

	work, err := c.Channel(ctx)
	require.NoError(t, err)
	require.NoError(t, work.Qos(ctx, 50, false))
	w.named1 = startRecoveryWorker(t, work, w.named)
	w.private1 = startRecoveryWorker(t, work, w.private)
	d, ok, err := work.Get(ctx, w.getQueue, false)
	require.NoError(t, err)
	require.True(t, ok)
	w.stale = d
	w.pub = startPublisher(t, confirmChannel(t, c), 0, func(i int) (string, string) {
		return w.exchange, [2]string{"named", "private"}[i%2]
	})
	return w
}

// breakAndCheck runs fault under the traffic, then checks the recovery.
// afterLoss, if any, runs once the client noticed the loss.
func (w *recoveryWorld) breakAndCheck(fault func(), afterLoss ...func()) {
	t := w.t
	w.pub.waitAcked(t, 50)
	fault()
	lost := w.waitEvent(amqp.Recovering, 30*time.Second)
	t.Logf("lost: %v", lost.Err)
	for _, f := range afterLoss {
		f()
	}
	renamed := w.waitEvent(amqp.QueueRenamed, 60*time.Second)
	require.Equal(t, w.private, renamed.OldName)
	require.NotEqual(t, w.private, renamed.NewName)
	require.Equal(t, renamed.NewName, w.c.QueueName(w.private), "QueueName follows the rename")
	require.Equal(t, w.named, w.c.QueueName(w.named))
	rec := w.waitEvent(amqp.Recovered, 60*time.Second)
	recoveredAt := time.Now()
	require.GreaterOrEqual(t, rec.Generation, uint64(2))

	// Publishing resumes, and reaches the renamed queue through its binding.
	acked := w.pub.acked()
	w.pub.waitAcked(t, acked+200)
	w.pub.stop(t)
	ctx := ctxT(t)

	// A delivery from before the loss cannot be acknowledged any more,
	// and comes back.
	err := w.stale.Ack(ctx, false)
	require.ErrorIs(t, err, amqp.ErrStaleDelivery)
	require.ErrorIs(t, err, amqp.ErrChannelClosed)
	again, ok, err := w.stale.Channel().Get(ctx, w.getQueue, true)
	require.NoError(t, err)
	require.True(t, ok, "the stale delivery's message is back in its queue")
	require.True(t, again.Redelivered)

	// Every acked message routed to the durable queue was consumed.
	w.named1.waitFor(t, w.pub.ackedWithKey("named"))
	// Those routed to the private queue after the recovery were too.
	w.private1.waitFor(t, w.pub.ackedWithKeyAfter("private", recoveredAt))
	require.NoError(t, w.c.Err())
	require.NoError(t, w.named1.cons.Err())
	require.NoError(t, w.private1.cons.Err())
	t.Logf("publishes: %d acked, %d outcome unknown, %d nacked; longest Publish call %v; %d stale acks",
		w.pub.acked(), w.pub.count(errUnknown), w.pub.count(amqp.ErrNacked), w.pub.longest, w.named1.staleAcks()+w.private1.staleAcks())
}

var errUnknown = amqp.ErrOutcomeUnknown

func (w *recoveryWorld) waitEvent(kind amqp.RecoveryEventKind, d time.Duration) amqp.RecoveryEvent {
	w.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-w.events:
			w.t.Logf("recovery event: %v gen=%d addr=%s err=%v", ev.Kind, ev.Generation, ev.Addr, ev.Err)
			if ev.Kind == kind {
				return ev
			}
			require.NotEqual(w.t, amqp.RecoveryFailed, ev.Kind)
		case <-deadline:
			w.t.Fatalf("no %v event after %v", kind, d)
		}
	}
}

// publisher publishes with confirms until stopped, and records the outcome
// of each publish exactly once.
type publisher struct {
	ch    *amqp.Channel
	route func(i int) (exchange, key string)
	pace  *time.Ticker // when set, one publish per tick
	quit  chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	outcomes map[string]outcome // by message ID
	longest  time.Duration
	pubErr   error
}

type outcome struct {
	key     string
	err     error
	settled int
	sent    time.Time // when its Publish call began
}

// startPublisher publishes as fast as its window allows, or one message
// per pace when pace is not 0.
func startPublisher(t *testing.T, ch *amqp.Channel, pace time.Duration, route func(i int) (exchange, key string)) *publisher {
	p := &publisher{ch: ch, route: route, quit: make(chan struct{}), done: make(chan struct{}),
		outcomes: make(map[string]outcome)}
	if pace > 0 {
		p.pace = time.NewTicker(pace)
		t.Cleanup(p.pace.Stop)
	}
	go p.run()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// publishWindow bounds the publishes awaiting their confirm, as a real
// publisher's window does.
const publishWindow = 256

func (p *publisher) run() {
	defer close(p.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	window := make(chan struct{}, publishWindow)
	for i := 0; ; i++ {
		select {
		case <-p.quit:
			return
		case window <- struct{}{}:
		}
		if p.pace != nil {
			<-p.pace.C
		}
		exchange, key := p.route(i)
		id := fmt.Sprintf("m%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		conf, err := p.ch.Publish(ctx, amqp.Publishing{Exchange: exchange, RoutingKey: key,
			Properties: amqp.Properties{MessageID: id, DeliveryMode: amqp.Persistent}, Body: []byte(id)})
		cancel()
		p.mu.Lock()
		p.longest = max(p.longest, time.Since(start))
		if err != nil {
			p.pubErr = err
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-conf.Done()
			p.settle(id, key, start, conf.Err())
			<-window
		}()
	}
}

func (p *publisher) settle(id, key string, sent time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.outcomes[id]
	o.key, o.err, o.sent = key, err, sent
	o.settled++
	p.outcomes[id] = o
}

func (p *publisher) stop(t *testing.T) {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	waitClosed(t, p.done, time.Minute, "publisher")
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NoError(t, p.pubErr, "no Publish call fails during a recovery")
	for id, o := range p.outcomes {
		require.Equal(t, 1, o.settled, "%s settled once", id)
		if o.err != nil && !errors.Is(o.err, amqp.ErrOutcomeUnknown) && !errors.Is(o.err, amqp.ErrNacked) {
			t.Fatalf("%s: unexpected outcome %v", id, o.err)
		}
		if errors.Is(o.err, amqp.ErrOutcomeUnknown) {
			require.ErrorIs(t, o.err, amqp.ErrConnectionClosed)
		}
	}
}

func (p *publisher) acked() int { return len(p.ackedWith(func(outcome) bool { return true })) }

func (p *publisher) count(target error) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, o := range p.outcomes {
		if errors.Is(o.err, target) {
			n++
		}
	}
	return n
}

func (p *publisher) ackedWith(f func(outcome) bool) map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make(map[string]bool)
	for id, o := range p.outcomes {
		if o.settled > 0 && o.err == nil && f(o) {
			ids[id] = true
		}
	}
	return ids
}

func (p *publisher) ackedWithKey(key string) map[string]bool {
	return p.ackedWith(func(o outcome) bool { return o.key == key })
}

// ackedWithKeyAfter lists the acked messages with key published after t.
func (p *publisher) ackedWithKeyAfter(key string, t time.Time) map[string]bool {
	return p.ackedWith(func(o outcome) bool { return o.key == key && o.sent.After(t) })
}

func (p *publisher) waitAcked(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for p.acked() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d publishes acked after a minute", p.acked(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recoveryWorker consumes a queue with manual acks and records what it got.
type recoveryWorker struct {
	cons *amqp.Consumer

	mu       sync.Mutex
	got      map[string]int
	stale    int
	changed  chan struct{}
	received int
}

func startRecoveryWorker(t *testing.T, ch *amqp.Channel, queue string) *recoveryWorker {
	cons, err := ch.Consume(ctxT(t), queue, amqp.ConsumeOptions{})
	require.NoError(t, err)
	w := &recoveryWorker{cons: cons, got: make(map[string]int), changed: make(chan struct{}, 1)}
	go func() {
		for d := range cons.Deliveries() {
			err := d.Ack(context.Background(), false)
			w.mu.Lock()
			w.got[d.MessageID]++
			w.received++
			if errors.Is(err, amqp.ErrStaleDelivery) {
				w.stale++
			}
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

func (w *recoveryWorker) staleAcks() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stale
}

// waitFor waits until every message of ids was received, failing when
// nothing new arrives for 30 s.
func (w *recoveryWorker) waitFor(t *testing.T, ids map[string]bool) {
	t.Helper()
	missing := make([]string, 0, len(ids))
	for id := range ids {
		missing = append(missing, id)
	}
	for {
		w.mu.Lock()
		missing = slices.DeleteFunc(missing, func(id string) bool { return w.got[id] > 0 })
		received := w.received
		w.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		select {
		case <-w.changed:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d acked messages never consumed (%d deliveries in all), such as %v", len(missing), received, missing[:min(5, len(missing))])
		}
	}
}

func testRecoveryAfterForcedClose(t *testing.T) {
	w := newRecoveryWorld(t, env(t, "AMQP_URL"), amqp.Config{})
	w.breakAndCheck(func() {
		rabbitmqctl(t, "close_all_connections", "amqproto test: forced close for recovery")
	})
}

// A broker restart (its data kept): the connection comes back by itself
// once the broker answers again.
func testRecoveryAfterBrokerRestart(t *testing.T) {
	w := newRecoveryWorld(t, env(t, "AMQP_URL"), amqp.Config{})
	w.breakAndCheck(func() {
		brokerScript(t, "down")
		brokerScript(t, "up", "AMQP_KEEP_DATA=1")
	})
}

// brokerScript runs scripts/rabbitmq.sh with the test's environment (which
// names the node the tests use) and extra variables.
func brokerScript(t *testing.T, cmd string, vars ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "../scripts/rabbitmq.sh", cmd)
	c.Env = append(os.Environ(), vars...)
	out, err := c.CombinedOutput()
	require.NoError(t, err, "rabbitmq.sh %s: %s", cmd, out)
}

// A cut link: both sockets reset under a live connection.
func TestRecoveryAfterProxyCut(t *testing.T) {
	p, u := proxied(t)
	w := newRecoveryWorld(t, u, amqp.Config{})
	w.breakAndCheck(p.Cut)
	require.GreaterOrEqual(t, p.Accepted(), 2)
}

// A blackholed link: nothing comes back, and only the heartbeat can tell.
// The new connection goes through once the link is back.
func TestRecoveryAfterBlackhole(t *testing.T) {
	p, u := proxied(t)
	w := newRecoveryWorld(t, u, amqp.Config{Heartbeat: time.Second, ConnectionTimeout: 5 * time.Second})
	w.breakAndCheck(func() { p.Blackhole(true) }, func() { p.Blackhole(false) })
}

// With RepublishUnconfirmed, the publishes in flight at the loss are
// published again after the recovery: no outcome is left unknown, and
// every acked message is consumed (some perhaps twice).
func TestRecoveryRepublishesUnconfirmed(t *testing.T) {
	p, u := proxied(t)
	w := newRecoveryWorld(t, u, amqp.Config{Recovery: amqp.Recovery{RepublishUnconfirmed: true}})
	w.breakAndCheck(p.Cut)
	require.Zero(t, w.pub.count(amqp.ErrOutcomeUnknown), "every unconfirmed publish was published again")
}
