package actor

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// fillWhileStalled publishes on ch, whose broker reads nothing, until
// Publish finds no room: the outgoing bytes are over MaxOutgoing and the
// queued budget is spent, so the loop holds the last publishes back (in
// l.taken or c.pubs). It returns how many Publish accepted.
func fillWhileStalled(t *testing.T, ch *Channel) int {
	t.Helper()
	body := make([]byte, 3000)
	accepted := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, body, nil)
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			return accepted
		}
		accepted++
		require.Less(t, accepted, 1000, "publishes accepted without bound while nothing is read")
	}
}

// releaser returns a channel for a broker script to wait on and the
// function that closes it, which may be called more than once.
func releaser() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// A request asked for after Publish returned goes out after the publish,
// also when the loop holds the publish back because the socket is full
// (MaxOutgoing): a close does not discard it, tx.commit covers it, a
// declaration or a cancel on the channel follows it.
func TestPublishesHeldBackGoOutBeforeALaterRequest(t *testing.T) {
	cases := []struct {
		name    string
		consume bool // the request needs a consumer
		ask     func(c *Conn, ch *Channel, cons *Consumer) error
		reply   func(b *fakebroker.Broker, r fakebroker.Frame) bool // answers the request; false for other frames
	}{
		{
			name: "tx.commit",
			ask: func(_ *Conn, ch *Channel, _ *Consumer) error {
				return ch.Call(context.Background(), &sansio.TxCommit{}).Err
			},
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.TxCommit)
				if ok {
					b.Send(r.Channel, &sansio.TxCommitOk{})
				}
				return ok
			},
		},
		{
			name: "queue.declare",
			ask: func(_ *Conn, ch *Channel, _ *Consumer) error {
				return ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "q"}).Err
			},
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.QueueDeclare)
				if ok {
					b.Send(r.Channel, &sansio.QueueDeclareOk{Queue: "q"})
				}
				return ok
			},
		},
		{
			name: "queue.delete no-wait",
			ask: func(_ *Conn, ch *Channel, _ *Consumer) error {
				return ch.Call(context.Background(), &sansio.QueueDelete{Queue: "q", NoWait: true}).Err
			},
			reply: func(_ *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.QueueDelete)
				return ok
			},
		},
		{
			name: "channel.close",
			ask:  func(_ *Conn, ch *Channel, _ *Consumer) error { return ch.Close(context.Background()) },
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.ChannelClose)
				if ok {
					b.Send(r.Channel, &sansio.ChannelCloseOk{})
				}
				return ok
			},
		},
		{
			name:    "basic.cancel",
			consume: true,
			ask:     func(_ *Conn, _ *Channel, cons *Consumer) error { return cons.Cancel(context.Background()) },
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				m, ok := r.Method.(*sansio.BasicCancel)
				if ok {
					b.Send(r.Channel, &sansio.BasicCancelOk{ConsumerTag: m.ConsumerTag})
				}
				return ok
			},
		},
		{
			name: "connection.close",
			ask:  func(c *Conn, _ *Channel, _ *Consumer) error { return c.Close(context.Background()) },
			reply: func(b *fakebroker.Broker, r fakebroker.Frame) bool {
				_, ok := r.Method.(*sansio.ConnectionClose)
				if ok {
					b.Send(0, &sansio.ConnectionCloseOk{})
				}
				return ok
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release, free := releaser()
			defer free()                // a failure before the release must not leave the broker waiting
			before := make(chan int, 1) // publishes read before the request
			c, _ := pipeConn(t, Config{MaxOutgoing: 16 << 10}, func(b *fakebroker.Broker) {
				b.Handshake(0)
				id := b.OpenChannel()
				if tc.consume {
					m := fakebroker.Expect[*sansio.BasicConsume](b)
					b.Send(id, &sansio.BasicConsumeOk{ConsumerTag: m.ConsumerTag})
				}
				<-release // read nothing until the request was handled
				n := 0
				for {
					r, err := b.Next()
					if err != nil {
						before <- -1
						return
					}
					if _, ok := r.Method.(*sansio.BasicPublish); ok {
						n++
						continue
					}
					if tc.reply(b, r) {
						before <- n
						break
					}
				}
				b.AnswerClose()
			})
			ctx := context.Background()
			ch, err := c.OpenChannel(ctx)
			require.NoError(t, err)
			var cons *Consumer
			if tc.consume {
				cons, err = ch.Consume(ctx, &sansio.BasicConsume{Queue: "q", ConsumerTag: "c"})
				require.NoError(t, err)
			}
			accepted := fillWhileStalled(t, ch)

			// The request's method frame is counted once the loop handled it.
			framesOut := c.Stats().FramesOut
			asked := make(chan error, 1)
			go func() { asked <- tc.ask(c, ch, cons) }()
			for c.Stats().FramesOut == framesOut {
				runtime.Gosched()
			}
			free()
			require.NoError(t, <-asked)
			require.Equal(t, accepted, <-before, "publishes the broker read before the %s", tc.name)
		})
	}
}

