package amqp

// Recovery against fake brokers, one per socket: the races and faults a
// real broker will not produce on demand (a loss at a chosen step of a
// restore, a silent broker, a refusal on the second dial).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// brokers gives each dial of a Conn a fresh net.Pipe to a fake broker of
// its own (one per generation), which answers every request as RabbitMQ
// would, unless a hook handles it, and logs every method it receives.
type brokers struct {
	t *testing.T

	mu      sync.Mutex
	log     []received
	changed chan struct{} // closed and replaced at each log entry and dial
	servers []net.Conn    // the broker's end of each dial, from 1
	byGen   map[int]*fakebroker.Broker
	dones   []<-chan struct{}
	dials   int

	// hook, when set, sees each method first; true means it handled it.
	hook func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool
	// script, when set and not nil for gen, replaces the default one.
	script func(gen int) func(b *fakebroker.Broker)
	// dialErr, when set, may refuse dial gen.
	dialErr func(gen int) error
}

type received struct {
	gen int
	ch  uint16
	m   sansio.Method
}

// recoveringConn dials a Conn over brokers with recovery on and no delay
// between attempts (unless cfg sets one).
func recoveringConn(t *testing.T, cfg Config, setup func(bs *brokers)) (*Conn, *brokers) {
	t.Helper()
	bs := &brokers{t: t, changed: make(chan struct{})}
	if setup != nil {
		setup(bs)
	}
	cfg.Dial = bs.dial
	if cfg.Recovery.Backoff == nil && cfg.Recovery.InitialDelay == 0 {
		cfg.Recovery.Backoff = func(int) time.Duration { return 0 }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialConfig(ctx, "amqp://fake/", cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
		bs.mu.Lock()
		for _, s := range bs.servers {
			s.Close()
		}
		dones := bs.dones
		bs.mu.Unlock()
		for _, d := range dones {
			<-d
		}
	})
	return c, bs
}

func (bs *brokers) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	bs.mu.Lock()
	bs.dials++
	gen := bs.dials
	close(bs.changed)
	bs.changed = make(chan struct{})
	bs.mu.Unlock()
	if bs.dialErr != nil {
		if err := bs.dialErr(gen); err != nil {
			return nil, err
		}
	}
	client, server := net.Pipe()
	script := bs.serve(gen)
	if bs.script != nil {
		if s := bs.script(gen); s != nil {
			script = s
		}
	}
	done := fakebroker.Start(bs.t, server, script)
	bs.mu.Lock()
	bs.servers = append(bs.servers, server)
	bs.dones = append(bs.dones, done)
	bs.mu.Unlock()
	return client, nil
}

// kill cuts the socket of generation gen, as a network failure would.
func (bs *brokers) kill(gen int) {
	bs.mu.Lock()
	s := bs.servers[gen-1]
	bs.mu.Unlock()
	s.Close()
}

// broker returns generation gen's broker, to send from the test (a
// net.Pipe takes concurrent writes whole).
func (bs *brokers) broker(gen int) *fakebroker.Broker {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.byGen[gen]
}

// serve is the default script: a handshake, then an answer to everything.
func (bs *brokers) serve(gen int) func(b *fakebroker.Broker) {
	return func(b *fakebroker.Broker) {
		bs.mu.Lock()
		if bs.byGen == nil {
			bs.byGen = map[int]*fakebroker.Broker{}
		}
		bs.byGen[gen] = b
		bs.mu.Unlock()
		b.Handshake(0)
		queues := 0
		for {
			f, err := b.Next()
			if err != nil {
				return
			}
			if f.Type != sansio.FrameMethod {
				continue
			}
			bs.record(received{gen: gen, ch: f.Channel, m: f.Method})
			if bs.hook != nil && bs.hook(gen, b, f) {
				continue
			}
			if _, ok := f.Method.(*sansio.ConnectionClose); ok {
				b.Send(0, &sansio.ConnectionCloseOk{})
				return
			}
			if m, ok := f.Method.(*sansio.QueueDeclare); ok && m.Queue == "" {
				queues++
				b.Send(f.Channel, &sansio.QueueDeclareOk{Queue: fmt.Sprintf("amq.gen-%d-%d", gen, queues)})
				continue
			}
			if reply := answer(f.Method); reply != nil {
				b.Send(f.Channel, reply)
			}
		}
	}
}

// answer is RabbitMQ's reply to m, nil for an asynchronous method.
func answer(m sansio.Method) sansio.Method {
	switch m := m.(type) {
	case *sansio.ChannelOpen:
		return &sansio.ChannelOpenOk{}
	case *sansio.ChannelClose:
		return &sansio.ChannelCloseOk{}
	case *sansio.ExchangeDeclare:
		return &sansio.ExchangeDeclareOk{}
	case *sansio.ExchangeDelete:
		return &sansio.ExchangeDeleteOk{}
	case *sansio.ExchangeBind:
		return &sansio.ExchangeBindOk{}
	case *sansio.ExchangeUnbind:
		return &sansio.ExchangeUnbindOk{}
	case *sansio.QueueDeclare:
		return &sansio.QueueDeclareOk{Queue: m.Queue}
	case *sansio.QueueBind:
		return &sansio.QueueBindOk{}
	case *sansio.QueueUnbind:
		return &sansio.QueueUnbindOk{}
	case *sansio.QueueDelete:
		return &sansio.QueueDeleteOk{}
	case *sansio.BasicQos:
		return &sansio.BasicQosOk{}
	case *sansio.BasicConsume:
		return &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag}
	case *sansio.BasicCancel:
		return &sansio.BasicCancelOk{ConsumerTag: m.ConsumerTag}
	case *sansio.ConfirmSelect:
		return &sansio.ConfirmSelectOk{}
	case *sansio.TxSelect:
		return &sansio.TxSelectOk{}
	case *sansio.TxCommit:
		return &sansio.TxCommitOk{}
	case *sansio.TxRollback:
		return &sansio.TxRollbackOk{}
	}
	return nil
}

func (bs *brokers) record(r received) {
	bs.mu.Lock()
	bs.log = append(bs.log, r)
	close(bs.changed)
	bs.changed = make(chan struct{})
	bs.mu.Unlock()
}

