package actor

import (
	"context"
	"flag"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
	"github.com/stretchr/testify/require"
)

// Publishes the core holds behind a no-wait method (itself waiting for an
// earlier request's reply) count against MaxOutgoing: publishers wait
// rather than grow memory without limit.
func TestPublishesHeldBehindNoWaitMethodsCountAgainstMaxOutgoing(t *testing.T) {
	declared, stop := make(chan struct{}), make(chan struct{})
	c, _ := pipeConn(t, Config{MaxOutgoing: 256 << 10}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		b.OpenChannel()
		fakebroker.Expect[*sansio.QueueDeclare](b)
		close(declared) // never answer, and read nothing more
		<-stop
	})
	defer close(stop)
	ch, err := c.OpenChannel(context.Background())
	require.NoError(t, err)
	go ch.Call(context.Background(), &sansio.QueueDeclare{Queue: "slow"})
	<-declared
	// Call returns once the loop has queued it: the publishes come after.
	require.NoError(t, ch.Call(context.Background(), &sansio.ExchangeDeclare{Exchange: "x", Type: "direct", NoWait: true}).Err)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	body := make([]byte, 1<<20)
	accepted := 0
	for range 64 {
		if err := ch.Publish(ctx, &sansio.BasicPublish{Exchange: "x", RoutingKey: "q"}, &sansio.Properties{}, body, nil); err != nil {
			break
		}
		accepted++
	}
	// MaxOutgoing is 256 KiB; with nothing written, a few MiB at most may
	// be accepted (one publish over the bound, the queued budget).
	require.Less(t, accepted, 64, "all 64 MiB of publishes were accepted while nothing was written")
}

// stressRounds sets the rounds of the stress tests; make stress runs more.
var stressRounds = flag.Int("stress-rounds", 200, "rounds of the publish-versus-end stress tests")

// Every publish that Publish accepted reaches Outcomes before they close,
// also when the channel ends under busy publishers (a stress test: the race
// it guards needs many rounds to show).
func TestOutcomesSeeEveryAcceptedPublishWhenTheChannelEnds(t *testing.T) {
	const publishers, perChannel = 8, 40
	rounds := *stressRounds
	c, _ := pipeConn(t, Config{}, func(b *fakebroker.Broker) {
		b.Handshake(0)
		counts := map[uint16]int{}
		for {
			r, err := b.Next()
			if err != nil {
				return
			}
			switch m := r.Method.(type) {
			case *sansio.ChannelOpen:
				counts[r.Channel] = 0
				b.Send(r.Channel, &sansio.ChannelOpenOk{})
			case *sansio.BasicPublish:
				counts[r.Channel]++
				if counts[r.Channel] == perChannel {
					b.Send(r.Channel, &sansio.ChannelClose{ReplyCode: 406, ReplyText: "PRECONDITION_FAILED"})
				}
			case *sansio.ChannelCloseOk:
			case *sansio.ChannelClose:
				b.Send(r.Channel, &sansio.ChannelCloseOk{})
			case *sansio.ConnectionClose:
				b.Send(0, &sansio.ConnectionCloseOk{})
				return
			default:
				_ = m
			}
		}
	})
	ctx := context.Background()
	for round := range rounds {
		ch, err := c.OpenChannel(ctx)
		require.NoError(t, err)
		ch.EnableOutcomes()
		var accepted atomic.Int64
		var wg sync.WaitGroup
		for range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					p := &Outcome{}
					if err := ch.Publish(ctx, &sansio.BasicPublish{RoutingKey: "q"}, &sansio.Properties{}, []byte("x"), p); err != nil {
						return
					}
					accepted.Add(1)
				}
			}()
		}
		got := 0
		timeout := time.After(5 * time.Second)
	drain:
		for {
			select {
			case <-ch.Outcomes.Signal():
			case <-timeout:
				t.Fatalf("round %d: Outcomes never closed", round)
			}
			items, closed, _ := ch.Outcomes.Take(nil)
			got += len(items)
			if closed {
				break drain
			}
		}
		wg.Wait()
		require.Equal(t, accepted.Load(), int64(got), "round %d: publishes accepted vs outcomes seen", round)
	}
}