// settleCounter is an Observer counting how often each outcome is settled.
type settleCounter struct {
	mu      sync.Mutex
	settled map[*Outcome]int
}

func (s *settleCounter) Settled(o *Outcome) {
	s.mu.Lock()
	s.settled[o]++
	s.mu.Unlock()
}

func (s *settleCounter) Blocked(Blocking) {}

func (s *settleCounter) count(o *Outcome) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settled[o]
}

// endingBroker answers channel.open, queue.declare, confirm.select,
// channel.close and connection.close, confirms publishes on channels in
// confirm mode (acks, some multiple, and nacks), reads everything else,
// and ends the connection after limit frames: by dropping the socket, or
// with a connection.close of its own.
func endingBroker(limit int, withClose bool) func(b *fakebroker.Broker) {
	return func(b *fakebroker.Broker) {
		b.Handshake(0)
		confirmed := map[uint16]uint64{} // publishes so far, on channels in confirm mode
		for n := 0; ; n++ {
			if n == limit {
				if !withClose {
					return
				}
				b.Send(0, &sansio.ConnectionClose{ReplyCode: 320, ReplyText: "CONNECTION_FORCED"})
			}
			r, err := b.Next()
			if err != nil {
				return
			}
			switch r.Method.(type) {
			case *sansio.ChannelOpen:
				delete(confirmed, r.Channel)
				b.Send(r.Channel, &sansio.ChannelOpenOk{})
			case *sansio.ConfirmSelect:
				confirmed[r.Channel] = 0
				b.Send(r.Channel, &sansio.ConfirmSelectOk{})
			case *sansio.BasicPublish:
				tag, ok := confirmed[r.Channel]
				if !ok {
					break
				}
				tag++
				confirmed[r.Channel] = tag
				switch tag % 3 {
				case 0:
					b.Send(r.Channel, &sansio.BasicAck{DeliveryTag: tag, Multiple: true})
				case 1:
					b.Send(r.Channel, &sansio.BasicNack{DeliveryTag: tag})
				}
			case *sansio.QueueDeclare:
				b.Send(r.Channel, &sansio.QueueDeclareOk{Queue: "q"})
			case *sansio.ChannelClose:
				b.Send(r.Channel, &sansio.ChannelCloseOk{})
			case *sansio.ConnectionClose:
				b.Send(0, &sansio.ConnectionCloseOk{})
				return
			case *sansio.ConnectionCloseOk:
				return
			}
		}
	}
}