// received returns what generation gen received, in order.
func (bs *brokers) received(gen int) []received {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var out []received
	for _, r := range bs.log {
		if r.gen == gen {
			out = append(out, r)
		}
	}
	return out
}

// await waits until generation gen has received a method that f accepts,
// and returns it.
func (bs *brokers) await(gen int, f func(r received) bool) received {
	bs.t.Helper()
	timeout := time.After(5 * time.Second)
	for seen := 0; ; {
		bs.mu.Lock()
		log, changed := bs.log, bs.changed
		bs.mu.Unlock()
		for ; seen < len(log); seen++ {
			if log[seen].gen == gen && f(log[seen]) {
				return log[seen]
			}
		}
		select {
		case <-changed:
		case <-timeout:
			bs.t.Fatalf("generation %d did not receive the method awaited", gen)
		}
	}
}

// awaitDials waits until the Conn has dialed n times.
func (bs *brokers) awaitDials(n int) {
	bs.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		bs.mu.Lock()
		dials, changed := bs.dials, bs.changed
		bs.mu.Unlock()
		if dials >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			bs.t.Fatalf("%d dials, not %d", dials, n)
		}
	}
}

// is matches a received method by type.
func is[T sansio.Method](r received) bool {
	_, ok := r.m.(T)
	return ok
}

// A channel closed while the recovery reopens it is not left open on the
// new socket.
func TestRecoveryChannelClosedDuringItsRestoreIsClosedOnTheBroker(t *testing.T) {
	openSeen, release := make(chan uint16, 1), make(chan struct{})
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			if _, ok := f.Method.(*sansio.ChannelOpen); ok && gen == 2 {
				openSeen <- f.Channel
				<-release
				b.Send(f.Channel, &sansio.ChannelOpenOk{})
				return true
			}
			return false
		}
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	bs.kill(1)
	id := receive(t, openSeen)
	require.NoError(t, ch.Close(context.Background()))
	close(release)
	awaitEvent(t, c, Recovered)
	bs.await(2, func(r received) bool { return r.ch == id && is[*sansio.ChannelClose](r) })
}

// A server-named queue declared again by its name stays server-named in
// the record: recovery asks the broker for a new name (RabbitMQ refuses
// to declare an amq.* name).
func TestRecoveryServerNamedQueueDeclaredAgainByNameStaysServerNamed(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, nil)
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	q, err := ch.QueueDeclare(context.Background(), "", QueueOptions{Exclusive: true})
	require.NoError(t, err)
	_, err = ch.QueueDeclare(context.Background(), q.Name, QueueOptions{Exclusive: true})
	require.NoError(t, err)
	bs.kill(1)
	ev := awaitEvent(t, c, QueueRenamed)
	require.Equal(t, q.Name, ev.OldName)
	r := bs.await(2, is[*sansio.QueueDeclare])
	require.Empty(t, r.m.(*sansio.QueueDeclare).Queue)
}

// Close during a recovery's topology restore, on a broker that stopped
// answering, returns within its context.
func TestRecoveryCloseDuringRestoreOnASilentBrokerHonoursItsContext(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			return gen == 2 && !is[*sansio.ChannelOpen](received{m: f.Method}) // silent but for channel.open
		}
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDeclare(context.Background(), "x", "direct", ExchangeOptions{}))
	bs.kill(1)
	bs.await(2, is[*sansio.ExchangeDeclare])
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	closed := make(chan struct{})
	go func() {
		_ = c.Close(ctx)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		bs.kill(2) // let the test end
		<-closed
		t.Fatal("Close did not return within its context")
	}
}

// The first wait of a recovery is InitialDelay even above the default
// MaxDelay.
func TestRecoveryInitialDelayAboveDefaultMaxDelay(t *testing.T) {
	r := Recovery{InitialDelay: 5 * time.Second}
	require.GreaterOrEqual(t, r.delay(0), 5*time.Second*3/4)
}

// Delivery tags keep growing across a recovery; a delivery of the lost
// socket cannot be acknowledged, by Delivery.Ack or by its tag, and
// nothing reaches the new socket; a new one can.
func TestRecoveryStaleDeliveriesAndGrowingTags(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, nil)
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{Tag: "t"})
	require.NoError(t, err)
	bs.broker(1).Deliver(1, "t", 1, []byte("a"))
	bs.broker(1).Deliver(1, "t", 2, []byte("b"))
	old := receive(t, cons.Deliveries())
	require.EqualValues(t, 1, old.DeliveryTag)
	bs.kill(1)
	awaitEvent(t, c, Recovered)
	r := bs.await(2, is[*sansio.BasicConsume])
	bs.broker(2).Deliver(r.ch, "t", 1, []byte("c"))
	ctx := context.Background()
	d := receive(t, cons.Deliveries())
	if string(d.Body) == "b" { // read before the consumer dropped it
		require.ErrorIs(t, d.Ack(ctx, false), ErrStaleDelivery)
		d = receive(t, cons.Deliveries())
	}
	require.Equal(t, []byte("c"), d.Body)
	require.Greater(t, d.DeliveryTag, uint64(2))
	require.ErrorIs(t, old.Ack(ctx, false), ErrStaleDelivery)
	require.ErrorIs(t, old.Nack(ctx, false, true), ErrChannelClosed)
	require.ErrorIs(t, ch.Ack(ctx, 1, false), ErrStaleDelivery)
	require.ErrorIs(t, ch.Ack(ctx, 2, true), ErrStaleDelivery)
	require.NoError(t, d.Ack(ctx, false))
	ack := bs.await(2, is[*sansio.BasicAck])
	require.EqualValues(t, 1, ack.m.(*sansio.BasicAck).DeliveryTag)
	require.Len(t, filter(bs.received(2), is[*sansio.BasicAck]), 1)
	require.NoError(t, ch.Err())
}

func filter(rs []received, f func(received) bool) []received {
	var out []received
	for _, r := range rs {
		if f(r) {
			out = append(out, r)
		}
	}
	return out
}

