// Command floor measures how cheap a consumer can be on this machine, to
// tell a client's own cost from the cost of waking up for every write the
// broker makes. It preloads a queue and consumes it, prefetch 1000 and a
// multiple ack every 100 (scenario d of the comparison), four ways in
// alternation, each on a fresh connection:
//
//	amqp091-go  Channel.Consume
//	ours        amqp.Consumer: reader goroutine → loop → your goroutine
//	channel     one goroutine reads, decodes (internal/sansio) and sends
//	            each delivery on a Go channel to your goroutine: no loop
//	callback    one goroutine reads, decodes and runs your code itself: no
//	            hand-off at all
//
// The last two are not clients (no heartbeats, no errors handled); they are
// the least a Go consumer can do with and without a channel.
//
//	cd bench && go run ./floor [-n 50000] [-rounds 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/amqproto/amqproto/amqp"
	"github.com/amqproto/amqproto/internal/sansio"
	theirs "github.com/rabbitmq/amqp091-go"
)

const (
	queue    = "amqproto-floor"
	prefetch = 1000
	ackEvery = 100
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "broker URI")
	n := flag.Int("n", 50_000, "messages per run")
	rounds := flag.Int("rounds", 3, "rounds")
	only := flag.String("only", "", "comma-separated consumers to run (amqp091-go,ours,channel,callback); empty runs all")
	flag.Parse()
	ctx := context.Background()

	setup, err := amqp.Dial(ctx, *url)
	if err != nil {
		return err
	}
	defer setup.Close(ctx)
	ch, err := setup.Channel(ctx)
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(ctx, queue, amqp.QueueOptions{}); err != nil {
		return err
	}
	defer ch.QueueDelete(ctx, queue, false, false)

	type mode struct {
		name    string
		consume func(ctx context.Context, url string, n int) error
	}
	modes := []mode{
		{"amqp091-go", consumeTheirs}, {"ours", consumeOurs}, {"channel", consumeRaw(false)}, {"callback", consumeRaw(true)},
	}
	if *only != "" {
		keep := strings.Split(*only, ",")
		modes = slices.DeleteFunc(modes, func(m mode) bool { return !slices.Contains(keep, m.name) })
		if len(modes) == 0 {
			return fmt.Errorf("-only %q names no consumer", *only)
		}
	}
	results := make(map[string][]sample)
	for r := 1; r <= *rounds; r++ {
		for _, m := range modes {
			if err := preload(ctx, ch, *n); err != nil {
				return err
			}
			time.Sleep(time.Second) // let the broker settle
			s, err := measure(func() error { return m.consume(ctx, *url, *n) })
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			s.n = *n
			fmt.Fprintf(os.Stderr, "round %d %-10s %s\n", r, m.name, s)
			results[m.name] = append(results[m.name], s)
			if _, err := ch.QueuePurge(ctx, queue); err != nil {
				return err
			}
		}
	}
	fmt.Printf("\n%d messages of 1 KiB, prefetch %d, ack every %d; medians of %d rounds\n\n", *n, prefetch, ackEvery, *rounds)
	fmt.Println("| consumer | msgs/s | CPU µs/msg | switches/msg |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	for _, m := range modes {
		ss := results[m.name]
		fmt.Printf("| %s | %.0f | %.2f | %.2f |\n", m.name, median(ss, sample.rate), median(ss, sample.cpuPerMsg), median(ss, sample.switchesPerMsg))
	}
	return nil
}