// Every caller returns when the connection ends under it, whichever side
// of the inboxes' closing its request or publish lands on, and every
// publish Publish accepted is settled exactly once (those it refused,
// never), in confirm mode or not: the loop's end fails what it had
// queued, and a caller arriving after it is refused at once.
func TestCallersRacingTheConnectionsEndAllReturn(t *testing.T) {
	rounds := *stressRounds / 8
	for round := range rounds {
		obs := &settleCounter{settled: map[*Outcome]int{}}
		end := round % 3 // 0: the socket drops, 1: the broker closes, 2: the client closes
		c, _ := pipeConn(t, Config{Observer: obs, MaxOutgoing: 8 << 10}, endingBroker(20+round*7%200, end == 1))
		ctx := context.Background()
		ch, err := c.OpenChannel(ctx)
		require.NoError(t, err)
		if round%2 == 1 {
			require.NoError(t, ch.Call(ctx, &sansio.ConfirmSelect{}).Err)
		}

		var wg sync.WaitGroup
		var mu sync.Mutex
		var accepted, refused []*Outcome
		for range 3 { // publishers
			wg.Go(func() {
				for {
					o := &Outcome{}
					err := ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, make([]byte, 500), o)
					mu.Lock()
					if err != nil {
						refused = append(refused, o)
					} else {
						accepted = append(accepted, o)
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
		wg.Go(func() { // calls, some given up while queued or on the wire
			for i := 0; ; i++ {
				cctx, cancel := context.WithCancel(ctx)
				if i%2 == 1 {
					go cancel()
				}
				r := ch.Call(cctx, &sansio.QueueDeclare{Queue: "q"})
				cancel()
				if r.Err != nil && !errors.Is(r.Err, context.Canceled) {
					return
				}
			}
		})
		wg.Go(func() { // acknowledgements, as many as a prefetch would allow
			for range 100 {
				if ch.Send(ctx, &sansio.BasicAck{DeliveryTag: 1}) != nil {
					return
				}
				runtime.Gosched()
			}
		})
		wg.Go(func() { // channels opened and closed
			for {
				och, err := c.OpenChannel(ctx)
				if err != nil {
					return
				}
				_ = och.Close(ctx)
			}
		})
		if end == 2 {
			wg.Go(func() {
				for range round % 20 {
					runtime.Gosched()
				}
				_ = c.Close(ctx)
			})
		}
		returned := make(chan struct{})
		go func() { wg.Wait(); close(returned) }()
		select {
		case <-returned:
		case <-time.After(20 * time.Second):
			buf := make([]byte, 1<<20)
			t.Logf("%s", buf[:runtime.Stack(buf, true)])
			t.Fatalf("round %d: a caller never returned after the connection's end", round)
		}
		<-c.Done()
		for _, o := range accepted {
			require.True(t, o.Settled(), "round %d: an accepted publish was never settled", round)
			require.Equal(t, 1, obs.count(o), "round %d: an accepted publish settled more than once", round)
		}
		for _, o := range refused {
			require.Zero(t, obs.count(o), "round %d: a refused publish was settled", round)
		}
	}
}

// A burst of publishes that does not let up still lets requests and the
// broker's replies in: the loop handles at most publishBatch publishes a
// step, and its select picks among what is ready.
func TestPublishBurstLetsRequestsAndRepliesIn(t *testing.T) {
	c, _ := pipeConn(t, Config{}, endingBroker(-1, false))
	ctx := context.Background()
	ch, err := c.OpenChannel(ctx)
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("x"), nil) != nil {
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for c.Stats().Published < 2*publishBatch {
		runtime.Gosched()
	}
	for i := range 20 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r := ch.Call(cctx, &sansio.QueueDeclare{Queue: "q"})
		cancel()
		require.NoError(t, r.Err, "call %d while publishing", i)
	}
	require.Greater(t, c.Stats().Published, uint64(2*publishBatch))
}

// While the broker reads nothing, Publish accepts what MaxOutgoing lets
// into the socket's queue plus what the queued budget holds, and then
// waits: memory does not grow with the publishes, small or large.
func TestStalledSocketBoundsAcceptedPublishes(t *testing.T) {
	const maxOutgoing = 64 << 10
	for _, size := range []int{10, 1 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			stop := make(chan struct{})
			c, _ := pipeConn(t, Config{MaxOutgoing: maxOutgoing}, func(b *fakebroker.Broker) {
				b.Handshake(0)
				b.OpenChannel()
				<-stop // read nothing more
			})
			defer close(stop)
			ch, err := c.OpenChannel(context.Background())
			require.NoError(t, err)
			body := make([]byte, size)
			m := sansio.BasicPublish{RoutingKey: "q"}
			frames, err := sansio.AppendPublish(nil, ch.ID(), &m, &sansio.Properties{}, body, c.Tuning().FrameMax)
			require.NoError(t, err)

			accepted := 0
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				err := ch.Publish(ctx, &m, &sansio.Properties{}, body, nil)
				cancel()
				if err != nil {
					require.ErrorIs(t, err, context.DeadlineExceeded)
					break
				}
				accepted++
				require.Less(t, accepted, 100000)
			}
			// Into the socket's queue: up to the bound, and the publish
			// that crossed it. Queued: each publish weighs its buffer, at
			// least 4 KiB, at most MaxOutgoing.
			inSocketQueue := maxOutgoing/len(frames) + 1
			queued := maxOutgoing / min(max(len(frames), 4096), maxOutgoing)
			require.LessOrEqual(t, accepted, inSocketQueue+queued)
		})
	}
}

// A request that must follow publishes held back over MaxOutgoing lets
// them past the bound, but their budget stays held until the outgoing
// bytes are under it again: requests made while the socket takes nothing,
// each given up or no-wait, do not let publishers queue MaxOutgoing more
// each time. Once the broker reads, publishers get their room back.
func TestRequestsAfterHeldPublishesKeepTheBound(t *testing.T) {
	for _, noWait := range []bool{false, true} {
		t.Run("no-wait="+strconv.FormatBool(noWait), func(t *testing.T) {
			release, free := releaser()
			defer free()
			c, _ := pipeConn(t, Config{MaxOutgoing: 16 << 10}, func(b *fakebroker.Broker) {
				b.Handshake(0)
				b.OpenChannel()
				<-release
				b.AnswerClose()
			})
			ch, err := c.OpenChannel(context.Background())
			require.NoError(t, err)
			require.Positive(t, fillWhileStalled(t, ch))
			for range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				_ = ch.Call(ctx, &sansio.QueueDeclare{Queue: "q", NoWait: noWait}) // given up, or no-wait
				cancel()
				require.Zero(t, fillWhileStalled(t, ch), "publishes accepted past the bound")
			}
			free()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("x"), nil))
		})
	}
}