// Publishes in flight at the loss settle once, with ErrOutcomeUnknown;
// publishing goes on after the recovery.
func TestRecoveryInFlightConfirmsSettleOutcomeUnknown(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, nil)
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(context.Background()))
	all := ch.Confirmations()
	var confs []*Confirmation
	for range 3 {
		conf, err := ch.Publish(context.Background(), Publishing{RoutingKey: "q", Body: []byte("x")})
		require.NoError(t, err)
		confs = append(confs, conf)
	}
	bs.await(1, func(r received) bool { return len(filter(bs.received(1), is[*sansio.BasicPublish])) == 3 })
	bs.broker(1).Send(1, &sansio.BasicAck{DeliveryTag: 1})
	require.NoError(t, confs[0].Wait(context.Background()))
	bs.kill(1)
	for _, conf := range confs[1:] {
		err := conf.Wait(context.Background())
		require.ErrorIs(t, err, ErrOutcomeUnknown)
		require.ErrorIs(t, err, ErrConnectionClosed)
		require.False(t, conf.Acked())
	}
	awaitEvent(t, c, Recovered)
	conf, err := ch.Publish(context.Background(), Publishing{RoutingKey: "q", Body: []byte("y")})
	require.NoError(t, err)
	r := bs.await(2, is[*sansio.BasicPublish])
	bs.broker(2).Send(r.ch, &sansio.BasicAck{DeliveryTag: 1})
	require.NoError(t, conf.Wait(context.Background()))
	got := map[*Confirmation]int{}
	for range 4 {
		got[receive(t, all)]++
	}
	for _, conf := range append(confs, conf) {
		require.Equal(t, 1, got[conf])
	}
}

// A synchronous call in flight at the loss fails with an error matching
// ErrConnectionClosed; one made during the recovery waits and succeeds.
func TestRecoverySyncCallsAtAndDuringTheLoss(t *testing.T) {
	gate := make(chan struct{})
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			return gen == 1 && is[*sansio.QueueDeclare](received{m: f.Method}) // never answered
		}
		bs.dialErr = func(gen int) error {
			if gen == 2 {
				<-gate
			}
			return nil
		}
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	inFlight := make(chan error, 1)
	go func() {
		_, err := ch.QueueDeclare(context.Background(), "q1", QueueOptions{})
		inFlight <- err
	}()
	bs.await(1, is[*sansio.QueueDeclare])
	bs.kill(1)
	require.ErrorIs(t, receive(t, inFlight), ErrConnectionClosed)
	awaitEvent(t, c, Recovering)
	during := make(chan error, 1)
	go func() {
		_, err := ch.QueueDeclare(context.Background(), "q2", QueueOptions{})
		during <- err
	}()
	close(gate)
	require.NoError(t, receive(t, during))
}

// After a recovery in the middle of a transaction, the next commit fails
// once with ErrTxLost; the one after goes to the broker.
func TestRecoveryTxCommitFailsOnceWithErrTxLost(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, nil)
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	require.NoError(t, ch.Tx(context.Background()))
	bs.kill(1)
	awaitEvent(t, c, Recovered)
	bs.await(2, is[*sansio.TxSelect])
	require.ErrorIs(t, ch.TxCommit(context.Background()), ErrTxLost)
	require.NoError(t, ch.TxCommit(context.Background()))
	require.Len(t, filter(bs.received(2), is[*sansio.TxCommit]), 1)
}

// Each consumer gets back the prefetch it started with.
func TestRecoveryPerConsumerQosRestored(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, nil)
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, ch.Qos(ctx, 5, false))
	_, err = ch.Consume(ctx, "a", ConsumeOptions{Tag: "a"})
	require.NoError(t, err)
	require.NoError(t, ch.Qos(ctx, 10, false))
	_, err = ch.Consume(ctx, "b", ConsumeOptions{Tag: "b"})
	require.NoError(t, err)
	require.NoError(t, ch.Qos(ctx, 7, false))
	bs.kill(1)
	awaitEvent(t, c, Recovered)
	var got []string
	for _, r := range bs.received(2) {
		switch m := r.m.(type) {
		case *sansio.BasicQos:
			got = append(got, fmt.Sprint("qos ", m.PrefetchCount))
		case *sansio.BasicConsume:
			got = append(got, "consume "+m.Queue)
		}
	}
	require.Equal(t, []string{"qos 5", "consume a", "qos 10", "consume b", "qos 7"}, got)
}

// A consumer cancelled during a recovery is not registered again.
func TestRecoveryConsumerCancelledDuringRecovery(t *testing.T) {
	gate := make(chan struct{})
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.dialErr = func(gen int) error {
			if gen == 2 {
				<-gate
			}
			return nil
		}
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{Tag: "gone"})
	require.NoError(t, err)
	_, err = ch.Consume(context.Background(), "q", ConsumeOptions{Tag: "kept"})
	require.NoError(t, err)
	bs.kill(1)
	awaitEvent(t, c, Recovering)
	require.NoError(t, cons.Cancel(context.Background()))
	requireClosed(t, cons.Deliveries())
	require.ErrorIs(t, cons.Err(), ErrConsumerCancelled)
	close(gate)
	awaitEvent(t, c, Recovered)
	consumes := filter(bs.received(2), is[*sansio.BasicConsume])
	require.Len(t, consumes, 1)
	require.Equal(t, "kept", consumes[0].m.(*sansio.BasicConsume).ConsumerTag)
}

// A consumer whose queue is gone ends with ErrConsumerNotRecovered; the
// channel and its other consumers are restored.
func TestRecoveryConsumerOnADeletedQueue(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			if m, ok := f.Method.(*sansio.BasicConsume); ok && gen == 2 && m.Queue == "gone" {
				b.Send(f.Channel, &sansio.ChannelClose{ReplyCode: uint16(NotFound), ReplyText: "NOT_FOUND"})
				return true
			}
			return false
		}
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	lost, err := ch.Consume(context.Background(), "gone", ConsumeOptions{})
	require.NoError(t, err)
	kept, err := ch.Consume(context.Background(), "here", ConsumeOptions{Tag: "kept"})
	require.NoError(t, err)
	bs.kill(1)
	ev := awaitEvent(t, c, TopologyFailed)
	require.Equal(t, EntityConsumer, ev.Entity.Kind)
	require.ErrorIs(t, ev.Err, ErrNotFound)
	awaitEvent(t, c, Recovered)
	requireClosed(t, lost.Deliveries())
	require.ErrorIs(t, lost.Err(), ErrConsumerNotRecovered)
	require.ErrorIs(t, lost.Err(), ErrNotFound)
	require.NoError(t, ch.Err())
	r := bs.await(2, func(r received) bool {
		m, ok := r.m.(*sansio.BasicConsume)
		return ok && m.Queue == "here" && r.ch == ch.ID()
	})
	bs.broker(2).Deliver(r.ch, "kept", 1, []byte("k"))
	require.Equal(t, []byte("k"), receive(t, kept.Deliveries()).Body)
}