func preload(ctx context.Context, ch *amqp.Channel, n int) error {
	if err := ch.Confirm(ctx); err != nil {
		return err
	}
	body := make([]byte, 1024)
	window := make([]*amqp.Confirmation, 0, 1000)
	for i := range n {
		if len(window) == cap(window) || i == n-1 {
			for _, c := range window {
				if err := c.Wait(ctx); err != nil {
					return err
				}
			}
			window = window[:0]
		}
		c, err := ch.Publish(ctx, amqp.Publishing{RoutingKey: queue, Body: body})
		if err != nil {
			return err
		}
		window = append(window, c)
	}
	for _, c := range window {
		if err := c.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

type sample struct {
	n        int
	elapsed  time.Duration
	cpu      time.Duration
	switches int64
}

func (s sample) rate() float64           { return float64(s.n) / s.elapsed.Seconds() }
func (s sample) cpuPerMsg() float64      { return float64(s.cpu.Microseconds()) / float64(s.n) }
func (s sample) switchesPerMsg() float64 { return float64(s.switches) / float64(s.n) }
func (s sample) String() string {
	return fmt.Sprintf("%.0f msgs/s, %.2f µs/msg, %.2f switches/msg", s.rate(), s.cpuPerMsg(), s.switchesPerMsg())
}

func median(ss []sample, f func(sample) float64) float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// measure runs f and returns what it cost the process. Dialing and
// consuming setup are inside the window for every mode alike; at 50,000
// messages they are noise.
func measure(f func() error) (sample, error) {
	c0, s0 := usage()
	t0 := time.Now()
	err := f()
	elapsed := time.Since(t0)
	c1, s1 := usage()
	return sample{elapsed: elapsed, cpu: c1 - c0, switches: s1 - s0}, err
}

func usage() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}

func consumeTheirs(_ context.Context, url string, n int) error {
	c, err := theirs.Dial(url)
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for got := 1; got <= n; got++ {
		d, ok := <-deliveries
		if !ok {
			return errors.New("deliveries closed")
		}
		if got%ackEvery == 0 || got == n {
			if err := d.Ack(true); err != nil {
				return err
			}
		}
	}
	return nil
}

func consumeOurs(ctx context.Context, url string, n int) error {
	c, err := amqp.Dial(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	ch, err := c.Channel(ctx)
	if err != nil {
		return err
	}
	if err := ch.Qos(ctx, prefetch, false); err != nil {
		return err
	}
	cons, err := ch.Consume(ctx, queue, amqp.ConsumeOptions{})
	if err != nil {
		return err
	}
	deliveries := cons.Deliveries()
	for got := 1; got <= n; got++ {
		d, ok := <-deliveries
		if !ok {
			return cons.Err()
		}
		if got%ackEvery == 0 || got == n {
			if err := d.Ack(ctx, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// raw drives a sansio.Conn from the goroutine that reads the socket.
type raw struct {
	nc   net.Conn
	core *sansio.Conn
	buf  []byte // read into
	in   []byte // read and not yet used by the core
}

func (r *raw) flush() error {
	if !r.core.HasOutgoing() {
		return nil
	}
	_, err := r.nc.Write(r.core.TakeOutgoing(time.Now(), nil))
	return err
}

// step writes what is queued, reads once and feeds the core.
func (r *raw) step() error {
	if err := r.flush(); err != nil {
		return err
	}
	n, err := r.nc.Read(r.buf)
	if err != nil {
		return err
	}
	r.in = append(r.in, r.buf[:n]...)
	used := r.core.Receive(time.Now(), r.in)
	r.in = r.in[:copy(r.in, r.in[used:])]
	return nil
}

// await steps until an event of kind arrives.
func (r *raw) await(kind sansio.EventKind) error {
	for {
		for {
			ev, ok := r.core.NextEvent()
			if !ok {
				break
			}
			if ev.Kind == kind {
				return nil
			}
			if ev.Kind == sansio.EventConnectionClosed || ev.Kind == sansio.EventChannelClosed {
				return fmt.Errorf("%s: %v", ev.Kind, ev.Err)
			}
		}
		if err := r.step(); err != nil {
			return err
		}
	}
}

// consumeRaw consumes with no actor: the goroutine that reads runs the core,
// and either hands each delivery to a consuming goroutine over a channel or,
// with inline, counts and acks it itself.
func consumeRaw(inline bool) func(ctx context.Context, url string, n int) error {
	return func(ctx context.Context, url string, n int) error {
		u, err := amqp.ParseURI(url)
		if err != nil {
			return err
		}
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Host, fmt.Sprint(u.Port)))
		if err != nil {
			return err
		}
		defer nc.Close()
		r := &raw{nc: nc, buf: make([]byte, 64<<10), core: sansio.NewConn(sansio.Config{
			Auth: []sansio.Auth{&sansio.PlainAuth{Username: u.Username, Password: u.Password}}, Vhost: u.Vhost})}
		r.core.Start(time.Now())
		if err := r.await(sansio.EventConnected); err != nil {
			return err
		}
		id, err := r.core.OpenChannel(1)
		if err != nil {
			return err
		}
		if err := r.await(sansio.EventReply); err != nil {
			return err
		}
		if err := r.core.Call(id, 2, &sansio.BasicQos{PrefetchCount: prefetch}); err != nil {
			return err
		}
		if err := r.await(sansio.EventReply); err != nil {
			return err
		}
		if err := r.core.Call(id, 3, &sansio.BasicConsume{Queue: queue, ConsumerTag: "floor"}); err != nil {
			return err
		}
		if inline {
			return r.consumeInline(id, n)
		}
		return r.consumeOverChannel(id, n)
	}
}

func (r *raw) ack(id uint16, tag uint64) error {
	return r.core.Call(id, 0, &sansio.BasicAck{DeliveryTag: tag, Multiple: true})
}

func (r *raw) consumeInline(id uint16, n int) error {
	for got := 0; ; {
		for {
			ev, ok := r.core.NextEvent()
			if !ok {
				break
			}
			if ev.Kind != sansio.EventDelivery {
				continue
			}
			if got++; got%ackEvery == 0 || got == n {
				if err := r.ack(id, ev.Message.DeliveryTag); err != nil {
					return err
				}
			}
			if got == n {
				return r.flush()
			}
		}
		if err := r.step(); err != nil {
			return err
		}
	}
}

func (r *raw) consumeOverChannel(id uint16, n int) error {
	deliveries := make(chan uint64, 64) // delivery tags: the body is not the point
	acks := make(chan uint64, 16)
	done := make(chan struct{})
	readErr := make(chan error, 1)
	// The reading goroutine ends when the consumer is done (it closes
	// done) or the socket fails; the deferred Close unblocks its read.
	go func() {
		for {
			for {
				ev, ok := r.core.NextEvent()
				if !ok {
					break
				}
				if ev.Kind == sansio.EventDelivery {
					select {
					case deliveries <- ev.Message.DeliveryTag:
					case <-done:
						return
					}
				}
			}
			for len(acks) > 0 {
				if err := r.ack(id, <-acks); err != nil {
					readErr <- err
					return
				}
			}
			if err := r.step(); err != nil {
				select {
				case readErr <- err:
				case <-done:
				}
				return
			}
		}
	}()
	defer close(done)
	for got := 1; got <= n; got++ {
		select {
		case tag := <-deliveries:
			if got%ackEvery == 0 || got == n {
				acks <- tag
			}
		case err := <-readErr:
			return err
		}
	}
	return nil
}