// On a channel with a consumer of an auto-delete queue, the restore checks
// that every consumer's queue is there before it registers any: a
// consumer whose queue is gone no longer makes the broker close a channel
// the others were registered on, and delete their auto-delete queue with
// them.
func TestRecoveryConsumerOnADeletedQueueCostsTheOthersNothing(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			if m, ok := f.Method.(*sansio.QueueDeclare); ok && gen == 2 && m.Passive && m.Queue == "gone" {
				b.Send(f.Channel, &sansio.ChannelClose{ReplyCode: uint16(NotFound), ReplyText: "NOT_FOUND"})
				return true
			}
			return false
		}
	})
	ctx := context.Background()
	ch, err := c.Channel(ctx)
	require.NoError(t, err)
	_, err = ch.QueueDeclare(ctx, "qa", QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	kept, err := ch.Consume(ctx, "qa", ConsumeOptions{Tag: "kept"})
	require.NoError(t, err)
	lost, err := ch.Consume(ctx, "gone", ConsumeOptions{Tag: "lost"})
	require.NoError(t, err)

	bs.kill(1)
	awaitEvent(t, c, Recovered)
	require.ErrorIs(t, lost.Err(), ErrConsumerNotRecovered)
	require.ErrorIs(t, lost.Err(), ErrNotFound)
	require.NoError(t, kept.Err())
	var got []string
	for _, r := range bs.received(2) {
		switch m := r.m.(type) {
		case *sansio.ChannelClose:
			got = append(got, fmt.Sprintf("close %d", r.ch))
		case *sansio.BasicConsume:
			got = append(got, fmt.Sprintf("consume %d %s", r.ch, m.ConsumerTag))
		}
	}
	// Channel 1 declares the topology again.
	require.Equal(t, []string{"close 1", "consume 1 kept"}, got)
}

// A second loss during a restore is one failed attempt; the next one
// restores everything.
func TestRecoverySecondLossDuringRestore(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			if gen == 2 && is[*sansio.BasicConsume](received{m: f.Method}) {
				b.Conn().Close()
				return true
			}
			return false
		}
	})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(context.Background()))
	q, err := ch.QueueDeclare(context.Background(), "", QueueOptions{Exclusive: true})
	require.NoError(t, err)
	cons, err := ch.Consume(context.Background(), q.Name, ConsumeOptions{Tag: "t"})
	require.NoError(t, err)
	bs.kill(1)
	awaitEvent(t, c, AttemptFailed)
	ev := awaitEvent(t, c, Recovered)
	require.EqualValues(t, 2, ev.Generation)
	require.EqualValues(t, 2, c.Generation())
	r := bs.await(3, is[*sansio.BasicConsume])
	require.Equal(t, "amq.gen-3-1", r.m.(*sansio.BasicConsume).Queue)
	bs.broker(3).Deliver(r.ch, "t", 1, []byte("x"))
	require.Equal(t, []byte("x"), receive(t, cons.Deliveries()).Body)
	conf, err := ch.Publish(context.Background(), Publishing{RoutingKey: "q"})
	require.NoError(t, err)
	require.NotNil(t, conf, "confirm mode restored")
}

// When the policy gives up, the connection ends with a *RecoveryError
// and everything ends with it (goleak checks the goroutines).
func TestRecoveryGiveUp(t *testing.T) {
	refused := errors.New("refused")
	c, bs := recoveringConn(t, Config{Recovery: Recovery{MaxAttempts: 2, Backoff: func(int) time.Duration { return 0 }}},
		func(bs *brokers) {
			bs.dialErr = func(gen int) error {
				if gen > 1 {
					return refused
				}
				return nil
			}
		})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(context.Background()))
	confs := ch.Confirmations()
	returns := ch.Returns()
	blocked := c.Blocked()
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{})
	require.NoError(t, err)
	conf, err := ch.Publish(context.Background(), Publishing{RoutingKey: "q"})
	require.NoError(t, err)
	bs.kill(1)
	ev := awaitEvent(t, c, RecoveryFailed)
	var re *RecoveryError
	require.ErrorAs(t, ev.Err, &re)
	require.Equal(t, 2, re.Attempts)
	require.ErrorIs(t, re, refused)
	<-c.Context().Done()
	require.ErrorAs(t, c.Err(), &re)
	require.ErrorIs(t, c.Err(), ErrConnectionClosed)
	require.ErrorIs(t, conf.Wait(context.Background()), ErrOutcomeUnknown)
	requireClosed(t, cons.Deliveries())
	require.ErrorIs(t, cons.Err(), ErrConnectionClosed)
	requireClosed(t, confs)
	requireClosed(t, returns)
	requireClosed(t, blocked)
	require.ErrorIs(t, ch.Err(), ErrChannelClosed)
	_, err = ch.Publish(context.Background(), Publishing{})
	require.ErrorAs(t, err, &re)
	_, err = c.Channel(context.Background())
	require.ErrorAs(t, err, &re)
}

// A refusal of the credentials during a reconnect counts as a failed
// attempt.
func TestRecoveryRefusalDuringReconnectIsAnAttempt(t *testing.T) {
	c, bs := recoveringConn(t, Config{Recovery: Recovery{MaxAttempts: 1, Backoff: func(int) time.Duration { return 0 }}},
		func(bs *brokers) {
			bs.script = func(gen int) func(b *fakebroker.Broker) {
				if gen == 1 {
					return nil
				}
				return func(b *fakebroker.Broker) {
					header := make([]byte, 8)
					if _, err := b.Conn().Read(header); err != nil {
						return
					}
					b.Send(0, &sansio.ConnectionStart{VersionMajor: 0, VersionMinor: 9, Mechanisms: []byte("PLAIN"), Locales: []byte("en_US"),
						ServerProperties: sansio.Table{"capabilities": sansio.Table{"authentication_failure_close": true}}})
					fakebroker.Expect[*sansio.ConnectionStartOk](b)
					b.Send(0, &sansio.ConnectionClose{ReplyCode: uint16(AccessRefused), ReplyText: "ACCESS_REFUSED"})
					_, _ = b.Next()
				}
			}
		})
	bs.kill(1)
	ev := awaitEvent(t, c, AttemptFailed)
	require.ErrorIs(t, ev.Err, ErrAccessRefused)
	ev = awaitEvent(t, c, RecoveryFailed)
	require.ErrorIs(t, ev.Err, ErrAccessRefused)
}

// What never starts a recovery: a protocol error from the broker, and
// the client's own Close; a forced close does.
func TestRecoveryWhatStartsARecovery(t *testing.T) {
	for _, tc := range []struct {
		code    ReplyCode
		recover bool
	}{{UnexpectedFrame, false}, {CommandInvalid, false}, {NotImplemented, false}, {NotAllowed, false},
		{ConnectionForced, true}, {InternalError, true}, {ResourceError, true}} {
		t.Run(tc.code.String(), func(t *testing.T) {
			c, bs := recoveringConn(t, Config{}, nil)
			bs.broker(1).Send(0, &sansio.ConnectionClose{ReplyCode: uint16(tc.code), ReplyText: tc.code.String()})
			if tc.recover {
				awaitEvent(t, c, Recovered)
				require.NoError(t, c.Err())
				require.NoError(t, c.Context().Err())
				return
			}
			<-c.Context().Done()
			require.ErrorIs(t, c.Err(), &Error{Code: tc.code})
			bs.mu.Lock()
			require.Equal(t, 1, bs.dials)
			bs.mu.Unlock()
		})
	}
}

// Close during the wait before an attempt returns at once.
func TestRecoveryCloseDuringBackoff(t *testing.T) {
	c, bs := recoveringConn(t, Config{Recovery: Recovery{Backoff: func(int) time.Duration { return time.Hour }}}, nil)
	bs.kill(1)
	awaitEvent(t, c, Recovering)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = c.Close(ctx)
	require.NoError(t, ctx.Err())
	require.ErrorIs(t, c.Err(), ErrConnectionClosed)
}

// Close during a dial that hangs returns within its context.
func TestRecoveryCloseDuringDial(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.script = func(gen int) func(b *fakebroker.Broker) {
			if gen == 1 {
				return nil
			}
			return func(b *fakebroker.Broker) { _, _ = io.Copy(io.Discard, b.Conn()) } // silent
		}
	})
	bs.kill(1)
	bs.awaitDials(2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = c.Close(ctx)
	require.NoError(t, ctx.Err())
}

// A recovery logs in with the secret that UpdateSecret last set (an OAuth
// 2 token replaces the expired one it was dialed with).
func TestRecoveryUsesTheUpdatedSecret(t *testing.T) {
	responses := make(chan []byte, 2)
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			if is[*sansio.ConnectionUpdateSecret](received{m: f.Method}) {
				b.Send(0, &sansio.ConnectionUpdateSecretOk{})
				return true
			}
			return false
		}
		bs.script = func(gen int) func(b *fakebroker.Broker) {
			if gen == 1 {
				return nil
			}
			return func(b *fakebroker.Broker) {
				header := make([]byte, 8)
				if _, err := b.Conn().Read(header); err != nil {
					return
				}
				b.Send(0, &sansio.ConnectionStart{VersionMajor: 0, VersionMinor: 9, Mechanisms: []byte("PLAIN"), Locales: []byte("en_US")})
				// Not Expect: the attempts after the one the test reads
				// may meet the end of the test, and the client's Close.
				f, err := b.Next()
				if err != nil {
					return
				}
				if m, ok := f.Method.(*sansio.ConnectionStartOk); ok {
					select {
					case responses <- m.Response:
					default:
					}
				}
				b.Conn().Close()
			}
		}
	})
	require.NoError(t, c.UpdateSecret(context.Background(), []byte("new-token"), "refresh"))
	bs.kill(1)
	require.Equal(t, "\x00guest\x00new-token", string(receive(t, responses)))
}

// Deletions and unbindings leave the record; Filter leaves entities out,
// and a consumer it leaves out ends with ErrConsumerNotRecovered.
func TestRecoveryRecordDeletionsAndFilter(t *testing.T) {
	c, bs := recoveringConn(t, Config{Recovery: Recovery{Backoff: func(int) time.Duration { return 0 },
		Filter: func(e TopologyEntity) bool { return e.Name != "skipped" && e.Name != "skipped-consumer" }}}, nil)
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	ctx := context.Background()
	for _, x := range []string{"x1", "x2", "skipped"} {
		require.NoError(t, ch.ExchangeDeclare(ctx, x, "direct", ExchangeOptions{}))
	}
	for _, q := range []string{"q1", "q2", "skipped"} {
		_, err := ch.QueueDeclare(ctx, q, QueueOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, ch.QueueBind(ctx, "q1", "x1", "k1", nil))
	require.NoError(t, ch.QueueBind(ctx, "q1", "x1", "k2", nil))
	require.NoError(t, ch.QueueBind(ctx, "q2", "x1", "k", nil))
	require.NoError(t, ch.QueueBind(ctx, "q1", "x2", "k", nil))
	require.NoError(t, ch.QueueUnbind(ctx, "q1", "x1", "k2", nil))
	_, err = ch.QueueDelete(ctx, "q2", false, false)
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDelete(ctx, "x2", false))
	skipped, err := ch.Consume(ctx, "q1", ConsumeOptions{Tag: "skipped-consumer"})
	require.NoError(t, err)
	bs.kill(1)
	awaitEvent(t, c, Recovered)
	require.Equal(t, []string{"exchange x1", "queue q1", "bind q1 x1 k1"}, redeclared(bs.received(2)))
	requireClosed(t, skipped.Deliveries())
	require.ErrorIs(t, skipped.Err(), ErrConsumerNotRecovered)
}

// What the broker deletes by itself leaves the record too: an auto-delete
// queue once the connection's last consumer of it is gone (cancelled, or
// its channel closed), then an auto-delete exchange once its last binding
// went with it. A recovery declaring them again would leave them on the
// broker for ever.
func TestRecoveryForgetsWhatTheBrokerAutoDeleted(t *testing.T) {
	c, bs := recoveringConn(t, Config{Recovery: Recovery{Backoff: func(int) time.Duration { return 0 }}}, nil)
	ctx := context.Background()
	ch, err := c.Channel(ctx)
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDeclare(ctx, "xa", "fanout", ExchangeOptions{AutoDelete: true}))
	require.NoError(t, ch.ExchangeDeclare(ctx, "xkeep", "direct", ExchangeOptions{AutoDelete: true}))
	for _, q := range []string{"qa", "qb"} {
		_, err := ch.QueueDeclare(ctx, q, QueueOptions{AutoDelete: true})
		require.NoError(t, err)
	}
	_, err = ch.QueueDeclare(ctx, "q", QueueOptions{})
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(ctx, "qa", "xa", "", nil))
	require.NoError(t, ch.QueueBind(ctx, "q", "xkeep", "k", nil))
	require.NoError(t, ch.QueueBind(ctx, "qb", "xkeep", "k", nil))

	first, err := ch.Consume(ctx, "qa", ConsumeOptions{})
	require.NoError(t, err)
	other, err := c.Channel(ctx)
	require.NoError(t, err)
	second, err := other.Consume(ctx, "qa", ConsumeOptions{})
	require.NoError(t, err)
	third, err := c.Channel(ctx)
	require.NoError(t, err)
	_, err = third.Consume(ctx, "qb", ConsumeOptions{})
	require.NoError(t, err)

	require.NoError(t, first.Cancel(ctx))
	require.True(t, c.topo.autoDeleteQueue("qa"), "another consumer keeps qa")
	require.NoError(t, second.Cancel(ctx))
	require.NoError(t, third.Close(ctx))
	require.Eventually(t, func() bool { return !c.topo.autoDeleteQueue("qb") }, 5*time.Second, time.Millisecond,
		"qb is forgotten once the channel of its consumer closed")

	bs.kill(1)
	awaitEvent(t, c, Recovered)
	require.Equal(t, []string{"exchange xkeep", "queue q", "bind q xkeep k"}, redeclared(bs.received(2)))
}

// The record follows the broker over exchange-to-exchange bindings (as
// RabbitMQ 3.x does, checked against it): only the source of a binding
// that goes is auto-deleted, and deletions cascade, a queue's taking the
// auto-delete exchange bound to it, whose own going takes the auto-delete
// exchange bound to that.
func TestRecoveryForgetsAutoDeletedExchangesAsTheBrokerDoes(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, nil)
	ctx := context.Background()
	ch, err := c.Channel(ctx)
	require.NoError(t, err)
	declare := func(name string, autoDelete bool) {
		require.NoError(t, ch.ExchangeDeclare(ctx, name, "fanout", ExchangeOptions{AutoDelete: autoDelete}))
	}
	// Unbound: the source goes, not the destination.
	declare("s-unbound", true)
	declare("d-unbound", true)
	require.NoError(t, ch.ExchangeBind(ctx, "d-unbound", "s-unbound", "", nil))
	require.NoError(t, ch.ExchangeUnbind(ctx, "d-unbound", "s-unbound", "", nil))
	// A cascade from a queue's deletion.
	declare("s-cascade", true)
	declare("d-cascade", true)
	_, err = ch.QueueDeclare(ctx, "q-cascade", QueueOptions{})
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeBind(ctx, "d-cascade", "s-cascade", "", nil))
	require.NoError(t, ch.QueueBind(ctx, "q-cascade", "d-cascade", "", nil))
	_, err = ch.QueueDelete(ctx, "q-cascade", false, false)
	require.NoError(t, err)
	// The destination deleted: its source goes.
	declare("s-dest-deleted", true)
	declare("d-dest-deleted", false)
	require.NoError(t, ch.ExchangeBind(ctx, "d-dest-deleted", "s-dest-deleted", "", nil))
	require.NoError(t, ch.ExchangeDelete(ctx, "d-dest-deleted", false))
	// The source deleted: an auto-delete destination stays.
	declare("s-source-deleted", false)
	declare("d-source-deleted", true)
	require.NoError(t, ch.ExchangeBind(ctx, "d-source-deleted", "s-source-deleted", "", nil))
	require.NoError(t, ch.ExchangeDelete(ctx, "s-source-deleted", false))

	bs.kill(1)
	awaitEvent(t, c, Recovered)
	require.Equal(t, []string{"exchange d-unbound", "exchange d-source-deleted"}, redeclared(bs.received(2)))
}

// An empty queue name means the queue last declared on the channel, as
// the broker takes it; the record names that queue, so that a recovery
// neither binds nor consumes from whatever queue its own channel declared
// last, nor keeps a queue deleted by the shortcut, nor forgets an
// auto-delete queue a consumer of the shortcut still uses.
func TestRecoveryRecordsTheQueueTheEmptyNameMeant(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, nil)
	ctx := context.Background()
	ch, err := c.Channel(ctx)
	require.NoError(t, err)
	other, err := c.Channel(ctx)
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDeclare(ctx, "x", "direct", ExchangeOptions{}))
	_, err = ch.QueueDeclare(ctx, "qa", QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	named, err := ch.Consume(ctx, "qa", ConsumeOptions{Tag: "named"})
	require.NoError(t, err)
	_, err = ch.Consume(ctx, "", ConsumeOptions{Tag: "shortcut"})
	require.NoError(t, err)
	require.NoError(t, named.Cancel(ctx))

	_, err = ch.QueueDeclare(ctx, "qb", QueueOptions{})
	require.NoError(t, err)
	_, err = other.QueueDeclare(ctx, "qc", QueueOptions{})
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(ctx, "", "x", "", nil)) // the broker binds qb with key qb
	_, err = other.QueueDeclare(ctx, "qd", QueueOptions{})
	require.NoError(t, err)
	_, err = other.QueueDelete(ctx, "", false, false)
	require.NoError(t, err)

	bs.kill(1)
	awaitEvent(t, c, Recovered)
	require.Equal(t, []string{"exchange x", "queue qa", "queue qb", "queue qc", "bind qb x qb", "consume shortcut"},
		redeclared(bs.received(2)))
	consumes := filter(bs.received(2), is[*sansio.BasicConsume])
	require.Equal(t, "qa", consumes[0].m.(*sansio.BasicConsume).Queue)
}

// A consumer left out by Recovery.Filter, or cancelled while its channel
// is restored, does not make the restore close the channel its other
// consumers were just registered on and start again: the broker would
// delete an auto-delete queue with its last consumer there, and the second
// registration would find it gone.
func TestRecoveryLeavingAConsumerOutKeepsTheOthersRegistrations(t *testing.T) {
	c, bs := recoveringConn(t, Config{Recovery: Recovery{Filter: func(e TopologyEntity) bool {
		return e.Kind != EntityConsumer || e.Name != "skipped"
	}}}, nil)
	ctx := context.Background()
	ch, err := c.Channel(ctx)
	require.NoError(t, err)
	_, err = ch.QueueDeclare(ctx, "qa", QueueOptions{AutoDelete: true})
	require.NoError(t, err)
	kept, err := ch.Consume(ctx, "qa", ConsumeOptions{Tag: "kept"})
	require.NoError(t, err)
	skipped, err := ch.Consume(ctx, "qa", ConsumeOptions{Tag: "skipped"})
	require.NoError(t, err)

	bs.kill(1)
	awaitEvent(t, c, Recovered)
	require.ErrorIs(t, skipped.Err(), ErrConsumerNotRecovered)
	require.NoError(t, kept.Err())
	var got []string
	for _, r := range bs.received(2) {
		switch m := r.m.(type) {
		case *sansio.ChannelOpen:
			got = append(got, fmt.Sprintf("open %d", r.ch))
		case *sansio.ChannelClose:
			got = append(got, fmt.Sprintf("close %d", r.ch))
		case *sansio.BasicConsume:
			got = append(got, fmt.Sprintf("consume %d %s", r.ch, m.ConsumerTag))
		}
	}
	// Channel 1 declares the topology again.
	require.Equal(t, []string{"open 1", "close 1", "open 1", "consume 1 kept"}, got)
}

// An auto-delete queue stays in the record while a Consume of it is in
// flight when its last listed consumer goes: the broker may have taken the
// new consumer first and kept the queue for it, and forgetting it would
// leave that consumer without its queue after a recovery. A Consume that
// then fails lets the queue go.
func TestRecoveryKeepsAnAutoDeleteQueueWhileAConsumeOfItIsInFlight(t *testing.T) {
	held := make(chan fakebroker.Frame, 2)
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			m, ok := f.Method.(*sansio.BasicConsume)
			if gen == 1 && ok && m.ConsumerTag != "first" {
				held <- f // answered by the test
				return true
			}
			return false
		}
	})
	ctx := context.Background()
	ch, err := c.Channel(ctx)
	require.NoError(t, err)
	for _, q := range []string{"qa", "qb"} {
		_, err := ch.QueueDeclare(ctx, q, QueueOptions{AutoDelete: true})
		require.NoError(t, err)
	}
	first, err := ch.Consume(ctx, "qa", ConsumeOptions{Tag: "first"})
	require.NoError(t, err)
	other, err := c.Channel(ctx)
	require.NoError(t, err)
	type consumed struct {
		c   *Consumer
		err error
	}
	results := make(chan consumed, 1)
	go func() {
		cons, err := other.Consume(ctx, "qa", ConsumeOptions{Tag: "second"})
		results <- consumed{cons, err}
	}()
	f := receive(t, held)
	require.NoError(t, first.Cancel(ctx))
	bs.broker(1).Send(f.Channel, &sansio.BasicConsumeOk{ConsumerTag: "second"})
	r := receive(t, results)
	require.NoError(t, r.err)
	require.True(t, c.topo.autoDeleteQueue("qa"), "qa was forgotten while the broker kept it for its new consumer")

	// The same race where the broker had deleted the queue: the Consume
	// fails, and the queue goes.
	third, err := c.Channel(ctx)
	require.NoError(t, err)
	last, err := ch.Consume(ctx, "qb", ConsumeOptions{Tag: "first"})
	require.NoError(t, err)
	go func() {
		cons, err := third.Consume(ctx, "qb", ConsumeOptions{Tag: "third"})
		results <- consumed{cons, err}
	}()
	f = receive(t, held)
	require.NoError(t, last.Cancel(ctx))
	bs.broker(1).Send(f.Channel, &sansio.ChannelClose{ReplyCode: uint16(sansio.NotFound), ReplyText: "NOT_FOUND - no queue 'qb'"})
	r = receive(t, results)
	require.ErrorIs(t, r.err, ErrNotFound)
	require.Eventually(t, func() bool { return !c.topo.autoDeleteQueue("qb") }, 5*time.Second, time.Millisecond,
		"qb stayed in the record after the broker deleted it")

	bs.kill(1)
	awaitEvent(t, c, Recovered)
	require.Equal(t, []string{"queue qa", "consume second"}, redeclared(bs.received(2)))
}

// redeclared lists the declarations, bindings and consumers among what a
// recovery sent, in order.
func redeclared(rs []received) []string {
	var got []string
	for _, r := range rs {
		switch m := r.m.(type) {
		case *sansio.ExchangeDeclare:
			got = append(got, "exchange "+m.Exchange)
		case *sansio.QueueDeclare:
			if !m.Passive { // the restore's check that a consumer's queue is there
				got = append(got, "queue "+m.Queue)
			}
		case *sansio.QueueBind:
			got = append(got, "bind "+m.Queue+" "+m.Exchange+" "+m.RoutingKey)
		case *sansio.BasicConsume:
			got = append(got, "consume "+m.ConsumerTag)
		}
	}
	return got
}

// RecoveryEvents never blocks the recovery: beyond its buffer the oldest
// events are dropped.
func TestRecoveryEventsDropTheOldest(t *testing.T) {
	c, _ := recoveringConn(t, Config{}, nil)
	for i := range recoveryEventBuffer + 10 {
		c.emit(RecoveryEvent{Attempt: i})
	}
	require.Len(t, c.RecoveryEvents(), recoveryEventBuffer)
	require.Equal(t, 10, (<-c.RecoveryEvents()).Attempt)
}

// Conn.Channel during a recovery waits for it, and the channel it opens
// is on the new socket.
func TestRecoveryChannelOpenedDuringRecovery(t *testing.T) {
	gate := make(chan struct{})
	c, bs := recoveringConn(t, Config{}, func(bs *brokers) {
		bs.dialErr = func(gen int) error {
			if gen == 2 {
				<-gate
			}
			return nil
		}
	})
	bs.kill(1)
	awaitEvent(t, c, Recovering)
	opened := make(chan *Channel, 1)
	go func() {
		ch, err := c.Channel(context.Background())
		require.NoError(t, err)
		opened <- ch
	}()
	close(gate)
	ch := receive(t, opened)
	require.NoError(t, ch.Qos(context.Background(), 1, false))
	bs.await(2, is[*sansio.BasicQos])
}

// Delivery tags never repeat across a recovery, also while an auto-ack
// consumer still hands over its backlog from the lost socket.
func TestRecoveryAutoAckTagsNeverRepeat(t *testing.T) {
	c, bs := recoveringConn(t, Config{}, nil)
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	cons, err := ch.Consume(context.Background(), "q", ConsumeOptions{Tag: "t", AutoAck: true})
	require.NoError(t, err)
	for i := 1; i <= 100; i++ {
		bs.broker(1).Deliver(1, "t", uint64(i), []byte("old"))
	}
	bs.kill(1)
	awaitEvent(t, c, Recovered)
	r := bs.await(2, is[*sansio.BasicConsume])
	for i := 1; i <= 10; i++ {
		bs.broker(2).Deliver(r.ch, "t", uint64(i), []byte("new"))
	}
	seen := map[uint64]string{}
	for range 110 {
		d := receive(t, cons.Deliveries())
		prev, dup := seen[d.DeliveryTag]
		require.False(t, dup, "tag %d of a %s delivery repeats a %s one", d.DeliveryTag, d.Body, prev)
		seen[d.DeliveryTag] = string(d.Body)
	}
}

// MaxDuration bounds a recovery whose attempt hangs on a silent broker.
func TestRecoveryMaxDurationCutsAHangingAttempt(t *testing.T) {
	c, bs := recoveringConn(t, Config{Recovery: Recovery{MaxDuration: 300 * time.Millisecond, Backoff: func(int) time.Duration { return 0 }}},
		func(bs *brokers) {
			bs.script = func(gen int) func(b *fakebroker.Broker) {
				if gen == 1 {
					return nil
				}
				return func(b *fakebroker.Broker) { _, _ = io.Copy(io.Discard, b.Conn()) } // silent
			}
		})
	ch, err := c.Channel(context.Background())
	require.NoError(t, err)
	bs.kill(1)
	ev := awaitEvent(t, c, RecoveryFailed)
	var re *RecoveryError
	require.ErrorAs(t, ev.Err, &re)
	require.ErrorIs(t, re.Last, context.DeadlineExceeded)
	<-ch.Context().Done()
	require.ErrorAs(t, ch.Err(), &re)
}

// A broker that takes the new connection and then goes silent does not
// hold the recovery until a heartbeat notices: the attempt's restore is
// bounded by the connection timeout, and the next attempt goes on.
func TestRecoveryRestoreOnASilentBrokerTimesOut(t *testing.T) {
	c, bs := recoveringConn(t, Config{ConnectionTimeout: 300 * time.Millisecond, Heartbeat: -1}, func(bs *brokers) {
		bs.script = func(gen int) func(b *fakebroker.Broker) {
			if gen != 2 {
				return nil
			}
			return func(b *fakebroker.Broker) {
				b.Handshake(0)
				for { // silent: reads, never answers
					if _, err := b.Next(); err != nil {
						return
					}
				}
			}
		}
	})
	_, err := c.Channel(context.Background())
	require.NoError(t, err)
	bs.kill(1)
	failed := awaitEvent(t, c, AttemptFailed)
	require.ErrorIs(t, failed.Err, context.DeadlineExceeded)
	rec := awaitEvent(t, c, Recovered)
	require.Equal(t, uint64(2), rec.Generation)
	bs.mu.Lock()
	require.GreaterOrEqual(t, bs.dials, 3)
	bs.mu.Unlock()
}

// An attempt that restored one channel and then timed out on another
// leaves both to the next attempt: cutting the attempt's socket does not
// end the channel already moved onto it (it ended with the cut's context
// error, which is no socket's loss, as if closed for good).
func TestRecoveryAttemptCutAfterSomeChannelsKeepsThem(t *testing.T) {
	c, bs := recoveringConn(t, Config{ConnectionTimeout: 300 * time.Millisecond, Heartbeat: -1}, func(bs *brokers) {
		opens := 0
		bs.hook = func(gen int, b *fakebroker.Broker, f fakebroker.Frame) bool {
			if gen == 2 && is[*sansio.ChannelOpen](received{m: f.Method}) {
				opens++
				return opens == 2 // the second channel's open is never answered
			}
			return false
		}
	})
	chans := make([]*Channel, 2)
	for i := range chans {
		ch, err := c.Channel(context.Background())
		require.NoError(t, err)
		chans[i] = ch
	}
	bs.kill(1)
	failed := awaitEvent(t, c, AttemptFailed)
	require.ErrorIs(t, failed.Err, context.DeadlineExceeded)
	rec := awaitEvent(t, c, Recovered)
	require.Equal(t, uint64(2), rec.Generation)
	for i, ch := range chans {
		require.NoError(t, ch.Err(), "channel %d", i)
		_, err := ch.Publish(context.Background(), Publishing{RoutingKey: "q", Body: []byte("x")})
		require.NoError(t, err, "channel %d", i)
	}
}
